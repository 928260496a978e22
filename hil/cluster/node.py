"""The node runtime: one :class:`NodeActor` per bench node, holding the stages the plan gave it.

A NodeActor is a plain Python class. With ``--cluster none`` the driver makes the objects in its own
process; with ``--cluster local`` or an address each is a Ray actor pinned to its host by the custom
resource ``hil_node:<name>`` (see :mod:`hil.cluster.driver`). The same methods run in both cases,
which is what makes the two bit-identical.

[Note: stage chain]
The split model of a training config (:func:`hil.train.models.build_model`: ``edge`` layers, the
over-the-air cut, ``server`` layers) is a chain of *units*: ``edge`` (the input layers),
``cut.precoder`` (the cut's precoder with its transmit-power normalisation), ``cut.combiner`` (the
over-the-air hop: its transport and reverse link for the gradient, then the combiner and its
normalisation), ``server.0``, ``server.1``, ... (each layer of the ``server`` part). A node runs one
contiguous run of units, its *stage*; the stages in chain order make the deployed model:

- the two-node bench of a training config: role ``"edge"`` (``edge``, ``cut.precoder``) and role
  ``"server"`` (``cut.combiner`` and every server layer, with the loss);
- a bench file (``hil run --bench``): the placement engine assigns the units to the bench's nodes
  (:mod:`hil.cluster.placement`), e.g. device: ``edge``, ``cut.precoder``; edge: ``cut.combiner``,
  ``server.0``; cloud: ``server.1``.

Forward: each stage sends its output to the next (float32 activations through Ray on a digital
hop; the precoded symbols ``s``, complex64 ``[B, n_tx, K]``, to the node holding ``cut.combiner``,
which puts them on the air through :class:`hil.ota.OTALink`). The last stage computes the loss; its
backward returns ``dL/d(input)`` to the stage before, and so on to the first stage: over the cut,
the receiving node's autograd runs the configured gradient mode (the reciprocity echo over the
reverse link, the estimated or the exact channel) and returns ``dL/ds``.

[Note: where the air is]
The over-the-air link is opened by the receiving node's actor: for ``ideal`` and ``loopback`` the
simulated channel runs in that process, for ``zmq`` the actor connects to (or starts) the channel
server, for ``pluto`` it opens the board. The precoded symbols reach it through Ray, so the
transmitter's radio is not yet opened by the transmitting node's own actor. The radio contract has
the halves for that (``arm_receive``/``transmit``/``receive``, [Note: transmit and receive halves]
in hil.radio.base; ZmqRadio's work in two processes), but the PHY transport (framer on the
transmitter, synchronisation and estimation on the receiver) is not split along them yet. Every
burst, forward and reverse, still goes through the configured transport and PHY exactly as in
``hil train``.

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

ROLES = ("edge", "server", "stage")
#: The units of the split MLP, in order (``server.<i>``: the i-th layer of the model's ``server`` part).
EDGE_UNITS = ("edge", "cut.precoder")
CUT_RX = "cut.combiner"


def server_units(n: int) -> tuple[str, ...]:
    """The receiving node's units of the two-node bench: the combiner and the ``n`` server layers."""
    return (CUT_RX,) + tuple(f"server.{i}" for i in range(n))


def node_location() -> dict:
    """``{host, pid, ray_node_id, ray_node_ip}`` of the calling process (the Ray ids are None outside Ray)."""
    node_id = node_ip = None
    try:
        import ray

        if ray.is_initialized():
            node_id = ray.get_runtime_context().get_node_id()
            node_ip = ray.util.get_node_ip_address()
    except ImportError:
        pass
    return {"host": socket.gethostname(), "pid": os.getpid(), "ray_node_id": node_id, "ray_node_ip": node_ip}



