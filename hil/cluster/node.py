"""The node runtime: one :class:`NodeActor` per bench node, holding the stages the plan gave it.

A NodeActor is a plain Python class. With ``--cluster none`` the driver makes the objects in its own
process; with ``--cluster local`` or an address each is a Ray actor pinned to its host by the custom
resource ``hil_node:<name>`` (see :mod:`hil.cluster.driver`). The same methods run in both cases,
which is what makes the two bit-identical.

The split model of a training config (:func:`hil.train.models.build_model`: ``edge`` layers, the
over-the-air cut, ``server`` layers) is cut at the precoder/combiner boundary of the OTA layer:

- role ``"edge"`` (the transmitter): the edge layers and the cut's precoder (with its transmit-power
  normalisation and running power).
- role ``"server"`` (the receiver): the over-the-air link (its transport, the reverse link for the
  gradient), the cut's combiner and normalisation, the server layers and the loss.

Forward: the edge sends the precoded symbols ``s`` (complex64 ``[B, n_tx, K]``) to the server node,
which puts them on the air through :class:`hil.ota.OTALink`; backward: the server's autograd runs the
configured gradient mode (the reciprocity echo over the reverse link, the estimated or the exact
channel) and returns ``dL/ds`` to the edge, which back-propagates it through its own layers.

[Note: where the air is]
The over-the-air link is opened by the receiving node's actor: for ``ideal`` and ``loopback`` the
simulated channel runs in that process, for ``zmq`` the actor connects to (or starts) the channel
server, for ``pluto`` it opens the board. The precoded symbols reach it through Ray, so the
transmitter's radio is not yet opened by the transmitting node's own actor: that needs the radio's
transmit and receive halves (the PHY framer on the transmitter, synchronisation and estimation on
the receiver), which this first version leaves out. Every burst, forward and reverse, still goes
through the configured transport and PHY exactly as in ``hil train``.

[Note: one thread per node]
Each NodeActor sets ``torch.set_num_threads(threads)`` (1 by default): float reductions in CPU kernels may
split work differently with another thread count, and the equivalence of ``local`` and ``none`` is
bit for bit.
"""

from __future__ import annotations

import os
import socket
import time

import numpy as np
import torch
from torch import nn

ROLES = ("edge", "server")


