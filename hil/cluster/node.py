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
hop). Over the cut, what crosses depends on the transport (see [Note: where the air is]): on a split
link the transmitting node puts the precoded symbols ``s`` (complex64 ``[B, n_tx, K]``) on the air
itself and nothing goes to the receiving node through Ray (the frame's header carries the symbols'
scale); otherwise the symbols go through Ray to the node holding ``cut.combiner``, which puts them on
the air through :class:`hil.ota.OTALink`. The last stage computes the loss; its backward returns ``dL/d(input)`` to
the stage before, and so on to the first stage: over the cut, the receiving node runs its part of
the configured gradient mode (the reciprocity echo over the reverse link, the estimated or the exact
channel) and ``dL/ds`` reaches the transmitting node.

[Note: where the air is]
``zmq`` (the channel server; :data:`SPLIT_TRANSPORTS`): each end of the link is opened by its own node's
actor, on its own host. The node holding ``cut.precoder`` opens the transmit half of the forward wiring
and the receive half of the reverse one (``ZmqRadio(..., halves="tx")`` and its ``reverse()``), the node
holding ``cut.combiner`` the other two; each end has its own :class:`hil.ota.transport.PhyTransport` and
:class:`hil.ota.OTALink` ([Note: a link split between two nodes] in hil.ota.transport). A forward burst:
the receiver must be armed before the transmitter sends. The receiver re-arms itself for a burst of the
same size right after it received one, so in the steady state nothing crosses Ray for it; only when the
size changes (the first burst, an epoch's short last batch, an evaluation) does the driver submit the
receiver's :meth:`NodeActor.arm` first and the transmitter's ``forward`` waits on it (Ray passes the
result as an argument; the driver's record is :attr:`hil.cluster.driver.NodeHandle.armed`). Either way
the order holds: the transmitter's next ``forward`` runs after a call that waited on the receiver's last
one. The transmitter frames ``s`` and sends it (:meth:`hil.ota.OTALink.send_forward`; the PHY scales the
payload to its transmit power and writes the scale into the frame's header) and hands on nothing; the
receiver's call synchronises, estimates and decodes the armed burst and undoes the scale
(:meth:`hil.ota.OTALink.receive_forward`). So the driver submits the receiver's call at the same time as
the transmitter's, waiting on nothing (:func:`hil.cluster.run.aired`): it is already waiting for the
burst when the burst comes, and no hand-over through the driver sits between the two nodes. The reverse
link is the same pair the other way: in reciprocity training the transmitter arms its reverse receive
half before it sends the forward burst (the echo answers it), the receiver sends ``conj(dL/dy)`` back
(:meth:`~hil.ota.OTALink.send_echo`; a zero gradient too, as a frame whose header says its payload is
zero), and the transmitter's ``backward``, submitted waiting on nothing, receives the echo
(:meth:`~hil.ota.OTALink.receive_echo`). The driver still waits on every call itself and reports the
first that fails, so a node that waits for a burst its failed peer never sends does not hide the
peer's error (:meth:`hil.cluster.driver.Cluster.get_all`; such a wait ends after
:data:`hil.train.links.SPLIT_WAIT_S`). In ``estimated`` mode ``H_hat^H dL/dy``, computed on the
receiver, goes back through Ray. The reciprocity calibration is
:func:`hil.cluster.run.calibrate_split` (pilots armed and sent the same way; the two ends' pilot
estimates exchanged once through the driver). ``hil run`` starts the channel server on the driver's host
unless ``[ota] endpoint`` names a running one (on a bench of several hosts, a server every host
reaches). A split link carries one burst at a time (arm, transmit, receive), so micro-batches go through
the chain one after the other, and a lost frame is not re-sent (a LinkError names it).

``ideal``, ``loopback`` and ``pluto``: the link is opened by the receiving node's actor alone (the
in-process channel, the loopback radio, or the board with its TX cabled to its own RX: one process
owns them) and the precoded symbols reach it through Ray. Every burst, forward and reverse, still
goes through the configured transport and PHY exactly as in ``hil train``.

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

from hil.errors import LinkError

ROLES = ("edge", "server", "stage")
#: The units of the split MLP, in order (``server.<i>``: the i-th layer of the model's ``server`` part).
EDGE_UNITS = ("edge", "cut.precoder")
CUT_TX, CUT_RX = "cut.precoder", "cut.combiner"
#: transports whose link is split between the transmitting and the receiving node (see [Note: where the air is])
SPLIT_TRANSPORTS = ("zmq",)


def split_air(cfg) -> bool:
    """Whether the over-the-air cut of training config ``cfg`` is opened in halves, one per node."""
    return cfg.ota.transport in SPLIT_TRANSPORTS


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
        #: this node's end of a link split between two nodes ("tx", "rx"; see [Note: where the air is]), or None
        self.air = None
        if split_air(cfg) and (CUT_TX in units) != (CUT_RX in units):
            self.air = "tx" if CUT_TX in units else "rx"
        self._air_ctx: dict[int, tuple] = {}
        #: the receiving end's next burst size when it differs from the last one (set by :meth:`train_steps`)
        self._next_burst: int | None = None
        if self.air is not None:
            self._open_half()
        elif CUT_RX in units:
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
            return self.ota.combine if self.air == "rx" else self._receive  # split: received in _input
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

    def _input(self, step: int, a, train: bool) -> torch.Tensor:
        """This stage's input as a tensor: ``a`` itself, or on the receiving end of a split link (``a`` None) the
        armed burst's payload ``[B, n_rx, K]`` (its time goes to :attr:`_air_s`)."""
        self._air_s = 0.0
        if self.air == "rx":
            t0 = time.perf_counter()
            rec = self.link.receive_forward()
            # ready for the next burst (of this size unless told otherwise) before the transmitter can send it
            # ([Note: where the air is])
            nxt, self._next_burst = self._next_burst, None
            self.link.transport.arm(int(nxt or rec.payload.shape[0]), int(self.cfg.ota.channel_uses))
            self._air_s += time.perf_counter() - t0
            if train:
                self._air_ctx[step] = (self.link.last.channel_estimate, self.link._map)
            return torch.from_numpy(rec.payload)
        return a if isinstance(a, torch.Tensor) else torch.from_numpy(np.asarray(a))

    def _output(self, step: int, out: torch.Tensor, train: bool):
        """What this stage hands on: ``out`` as numpy, or on the transmitting end of a split link None (the
        symbols go over the air, their frame carries everything; see [Note: where the air is])."""
        if self.air != "tx":
            return out.detach().numpy()
        s = out.detach().numpy()
        if train and self.link.gradient_mode == "reciprocity":
            self.link.transport.arm(s.shape[0], s.shape[2], back=True)  # the echo answers this burst: armed first
        t0 = time.perf_counter()
        self.link.send_forward(s)
        self._air_s += time.perf_counter() - t0
        return None

    def _gradient_in(self, g_out):
        """``dL/d(output)``: on the transmitting end of a split link in reciprocity training, the echo of the
        receiver's gradient received over the reverse link (``g_out`` is None); otherwise ``g_out`` itself."""
        if self.air == "tx" and self.link.gradient_mode == "reciprocity":
            return self.link.receive_echo()
        return np.asarray(g_out)

    def _gradient_out(self, step: int, x: torch.Tensor):
        """``dL/d(input)`` for the stage before: on the receiving end of a split link, the receiver's part
        of the gradient mode (reciprocity: the echo sent over the reverse link, None returned; estimated:
        ``H_hat^H dL/dy``)."""
        g = x.grad.numpy()
        if self.air != "rx":
            return g
        est, m = self._air_ctx.pop(step)
        g = self.link.receiver_gradient(g, est, m)
        if self.link.gradient_mode != "reciprocity":
            return g
        self.link.send_echo(g)
        return None

    def _run(self, a: torch.Tensor, train: bool) -> torch.Tensor:
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

    def _open_half(self) -> None:
        """This node's end of a split link: the transmit half of the forward wiring and the receive half of
        the reverse one (``air = "tx"``), or the other way (``"rx"``), on the running channel server."""
        from hil.ota.link import OTALink
        from hil.train.links import open_transport

        cfg = self.cfg
        transport, self._closer = open_transport(cfg.ota, vectors_per_burst=int(cfg.train.batch_size),
                                                 halves=self.air)
        self.transport = transport
        self.link = OTALink(transport, cfg.ota.gradient_mode, None,
                            hold_channel=cfg.ota.hold_channel and self.air == "rx")
        self._pilots = np.random.default_rng(cfg.train.seed)  # the pilots of calibrate_reciprocity, same order

    # -- the ends of a split link (the driver orders them: arm, then transmit, then receive) ------
    def arm(self, step: int, batch: int) -> bool:
        """Receiving end of a split link: expect the next forward burst (``batch`` vectors); call before the
        transmitting node sends (needed only when the size differs from the last burst's: the receiver re-arms
        itself after each burst). Elsewhere nothing to do. Returns True (a value the transmitter's call waits on)."""
        if self.air == "rx":
            self.link.transport.arm(int(batch), int(self.cfg.ota.channel_uses))
        return True

    # the reciprocity calibration (driven by hil.cluster.run.calibrate_split)
    def arm_pilot(self) -> bool:
        """Expect the other end's next calibration pilot (forward on the receiver, reverse on the transmitter)."""
        from hil.ota.link import PILOT_LEN

        self.link.transport.arm(1, PILOT_LEN, back=self.air == "tx")
        return True

    def send_pilot(self, *after) -> bool:
        """Send this end's pilot of the next calibration burst pair (``after``: the peer's :meth:`arm_pilot`)."""
        from hil.ota.link import PILOT_LEN, calibration_pilots

        a, b = calibration_pilots(self._pilots, self.link.n_tx, self.link.n_rx, PILOT_LEN)
        self.link.transport.transmit(a if self.air == "tx" else b, back=self.air == "rx")
        return True

    def receive_pilot(self, *after) -> np.ndarray:
        """The pilot estimate of the armed calibration burst (``after``: the peer's :meth:`send_pilot`)."""
        est = self.link.transport.receive(back=self.air == "tx").channel_estimate
        if est is None:
            raise LinkError(f"{self.link.transport.name}: no channel estimate, cannot calibrate reciprocity")
        return est

    def set_calibration(self, forward: list, reverse: list) -> float:
        """Fit the reciprocity calibration from both ends' pilot estimates (exchanged once, like the relative
        calibration of a TDD array); each end keeps its own weights. Returns the fit's residual."""
        from hil.ota.link import ReciprocityCalibration

        self.link.calibration = ReciprocityCalibration.from_estimates(np.stack(forward), np.stack(reverse))
        self.calibration_frames = 2 * len(forward)
        return self.link.calibration.residual

    # -- who and where --------------------------------------------------------------------
    def info(self) -> dict:
        """``{name, role, host, pid, ray_node_id, ray_node_ip, radios, layers, air}`` of this node.

        ``radios``: one entry per radio this node opened, with ``half`` (``both``, or ``tx``/``rx`` on a split
        link, with its ``wiring`` and the channel server's ``endpoints`` it uses)."""
        radios = []
        if self.link is not None and self.air is None:
            radios.append({"transport": self.link.transport.name, "half": "both", "n_tx": self.link.n_tx,
                           "n_rx": self.link.n_rx, "gradient_mode": self.link.gradient_mode})
        elif self.link is not None:
            t = self.link.transport
            for r in (t.radio, t._rev_radio):
                radios.append({"transport": t.name, "half": r.halves, "n_tx": r.caps.n_tx, "n_rx": r.caps.n_rx,
                               "wiring": f"{r.tx_node}->{r.rx_node}",
                               "endpoints": list(r.tx_endpoints if r.halves == "tx" else r.rx_endpoints),
                               "server": r.control, "gradient_mode": self.link.gradient_mode})
        return {"name": self.name, "role": self.role, **node_location(), "radios": radios,
                "layers": list(self.layer_names), "air": self.air}

    def _timed(self, key: str, t0: float) -> None:
        self.busy_s[key] = self.busy_s.get(key, 0.0) + time.perf_counter() - t0

    # -- the stage ----------------------------------------------------------------------------
    def forward(self, step: int, a, train: bool = True, *after) -> np.ndarray | None:
        """This stage's units on ``a`` (the model input on the first stage, the previous stage's output
        otherwise: float32 activations, or the precoded symbols complex64 ``[B, n_tx, K]``); the output as
        numpy. Training keeps the graph for :meth:`backward`; ``step = -1`` with ``train=False`` is an
        inference request (its wall-clock times go to :meth:`timings`). Across a split link nothing crosses
        Ray (None): the burst carries everything (see :meth:`_input`, :meth:`_output`); ``after``: values
        this call waits for (the receiving end's :meth:`arm`), unused."""
        t_in, t0 = time.time(), time.perf_counter()
        x = self._input(step, a, train)
        if train and not self.first:
            x = x.detach().requires_grad_(True)
        with torch.set_grad_enabled(train):
            out = self._run(x, train)
        if train:
            self._pending[step] = (None if self.first else x, out)
        res = self._output(step, out, train)
        self._timed("forward", t0)
        if not train:
            self.trace.append({"in": t_in, "out": time.time(), "air_s": self._air_s})
        return res

    def backward(self, step: int, g_out: np.ndarray | None, update: bool = False) -> np.ndarray | None:
        """Back-propagate ``dL/d(output)`` of micro-batch ``step`` through this stage; returns ``dL/d(input)``
        (None on the first stage). ``update``: then the optimiser step (the batch's last micro-batch; one
        call less per step)."""
        t0 = time.perf_counter()
        x, out = self._pending.pop(step)
        out.backward(torch.from_numpy(self._gradient_in(g_out)))
        if update:
            self.update()
        self._timed("backward", t0)
        return None if x is None else self._gradient_out(step, x)

    def train_over_air(self, step: int, a, update: bool = False, *after) -> np.ndarray | None:
        """The transmitting end of a split link in reciprocity training: :meth:`forward` of micro-batch ``step``
        (its burst goes over the air), then, with the echo that answers it, :meth:`backward`; one call, as
        nothing the driver holds is needed in between. Returns what :meth:`backward` returns."""
        self.forward(step, a, True)
        return self.backward(step, None, update)

    def train_steps(self, items: list, *after) -> list:
        """Many micro-batches in one call, on a two-node bench whose only link is a split link in reciprocity
        training (see [Note: nodes that run on their own] in hil.cluster.run). On the transmitting end
        ``items`` are ``(step, x, update)`` and each is :meth:`train_over_air`; on the receiving end
        ``(step, y, weight, update, next_size)`` and each is :meth:`forward_backward` (``next_size``: the
        vectors of the burst after this one, to be armed for; None: the same). Returns, per item, nothing
        (transmitting end) or ``(loss, correct, time.perf_counter() at its end)``. ``after``: values this
        call waits for (the receiving end's :meth:`arm`), unused."""
        if self.air == "tx":
            for step, a, update in items:
                self.train_over_air(step, a, update)
            return []
        out = []
        for step, y, weight, update, nxt in items:
            self._next_burst = nxt
            loss, correct, _ = self.forward_backward(step, None, y, weight, update)
            out.append((loss, correct, time.perf_counter()))
        return out

    def forward_backward(self, step: int, a: np.ndarray | None, y: torch.Tensor, weight: float = 1.0,
                         update: bool = False) -> tuple[float, int, np.ndarray | None]:
        """The last stage: its units (over the air first when it holds ``cut.combiner``), the loss, and
        backward to ``dL/d(input)``.

        ``weight`` scales the loss (``len(micro-batch) / len(batch)`` when micro-batching, so the
        accumulated gradients are those of the whole batch); ``update``: then the optimiser step (the
        batch's last micro-batch). Returns ``(loss, correct, dL/d(input))``.
        """
        t0 = time.perf_counter()
        x = self._input(step, a, True).requires_grad_(True)
        out = self._run(x, True)
        y = torch.as_tensor(y)
        loss = nn.functional.cross_entropy(out, y)
        (loss * weight if weight != 1.0 else loss).backward()
        correct = int((out.argmax(1) == y).sum())
        g = self._gradient_out(step, x)  # the echo leaves before the optimiser step (it does not need it)
        if update:
            self.update()
        self._timed("forward_backward", t0)
        return float(loss.detach()), correct, g

    @torch.no_grad()
    def predict(self, a: np.ndarray) -> torch.Tensor:
        """The last stage, eval mode: its units on ``a`` -> predicted classes (an inference request)."""
        t_in, t0 = time.time(), time.perf_counter()
        out = self._run(self._input(-1, a, False), False)
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