class NodeActor:
    """One bench node's stage of the split model: a contiguous run of its units (see [Note: stage chain]).

    Args:
        name: the node's name in the bench (``edge``, ``server``, ...).
        role: ``"edge"`` (units ``edge``, ``cut.precoder``), ``"server"`` (``cut.combiner`` and every
            ``server.<i>``) or ``"stage"`` (the units given in ``units``).
        config: a training config as a dict (:meth:`hil.train.config.RunConfig.to_dict`).
        image_shape, classes: of the dataset, to build the model.
        threads: torch threads of this node (see [Note: one thread per node]).
        units: with role ``"stage"``: the unit names this node runs, in chain order.

    Raises:
        ValueError: unknown role or unit, units that are not a contiguous run of the chain.
        HilError subclasses: the node holding ``cut.combiner`` cannot open its link (radio, channel server).
    """

    def __init__(self, name: str, role: str, config: dict, image_shape: tuple[int, int, int], classes: int,
                 threads: int = 1, units: tuple[str, ...] | list[str] | None = None):
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
        m = cfg.model
        if m.kind != "mlp":
            raise ValueError(f"node {name!r}: the cluster runtime splits MLP cuts (OTALinear) only; "
                             f"[model] kind={m.kind!r} has an OTA convolution: use kind = \"mlp\"")
        chain = unit_names(cfg, tuple(image_shape), int(classes))
        if role == "edge":
            units = EDGE_UNITS
        elif role == "server":
            units = chain[len(EDGE_UNITS):]
        units = tuple(units or ())
        if not units or any(u not in chain for u in units):
            raise ValueError(f"node {name!r}: units {list(units)} are not units of the model; the chain is {list(chain)}")
        first = chain.index(units[0])
        if chain[first:first + len(units)] != units:
            raise ValueError(f"node {name!r}: units {list(units)} are not a contiguous run of the chain {list(chain)}")
        self.units = units
        self.first, self.last = first == 0, first + len(units) == len(chain)
        if CUT_RX in units:
            self._open_link(image_shape)
        torch.manual_seed(cfg.train.seed)  # every node builds the whole model and keeps its share: same init
        model = build_model(m.kind, tuple(image_shape), int(classes), hidden=m.hidden, cut_out=m.cut_out,
                            kernel_size=m.kernel_size, ota=True, link=self.link, n_tx=cfg.ota.n_tx,
                            n_rx=cfg.ota.n_rx, channel_uses=cfg.ota.channel_uses, normalize=m.normalize,
                            power=m.power)
        cut = model.cut
        assert not isinstance(cut, OTAConv2d)
        self.ota: OTALinear = cut
        self.model = model  # the shares not used here are never updated (their grads stay None)
        self._fns = [self._unit(u) for u in units]
        self.params = [p for u in units for p in self._unit_params(u)]
        self.layer_names = list(units)
        self.opt = torch.optim.Adam(self.params, lr=cfg.train.lr)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=cfg.train.epochs)
        self._pending: dict[int, tuple[torch.Tensor | None, torch.Tensor]] = {}
        self.busy_s: dict[str, float] = {}
        self.trace: list[dict] = []  # inference calls: wall clock in and out, seconds on the air

    def _unit(self, u: str):
        """The function of unit ``u`` (input tensor -> output tensor)."""
        if u == "edge":
            return self.model.edge
        if u == "cut.precoder":
            return self.ota.precode
        if u == CUT_RX:
            return self._receive
        return self.model.server[int(u.split(".", 1)[1])]

    def _unit_params(self, u: str) -> list[torch.nn.Parameter]:
        if u == "edge":
            return list(self.model.edge.parameters())
        if u == "cut.precoder":
            return [self.ota.precoder]
        if u == CUT_RX:
            out = [self.ota.combiner] + [p for mod in (self.ota.norm,) if mod is not None for p in mod.parameters()]
            return out + ([self.ota.bias] if self.ota.bias is not None else [])
        return list(self.model.server[int(u.split(".", 1)[1])].parameters())

    def _receive(self, s: torch.Tensor) -> torch.Tensor:
        """The over-the-air hop and the combiner (the air time goes to :attr:`_air_s`)."""
        t0 = time.perf_counter()
        y = self.link(s)
        self._air_s += time.perf_counter() - t0
        return self.ota.combine(y)

    def _run(self, a: torch.Tensor, train: bool) -> torch.Tensor:
        self._air_s = 0.0
        for mod in (self.model.edge, self.model.server, self.ota):
            mod.train(train)
        for f in self._fns:
            a = f(a)
        return a

    # -- the link (the node holding cut.combiner) ---------------------------------------------
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
        """``{name, role, host, pid, ray_node_id, ray_node_ip, radios, layers}`` of this node."""
        radios = []
        if self.link is not None:
            radios.append({"transport": self.link.transport.name, "n_tx": self.link.n_tx, "n_rx": self.link.n_rx,
                           "gradient_mode": self.link.gradient_mode})
        return {"name": self.name, "role": self.role, **node_location(), "radios": radios,
                "layers": list(self.layer_names)}

    def _timed(self, key: str, t0: float) -> None:
        self.busy_s[key] = self.busy_s.get(key, 0.0) + time.perf_counter() - t0

    # -- the stage ----------------------------------------------------------------------------
    def forward(self, step: int, a, train: bool = True) -> np.ndarray:
        """This stage's units on ``a`` (the model input on the first stage, the previous stage's output
        otherwise: float32 activations, or the precoded symbols complex64 ``[B, n_tx, K]``); the output as
        numpy. Training keeps the graph for :meth:`backward`; ``step = -1`` with ``train=False`` is an
        inference request (its wall-clock times go to :meth:`timings`)."""
        t_in, t0 = time.time(), time.perf_counter()
        x = a if isinstance(a, torch.Tensor) else torch.from_numpy(np.asarray(a))
        if train and not self.first:
            x = x.detach().requires_grad_(True)
        with torch.set_grad_enabled(train):
            out = self._run(x, train)
        if train:
            self._pending[step] = (None if self.first else x, out)
        res = out.detach().numpy()
        self._timed("forward", t0)
        if not train:
            self.trace.append({"in": t_in, "out": time.time(), "air_s": self._air_s})
        return res

    def backward(self, step: int, g_out: np.ndarray, update: bool = False) -> np.ndarray | None:
        """Back-propagate ``dL/d(output)`` of micro-batch ``step`` through this stage; returns ``dL/d(input)``
        (None on the first stage). ``update``: then the optimiser step (the batch's last micro-batch; one
        call less per step)."""
        t0 = time.perf_counter()
        x, out = self._pending.pop(step)
        out.backward(torch.from_numpy(np.asarray(g_out)))
        if update:
            self.update()
        self._timed("backward", t0)
        return None if x is None else x.grad.numpy()

    def forward_backward(self, step: int, a: np.ndarray, y: torch.Tensor, weight: float = 1.0,
                         update: bool = False) -> tuple[float, int, np.ndarray]:
        """The last stage: its units (over the air first when it holds ``cut.combiner``), the loss, and
        backward to ``dL/d(input)``.

        ``weight`` scales the loss (``len(micro-batch) / len(batch)`` when micro-batching, so the
        accumulated gradients are those of the whole batch); ``update``: then the optimiser step (the
        batch's last micro-batch). Returns ``(loss, correct, dL/d(input))``.
        """
        t0 = time.perf_counter()
        x = torch.from_numpy(np.asarray(a)).requires_grad_(True)
        out = self._run(x, True)
        loss = nn.functional.cross_entropy(out, y)
        (loss * weight if weight != 1.0 else loss).backward()
        correct = int((out.argmax(1) == y).sum())
        if update:
            self.update()
        self._timed("forward_backward", t0)
        return float(loss.detach()), correct, x.grad.numpy()

    @torch.no_grad()
    def predict(self, a: np.ndarray) -> torch.Tensor:
        """The last stage, eval mode: its units on ``a`` -> predicted classes (an inference request)."""
        t_in, t0 = time.time(), time.perf_counter()
        out = self._run(torch.from_numpy(np.asarray(a)), False)
        self._timed("predict", t0)
        self.trace.append({"in": t_in, "out": time.time(), "air_s": self._air_s})
        return out.argmax(1)

    def timings(self, clear: bool = True) -> list[dict]:
        """The inference calls since the last clear: ``{in, out}`` wall-clock seconds (``time.time()`` of this
        host) and ``air_s`` (the over-the-air hop inside the call, 0 without one)."""
        out = list(self.trace)
        if clear:
            self.trace = []
        return out

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
        if "cut.precoder" in self.units:
            out["cut.running_power"] = self.ota.running_power.clone()
        if CUT_RX in self.units and self.ota.norm is not None:
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


def unit_names(cfg, image_shape: tuple[int, int, int], classes: int) -> tuple[str, ...]:
    """The units of the split model of training config ``cfg`` in chain order: ``edge``, ``cut.precoder``,
    ``cut.combiner``, ``server.0`` ... (see [Note: stage chain])."""
    from hil.train.models import build_model

    m = cfg.model
    model = build_model(m.kind, tuple(image_shape), int(classes), hidden=m.hidden, cut_out=m.cut_out,
                        kernel_size=m.kernel_size, ota=False)
    return EDGE_UNITS + server_units(len(model.server))