class NodeActor:
    """One bench node's share of the split model (see the module docstring).

    Args:
        name: the node's name in the bench (``edge``, ``server``, ...).
        role: ``"edge"`` (input layers and precoder) or ``"server"`` (link, combiner, output layers, loss).
        config: a training config as a dict (:meth:`hil.train.config.RunConfig.to_dict`).
        image_shape, classes: of the dataset, to build the model.
        threads: torch threads of this node (see [Note: one thread per node]).
        steps_per_epoch: for the cosine learning-rate schedule's length (it steps once per epoch).

    Raises:
        ValueError: unknown role.
        HilError subclasses: the server cannot open its link (radio, channel server).
    """

    def __init__(self, name: str, role: str, config: dict, image_shape: tuple[int, int, int], classes: int,
                 threads: int = 1):
        if role not in ROLES:
            raise ValueError(f"node {name!r}: role must be one of {ROLES}, got {role!r}")
        torch.set_num_threads(int(threads))
        from hil.ota.layers import OTAConv2d, OTALinear
        from hil.train.config import from_dict
        from hil.train.models import build_model

        self.name, self.role = name, role
        self.cfg = cfg = from_dict(config)
        self._closer = None
        self.link = None
        self.calibration_frames = 0
        if role == "server":
            self._open_link(image_shape)
        m = cfg.model
        torch.manual_seed(cfg.train.seed)  # every node builds the whole model and keeps its share: same init
        model = build_model(m.kind, tuple(image_shape), int(classes), hidden=m.hidden, cut_out=m.cut_out,
                            kernel_size=m.kernel_size, ota=True, link=self.link, n_tx=cfg.ota.n_tx,
                            n_rx=cfg.ota.n_rx, channel_uses=cfg.ota.channel_uses, normalize=m.normalize,
                            power=m.power)
        cut = model.cut
        self.ota: OTALinear = cut.ota if isinstance(cut, OTAConv2d) else cut
        if isinstance(cut, OTAConv2d):
            raise ValueError(f"node {name!r}: the cluster runtime splits MLP cuts (OTALinear) only; "
                             f"[model] kind={m.kind!r} has an OTA convolution: use kind = \"mlp\"")
        if role == "edge":
            self.layers = model.edge
            params = list(model.edge.parameters()) + [self.ota.precoder]
            self.layer_names = ["edge", "cut.precoder"]
        else:
            self.layers = model.server
            params = [self.ota.combiner] + [p for mod in (self.ota.norm,) if mod is not None for p in mod.parameters()]
            if self.ota.bias is not None:
                params.append(self.ota.bias)
            params += list(model.server.parameters())
            self.layer_names = ["cut.combiner", "cut.norm", "server"]
        self.model = model  # the shares not used here are never updated (their grads stay None)
        self.params = params
        self.opt = torch.optim.Adam(params, lr=cfg.train.lr)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=cfg.train.epochs)
        self._pending: dict[int, torch.Tensor] = {}
        self.busy_s: dict[str, float] = {}

    # -- the link (server) ------------------------------------------------------------------
    def _open_link(self, image_shape) -> None:
        from hil.ota.link import OTALink, calibrate_reciprocity
        from hil.train.links import open_transport

        cfg = self.cfg
        b = int(cfg.train.batch_size)
        transport, self._closer = open_transport(cfg.ota, vectors_per_burst=b)
        self.transport = transport
        cal = None
        if cfg.ota.gradient_mode == "reciprocity" and cfg.ota.calibrate:
            f0 = transport.frames
            cal = calibrate_reciprocity(transport, np.random.default_rng(cfg.train.seed), n_bursts=4)
            self.calibration_frames = transport.frames - f0
        self.link = OTALink(transport, cfg.ota.gradient_mode, cal, hold_channel=cfg.ota.hold_channel)

    # -- who and where --------------------------------------------------------------------
    def info(self) -> dict:
        """``{name, role, host, pid, ray_node_id, radios, layers}`` of this node."""
        node_id = node_ip = None
        try:
            import ray

            if ray.is_initialized():
                node_id = ray.get_runtime_context().get_node_id()
                node_ip = ray.util.get_node_ip_address()
        except ImportError:
            pass
        radios = []
        if self.link is not None:
            radios.append({"transport": self.link.transport.name, "n_tx": self.link.n_tx, "n_rx": self.link.n_rx,
                           "gradient_mode": self.link.gradient_mode})
        return {"name": self.name, "role": self.role, "host": socket.gethostname(), "pid": os.getpid(),
                "ray_node_id": node_id, "ray_node_ip": node_ip, "radios": radios, "layers": list(self.layer_names)}

    def _timed(self, key: str, t0: float) -> None:
        self.busy_s[key] = self.busy_s.get(key, 0.0) + time.perf_counter() - t0

    # -- edge ------------------------------------------------------------------------------
    def forward(self, step: int, x: torch.Tensor, train: bool = True) -> np.ndarray:
        """Edge: input ``x`` -> precoded symbols complex64 ``[B, n_tx, K]``; kept for :meth:`backward` when training."""
        t0 = time.perf_counter()
        self.layers.train(train)
        self.ota.train(train)
        with torch.set_grad_enabled(train):
            s = self.ota.precode(self.layers(x))
        if train:
            self._pending[step] = s
        out = s.detach().numpy()
        self._timed("forward", t0)
        return out

    def backward(self, step: int, g_s: np.ndarray, update: bool = False) -> None:
        """Edge: back-propagate ``dL/ds`` of micro-batch ``step`` through the precoder and the edge layers;
        ``update``: then the optimiser step (the batch's last micro-batch; one call less per step)."""
        t0 = time.perf_counter()
        s = self._pending.pop(step)
        s.backward(torch.from_numpy(np.asarray(g_s)))
        if update:
            self.update()
        self._timed("backward", t0)

    # -- server ----------------------------------------------------------------------------
    def forward_backward(self, step: int, s: np.ndarray, y: torch.Tensor, weight: float = 1.0,
                         update: bool = False) -> tuple[float, int, np.ndarray]:
        """Server: symbols over the air, combiner, server layers, loss; backward to ``dL/ds``.

        ``weight`` scales the loss (``len(micro-batch) / len(batch)`` when micro-batching, so the
        accumulated gradients are those of the whole batch); ``update``: then the optimiser step (the
        batch's last micro-batch). Returns ``(loss, correct, dL/ds)``.
        """
        t0 = time.perf_counter()
        self.layers.train(True)
        self.ota.train(True)
        s_t = torch.from_numpy(np.asarray(s)).requires_grad_(True)
        out = self.layers(self.ota.combine(self.link(s_t)))
        loss = nn.functional.cross_entropy(out, y)
        (loss * weight if weight != 1.0 else loss).backward()
        correct = int((out.argmax(1) == y).sum())
        if update:
            self.update()
        self._timed("forward_backward", t0)
        return float(loss.detach()), correct, s_t.grad.numpy()

    @torch.no_grad()
    def predict(self, s: np.ndarray) -> torch.Tensor:
        """Server, eval mode: symbols over the air -> predicted classes."""
        t0 = time.perf_counter()
        self.layers.eval()
        self.ota.eval()
        out = self.layers(self.ota.combine(self.link(torch.from_numpy(np.asarray(s)))))
        self._timed("predict", t0)
        return out.argmax(1)

    # -- both ------------------------------------------------------------------------------
    def update(self) -> None:
        """One optimiser step on this node's parameters, then clear their gradients."""
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def end_epoch(self) -> None:
        self.sched.step()

    def frames(self) -> int:
        return 0 if self.link is None else int(self.link.transport.frames)

    def weights(self) -> dict[str, torch.Tensor]:
        """This node's parameters and buffers by name (of the whole model), detached copies."""
        mine = {id(p) for p in self.params}
        out = {k: v.detach().clone() for k, v in self.model.named_parameters() if id(v) in mine}
        if self.role == "edge":
            out["cut.running_power"] = self.ota.running_power.clone()
        elif self.ota.norm is not None:
            out.update({f"cut.norm.{k}": v.clone() for k, v in self.ota.norm.state_dict().items()})
        return out

    def state(self) -> dict:
        """Everything to resume this node: model, optimiser, scheduler (tensors and plain values)."""
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict()}

    def load(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])

    def checkpoint(self, path: str) -> None:
        """Write :meth:`state` to ``path`` on this node's host, atomically (temporary file, fsync, rename)."""
        from hil.train.loop import atomic_save

        atomic_save(self.state(), path)

    def busy(self) -> dict[str, float]:
        """Seconds this node spent in each kind of call so far."""
        return dict(self.busy_s)

    def ping(self) -> int:
        return os.getpid()

    def close(self) -> None:
        if self._closer is not None:
            closer, self._closer = self._closer, None
            closer.close()
