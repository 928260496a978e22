"""Transports: what carries precoded symbols from the transmitter to the receiver and back.

[Note: transports]
A transport moves a batch of complex symbols ``[B, n_tx, K]`` (B activation vectors, K channel uses)
over the forward link and returns what the receiver sees, ``[B, n_rx, K]``, *not equalised*
(``~= H @ symbols[b] + noise``), together with the receiver's own pilot estimate of ``H``. It also
moves a batch ``[B, n_rx, K]`` back over the reverse link (the transposed channel, for reciprocity).

- :class:`PhyTransport`: the real thing. Each call is one :class:`hil.phy.PhyLink` frame, i.e. one
  ``Radio.transceive`` of one burst through any Radio (loopback, ZMQ channel server, Pluto). The
  receiver synchronises, corrects CFO and estimates the channel from pilots; it is never handed ``H``.
- :class:`IdealTransport`: in process, no PHY: the flat channel of ``hil.channel`` (fading, memory,
  chain gains, AWGN; see [Note: ideal is hil.channel]) and a simulated pilot estimate. It is the only
  transport that can run the ``exact`` gradient mode, because it exposes the true channel to autograd.

Power convention: a transport sends what it is given. :class:`hil.ota.link.OTALink` scales every
burst to unit average power per symbol before sending and undoes the scale after receiving, so the
SNR configured on the channel is the SNR of the activations (forward) and of the gradients (reverse).
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass

import numpy as np

from hil.errors import LinkError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reception:
    """What a receiver got from one burst.

    Attributes:
        payload: complex64 ``[B, n_out, K]``: received symbols, not equalised.
        channel_estimate: complex64 ``[n_out, n_in]``: the receiver's pilot estimate of the channel
            of this burst (flat), or None when the transport has none.
        noise_var: estimated noise variance per receive antenna, in the units of ``payload``.
        snr_db: estimated SNR per receive antenna, dB.
        cfo_hz: the receiver's carrier frequency offset estimate, Hz (NaN when the transport has no PHY).
    """

    payload: np.ndarray
    channel_estimate: np.ndarray | None
    noise_var: float
    snr_db: float
    cfo_hz: float = float("nan")


class Transport(abc.ABC):
    """Forward and reverse links between a transmitter with ``n_tx`` and a receiver with ``n_rx`` antennas."""

    #: "ideal", "loopback", "zmq" or "pluto"
    name: str = "transport"
    n_tx: int
    n_rx: int
    #: ``10 log10(samples per symbol)``: what a :class:`Reception`'s ``snr_db`` (per symbol, after the
    #: matched filter) exceeds the per-sample SNR of docs/channels.md by (0 without a PHY)
    symbol_gain_db: float = 0.0
    #: the transport scales each burst to its transmit power itself and returns the payload in the units of the
    #: symbols it was given (a PHY frame's header carries the scale); False: send symbols of unit average power
    carries_scale: bool = False

    def __init__(self) -> None:
        #: number of bursts sent, forward and reverse together (on one end of a split link: the bursts it received)
        self.frames = 0

    @abc.abstractmethod
    def send(self, symbols: np.ndarray) -> Reception:
        """Forward link. ``symbols`` complex64 ``[B, n_tx, K]`` -> payload ``[B, n_rx, K]``."""

    @abc.abstractmethod
    def send_back(self, symbols: np.ndarray) -> Reception:
        """Reverse link (transposed channel). ``symbols`` complex64 ``[B, n_rx, K]`` -> ``[B, n_tx, K]``."""

    def send_many(self, batches) -> list[Reception]:
        """Forward link for independent batches, in order: ``[send(b) for b in batches]``; a transport
        whose radio can overlap them (:class:`PhyTransport`) pipelines the bursts."""
        return [self.send(b) for b in batches]

    def true_channel(self) -> np.ndarray | None:
        """The true forward channel ``[n_rx, n_tx]`` when simulated in process, else None."""
        return None

    def close(self) -> None:
        """Release the radios. Idempotent."""

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_symbols(symbols: np.ndarray, n_ant: int, name: str) -> np.ndarray:
    x = np.asarray(symbols)
    if not np.iscomplexobj(x) and not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"{name}: expected complex symbols, got dtype {x.dtype}")
    if x.ndim != 3 or x.shape[1] != n_ant:
        raise ValueError(f"{name}: expected symbols shaped [B, {n_ant}, K], got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: symbols contain NaN or Inf (diverged training? lower the learning rate)")
    return x.astype(np.complex64, copy=False)


def _check_rng(rng) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"IdealTransport: rng must be a numpy.random.Generator, got {type(rng).__name__}")


class IdealTransport(Transport):
    """The in-process transport: a thin adapter over a :class:`hil.channel.ReciprocalLink`; no PHY.

    [Note: ideal is hil.channel]
    The channel is the one every other transport simulates: ``build_reciprocal_link(spec, rng)`` of
    ``hil.channel`` (fading and its memory, TX/RX chain gains, AWGN), built from the same spec and,
    with :func:`hil.channel.link_generator`, the same Generator as the ``loopback`` radio and the
    ZMQ channel server, so the same seed and spec give the same sequence of channel matrices. Per
    burst, forward or reverse, the shared model advances by ``burst_samples`` samples of its clock
    and the burst sees the channel of its first sample, flat over the whole burst (no PHY: symbol
    ``k`` of vector ``b`` is one sample). With a Gauss-Markov spec whose ``block_samples`` is
    ``burst_samples`` (what ``hil train`` builds) the channel thus advances once per burst with
    correlation ``rho``. The burst then runs through the link's own receiver chain
    (``link.forward`` / ``link.reverse``, a :class:`hil.channel.Chain`), so its AWGN has exactly the
    SNR definition of the channel server ([Note: SNR reference] in ``hil.channel.awgn``; with fading,
    the average SNR over the fading from the measured transmit power). Only flat shared channels
    (:class:`~hil.channel.FlatFading`, :class:`~hil.channel.FixedMatrix`) and noise stages fit a
    transport without a PHY; a TDL, a replayed recording, CFO or other receiver impairments need
    the PHY (``loopback``). The true channel is exposed by :meth:`true_channel` alone, for the
    ``exact`` gradient mode; everything else sees only the payload and a simulated pilot estimate.

    The forward channel is ``R_b H T_a`` and the reverse ``R_a H^T T_b`` (``T``/``R``: diagonal
    TX/RX chain gains of node a, the transmitter, and node b): with unequal gains the two are not
    transposes of each other (uncalibrated reciprocity).

    Args (the short form, mapped onto a spec by :func:`ideal_spec`):
        n_tx: transmit antennas of node a.
        n_rx: receive antennas of node b.
        snr_db: SNR per receive antenna (average over the fading); None: no noise.
        rng: the Generator the link is built from (:func:`hil.channel.link_generator` for a seed).
        rho: Gauss-Markov correlation per burst, in [0, 1] (1: static).
        channel: a fixed channel ``[n_rx, n_tx]`` (e.g. identity) instead of Rayleigh fading.
        chain_gain_std_db: spread of the TX/RX chain amplitudes (0: equal gains, calibrated).
        chain_phase: draw random TX/RX chain phases (uncalibrated hardware has them).
        pilot_symbols: pilot symbols per transmit antenna behind the simulated LS estimate.

    :meth:`from_spec` builds one from any flat ``hil.channel`` link spec.
    """

    name = "ideal"

    def __init__(
        self,
        n_tx: int,
        n_rx: int,
        snr_db: float | None,
        rng: np.random.Generator,
        rho: float = 1.0,
        channel: np.ndarray | None = None,
        chain_gain_std_db: float = 0.0,
        chain_phase: bool = False,
        pilot_symbols: int = 16,
    ):
        from hil.channel import FixedMatrix, build_reciprocal_link

        _check_rng(rng)
        spec = ideal_spec(n_tx, n_rx, snr_db, rho=rho, chain_gain_std_db=chain_gain_std_db,
                          chain_phase=chain_phase, fixed=channel is not None)
        model = None
        if channel is not None:
            channel = np.asarray(channel, np.complex64)
            if channel.shape != (n_rx, n_tx):
                raise ValueError(f"channel: expected shape ({n_rx}, {n_tx}), got {channel.shape}")
            model = FixedMatrix(channel)
        self._attach(build_reciprocal_link(spec, rng, model=model), rng, 1, pilot_symbols)

    @classmethod
    def from_spec(cls, spec: dict, rng: np.random.Generator, burst_samples: int | None = None,
                  pilot_symbols: int = 16) -> "IdealTransport":
        """An ideal transport over ``build_reciprocal_link(spec, rng)``.

        Args:
            spec: a ``hil.channel`` link spec (``n_a``/``n_b`` or ``n_tx``/``n_rx``, flat fading,
                time behaviour, chain gains, ``snr_db`` or ``noise_power``). ``noise`` defaults to
                "exact" here (fresh noise per burst; the pool's table is not checkpointed).
            rng: the link's Generator (:func:`hil.channel.link_generator` of the seed).
            burst_samples: model-clock samples per burst; default ``block_samples`` for block and
                Gauss-Markov fading (one block per burst), 1 for a static channel.
            pilot_symbols: pilot symbols per transmit antenna behind the simulated LS estimate.

        Raises:
            ValueError: the spec is invalid or needs a PHY (TDL, replay, CFO, ...).
        """
        from hil.channel import build_reciprocal_link

        if not isinstance(spec, dict):
            raise ValueError(f"the ideal transport needs a dict of hil.channel keys, got {spec!r} "
                             "(a recording, replay:DIR, needs the PHY: use transport 'loopback')")
        _check_rng(rng)
        self = cls.__new__(cls)
        self._attach(build_reciprocal_link({"noise": "exact", **spec}, rng), rng, burst_samples, pilot_symbols)
        return self

    def _attach(self, link, rng: np.random.Generator, burst_samples: int | None, pilot_symbols: int) -> None:
        from hil.channel import AWGN, FixedMatrix, FlatFading

        Transport.__init__(self)
        if int(pilot_symbols) < 1:
            raise ValueError(f"pilot_symbols must be >= 1, got {pilot_symbols}")
        if not isinstance(link.model, (FlatFading, FixedMatrix)):
            raise ValueError(f"the ideal transport simulates flat channels only, got {type(link.model).__name__}; "
                             "use transport 'loopback' (through the PHY) for TDL or recorded channels")
        self._posts = {}
        for reverse, chain in ((False, link.forward), (True, link.reverse)):
            posts = list(getattr(chain, "stages", [chain])[1:])
            bad = [type(st).__name__ for st in posts if not isinstance(st, AWGN)]
            if bad:
                raise ValueError(f"the ideal transport has no PHY to undo {', '.join(bad)}; remove those "
                                 "keys (cfo_hz, delay_samples, ...) or use transport 'loopback'")
            self._posts[reverse] = posts
        if burst_samples is None:
            tb = getattr(link.model, "time", None)
            if tb is None or tb.kind == "static":
                burst_samples = 1
            elif tb.kind in ("block", "gauss_markov"):
                burst_samples = int(tb.block_samples)
            else:
                raise ValueError(f"a {tb.kind!r} channel on the ideal transport needs burst_samples "
                                 "(model-clock samples per burst)")
        if int(burst_samples) < 1:
            raise ValueError(f"burst_samples must be >= 1, got {burst_samples}")
        self.link = link
        self.n_tx, self.n_rx = int(link.n_a), int(link.n_b)
        self.burst_samples = int(burst_samples)
        self.pilot_symbols = int(pilot_symbols)
        self._est_rng = rng.spawn(1)[0]  # the simulated pilot estimates' own stream
        self._raw = link.model.generate(self.burst_samples)  # the shared channel of the next burst
        self._last_forward = None  # the shared channel of the latest forward burst
        #: False: a reverse burst crosses the channel of the latest forward burst and does not advance
        #: it (the best possible ordering of a TDD exchange; for benchmarks). Default True: every burst
        #: advances the channel, as through a radio.
        self.reverse_advances = True

    # -- the channel ---------------------------------------------------------------------------
    def _matrix(self, reverse: bool) -> np.ndarray:
        return self.link.effective(self._raw, reverse).mats[0, 0]

    def true_channel(self) -> np.ndarray:
        """The forward channel ``R_b H T_a`` ``[n_rx, n_tx]`` of the next burst (``exact`` mode only)."""
        return self._matrix(False).copy()

    def _through(self, reverse: bool, x: np.ndarray) -> Reception:
        from hil.channel.fading import FirCoeffs
        from hil.channel.random import complex_normal

        held_back = reverse and not self.reverse_advances and self._last_forward is not None
        raw = self._last_forward if held_back else self._raw
        c = self.link.effective(raw, reverse)
        g = c.mats[0, 0]
        b, n_in, k = x.shape
        flat = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(n_in, b * k)
        chain = self.link.reverse if reverse else self.link.forward
        held = FirCoeffs(t0=0, S=None, mats=c.mats[:1], lags=c.lags)  # flat over the burst
        posts = self._posts[reverse]
        if posts:
            y = chain.apply(flat, [held, *(st.generate(b * k) for st in posts)])
            n0 = np.asarray(posts[-1].state()["noise_power"], np.float64)
        else:
            y = chain.apply(flat, held)
            n0 = np.zeros(g.shape[0])
        y = np.ascontiguousarray(y.reshape(g.shape[0], b, k).transpose(1, 0, 2))
        # LS estimate from `pilot_symbols` orthogonal unit-power pilots per antenna: error variance
        # N0_r / pilot_symbols per entry of row r
        err = complex_normal(self._est_rng, g.shape) * np.sqrt(n0 / self.pilot_symbols)[:, None]
        noise_var = float(np.mean(n0))
        snr = float("inf") if noise_var == 0 else 10 * np.log10(max(np.mean(np.abs(y) ** 2) / noise_var - 1, 1e-12))
        self.frames += 1
        if not reverse:
            self._last_forward = raw
        if not held_back:
            self._raw = self.link.model.generate(self.burst_samples)
        return Reception(y.astype(np.complex64), (g + err).astype(np.complex64), noise_var, float(snr))

    def send(self, symbols: np.ndarray) -> Reception:
        return self._through(False, _check_symbols(symbols, self.n_tx, "IdealTransport.send"))

    def send_back(self, symbols: np.ndarray) -> Reception:
        return self._through(True, _check_symbols(symbols, self.n_rx, "IdealTransport.send_back"))

    # -- checkpoints ---------------------------------------------------------------------------
    def _noise_stages(self) -> list:
        return [*self._posts[False], *self._posts[True]]

    def state_dict(self) -> dict:
        """The channel's state for a checkpoint (plain values and tensors; loads with weights_only):
        the Generators of the fading process, the noise and the estimates, the process's current
        draw and clock, and the channel of the next burst."""
        import torch

        m = self.link.model
        proc = getattr(m, "process", None)
        st = {
            "frames": int(self.frames),
            "clock": int(m.clock),
            "next": torch.from_numpy(np.ascontiguousarray(self._raw.mats)),
            "next_t0": int(self._raw.t0),
            "last_forward": None if self._last_forward is None else torch.from_numpy(
                np.ascontiguousarray(self._last_forward.mats)),
            "est_rng": self._est_rng.bit_generator.state,
            "noise": [{"rng": a.rng.bit_generator.state, "last_power": torch.from_numpy(a._last_power.copy()),
                       "last_n0": torch.from_numpy(a._last_n0.copy())} for a in self._noise_stages()],
        }
        if proc is not None:
            st["process"] = {"rng": proc.rng.bit_generator.state, "k": int(proc._k),
                             "g": None if proc._g is None else torch.from_numpy(np.asarray(proc._g).copy())}
        return st

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict` of a transport built with the same arguments."""
        import dataclasses

        def arr(v):
            return np.asarray(v.numpy() if hasattr(v, "numpy") else v)

        nxt = arr(state["next"]).astype(np.complex64)
        if nxt.shape != self._raw.mats.shape:
            raise ValueError(f"IdealTransport.load_state_dict: channel shape {nxt.shape}, this link has "
                             f"{self._raw.mats.shape}; build the transport with the checkpoint's spec")
        noise = list(state["noise"])
        if len(noise) != len(self._noise_stages()):
            raise ValueError(f"IdealTransport.load_state_dict: {len(noise)} noise stages in the checkpoint, "
                             f"this link has {len(self._noise_stages())}; build it with the checkpoint's spec")
        m = self.link.model
        proc = getattr(m, "process", None)
        if (proc is None) != (state.get("process") is None):
            raise ValueError("IdealTransport.load_state_dict: the checkpoint is of another kind of channel")
        for a, s in zip(self._noise_stages(), noise):
            a.rng.bit_generator.state = s["rng"]
            a._last_power, a._last_n0 = arr(s["last_power"]).astype(np.float64), arr(s["last_n0"]).astype(np.float64)
        if proc is not None:
            p = state["process"]
            proc.rng.bit_generator.state = p["rng"]
            proc._k = int(p["k"])
            proc._g = None if p["g"] is None else arr(p["g"]).astype(np.complex128)
        self._est_rng.bit_generator.state = state["est_rng"]
        m.clock = int(state["clock"])
        self._raw = dataclasses.replace(self._raw, mats=nxt, t0=int(state["next_t0"]))
        lf = state.get("last_forward")
        self._last_forward = None if lf is None else dataclasses.replace(self._raw, mats=arr(lf).astype(np.complex64))
        self.frames = int(state["frames"])


def ideal_spec(n_tx: int, n_rx: int, snr_db: float | None, rho: float = 1.0, chain_gain_std_db: float = 0.0,
               chain_phase: bool = False, fixed: bool = False) -> dict:
    """The ``hil.channel`` link spec of :class:`IdealTransport`'s short form: flat Rayleigh (unless
    ``fixed``: the caller gives the matrix), Gauss-Markov ``rho`` per burst (one-sample blocks, one
    per burst), exact AWGN at ``snr_db`` (the average over the fading), random chain gains."""
    if int(n_tx) < 1 or int(n_rx) < 1:
        raise ValueError(f"n_tx and n_rx must be >= 1, got {n_tx}, {n_rx}")
    if not 0.0 <= float(rho) <= 1.0:
        raise ValueError(f"rho must be in [0, 1], got {rho}")
    spec: dict = {"n_a": int(n_tx), "n_b": int(n_rx), "noise": "exact"}
    if not fixed:
        spec["fading"] = "rayleigh"
        if float(rho) < 1.0:
            spec.update(time="gauss_markov", rho=float(rho), block_samples=1)
    elif float(rho) < 1.0:
        raise ValueError("a fixed channel does not drift; give rho = 1 with channel=")
    if snr_db is not None:
        spec["snr_db"] = float(snr_db)
    if float(chain_gain_std_db) > 0 or chain_phase:
        spec["chain_gains"] = {"amplitude_db_std": float(chain_gain_std_db),
                               "phase_deg_max": 180.0 if chain_phase else 0.0}
    return spec


class PhyTransport(Transport):
    """Symbols over a Radio through the PHY: one :class:`hil.phy.PhyLink` frame per call.

    Args:
        radio: the forward radio (node a's TX wired to node b's RX). Its ``reverse()`` radio carries
            :meth:`send_back`; when it has none, only the ``estimated`` gradient mode is possible.
        name: the transport's name in reports ("loopback", "zmq", "pluto").
        phy_options: extra :class:`hil.phy.PhyConfig` fields (sample_rate_hz, mode, ...).
        retries: frames re-sent after a SyncError before the error propagates.
        track_phase: remove the common phase that changes from burst to burst (see
            [Note: common phase between bursts]).
        phase_smoothing: weight of a new burst in the tracked phase reference, in (0, 1].

    [Note: common phase between bursts]
    Two oscillators that differ by a CFO drift in phase between bursts; the PHY corrects the CFO
    *within* a burst, but each burst's payload and pilot estimate carry a different common phase
    ``e^{j theta}``. A layer ``W = Re(C^H H P)`` is not invariant to that phase, so the receiver
    removes it: ``theta = angle(sum(conj(H_ref) * H_hat))`` against a reference estimate that it
    smooths over bursts (``H_ref <- (1 - a) H_ref + a H_hat e^{-j theta}``), and de-rotates payload
    and estimate by ``theta``. This uses one scalar per burst from the pilots, never ``H`` itself
    for the gradient. Each direction keeps its own reference; the constant phase between the two
    references is part of what :func:`hil.ota.link.calibrate_reciprocity` measures and removes.

    [Note: a link split between two nodes]
    A PhyTransport over the transmit half of a radio (``ZmqRadio(..., halves="tx")``, whose ``reverse()`` is
    a receive half) is node a's end of the link, one over the receive half node b's: node b calls
    :meth:`arm`, node a :meth:`transmit`, node b :meth:`receive` (the PHY's synchronisation, CFO and
    channel estimation run there), and the reverse link the same way with ``back=True``. The two ends
    frame and decode with the same :class:`hil.phy.PhyLink` code as :meth:`send`; a lost frame is not
    re-sent (the ``retries`` of :meth:`send` need both ends in one process).
    """

    def __init__(
        self,
        radio,
        name: str = "loopback",
        phy_options: dict | None = None,
        retries: int = 2,
        track_phase: bool = True,
        phase_smoothing: float = 0.2,
    ):
        super().__init__()
        if not 0.0 < phase_smoothing <= 1.0:
            raise ValueError(f"phase_smoothing must be in (0, 1], got {phase_smoothing}")
        self.track_phase = bool(track_phase)
        self.phase_smoothing = float(phase_smoothing)
        self._ref: dict[str, np.ndarray] = {}
        from hil.phy import PhyConfig, PhyLink  # the PHY is only needed for this transport

        self.name = name
        self.radio = radio
        caps = radio.caps
        self.n_tx, self.n_rx = int(caps.n_tx), int(caps.n_rx)
        opts = dict(phy_options or {})
        opts.setdefault("mode", "flat")
        self._fwd = PhyLink(radio, PhyConfig(n_tx=self.n_tx, n_rx=self.n_rx, **opts))
        self.carries_scale = self._fwd.cfg.power_norm != "fixed"  # the PHY normalises each burst's payload
        self.symbol_gain_db = float(10 * np.log10(self._fwd.cfg.sps))
        self._rev = None
        try:
            rev_radio = radio.reverse()
        except NotImplementedError:
            rev_radio = None
        self._rev_radio = rev_radio
        if rev_radio is not None:
            try:
                self._rev = PhyLink(rev_radio, PhyConfig(n_tx=self.n_rx, n_rx=self.n_tx, **opts))
            except BaseException:
                # the caller closes the radio it handed in; the reverse radio was opened here
                if rev_radio is not radio:
                    try:
                        rev_radio.close()
                    except Exception:  # noqa: BLE001 - the original error matters more
                        log.exception("closing the reverse radio after a failed PhyLink")
                raise
        self.retries = int(retries)

    @property
    def links(self) -> tuple:
        """The :class:`hil.phy.PhyLink` of the forward link and of the reverse one (None without a
        reverse radio): their ``receiver`` and per-phase ``seconds``."""
        return self._fwd, self._rev

    def _derotate(self, key: str, payload: np.ndarray, est: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        if not self.track_phase or est is None:
            return payload, est
        ref = self._ref.get(key)
        if ref is None:
            self._ref[key] = est.copy()
            return payload, est
        rot = np.exp(-1j * np.angle(np.sum(np.conj(ref) * est))).astype(np.complex64)
        est = est * rot
        a = self.phase_smoothing
        self._ref[key] = ((1 - a) * ref + a * est).astype(np.complex64)
        return payload * rot, est

    def _go(self, link, symbols: np.ndarray, attempts: int | None = None, last: Exception | None = None) -> Reception:
        from hil.errors import SyncError

        attempts = self.retries + 1 if attempts is None else attempts
        for attempt in range(attempts):
            try:
                res = link.transceive(symbols)
            except SyncError as e:  # a lost frame is re-sent, as a real ARQ would
                last = e
                self.frames += 1
                log.warning("frame lost (%s), re-sending (attempt %d)", e, attempt + 1)
                continue
            self.frames += 1
            return self._reception(link, res)
        raise LinkError(f"{self.name}: {self.retries + 1} frames in a row were lost; last error: {last}") from last

    def _reception(self, link, res) -> Reception:
        """The PHY's result of one received frame as a :class:`Reception` (common phase removed)."""
        est = None if res.channel_estimate is None else np.asarray(res.channel_estimate, np.complex64)
        payload, est = self._derotate("forward" if link is self._fwd else "reverse",
                                      np.asarray(res.payload, np.complex64), est)
        return Reception(payload, est, float(res.noise_var), float(res.snr_db),
                         float(getattr(res, "cfo_hz", float("nan"))))

    def send_many(self, batches) -> list[Reception]:
        """Forward link for independent batches, double-buffered (``PhyLink.transceive_many``: burst
        i + 1 is on its way while burst i decodes). Without a lost frame the receptions equal
        ``[send(b) for b in batches]``; a lost frame is re-sent after the stream (up to ``retries``
        more times), so with losses the later bursts see the channel a few bursts earlier."""
        from hil.errors import SyncError

        xs = [_check_symbols(b, self.n_tx, f"{self.name}.send") for b in batches]
        out = []
        for x, res in zip(xs, self._fwd.transceive_many(xs)):
            self.frames += 1
            if isinstance(res, SyncError):
                log.warning("frame lost (%s), re-sending (attempt 1)", res)
                out.append(self._go(self._fwd, x, attempts=self.retries, last=res))
            else:
                out.append(self._reception(self._fwd, res))
        return out

    def _reverse_link(self):
        if self._rev is None:
            raise LinkError(
                f"{self.name}: the radio has no reverse link; use gradient_mode='estimated' or a radio "
                "whose reverse() works (LoopbackRadio with reverse_channel=, ZmqRadio)"
            )
        return self._rev

    def send(self, symbols: np.ndarray) -> Reception:
        return self._go(self._fwd, _check_symbols(symbols, self.n_tx, f"{self.name}.send"))

    def send_back(self, symbols: np.ndarray) -> Reception:
        rev = self._reverse_link()
        return self._go(rev, _check_symbols(symbols, self.n_rx, f"{self.name}.send_back"))

    # -- the halves (see [Note: a link split between two nodes]) ----------------------------------
    def transmit(self, symbols: np.ndarray, back: bool = False) -> None:
        """Transmit half: frame and send one burst, forward (node a, ``[B, n_tx, K]``) or with ``back`` over the
        reverse link (node b, ``[B, n_rx, K]``)."""
        link = self._reverse_link() if back else self._fwd
        n = self.n_rx if back else self.n_tx
        link.transmit(_check_symbols(symbols, n, f"{self.name}.transmit"))

    def arm(self, batch_size: int, channel_uses: int, back: bool = False) -> None:
        """Receive half: expect the next burst of ``batch_size`` vectors of ``channel_uses`` symbols, forward
        (node b) or with ``back`` the reverse link's (node a). Call before the other node transmits."""
        (self._reverse_link() if back else self._fwd).arm(batch_size, channel_uses)

    def receive(self, back: bool = False) -> Reception:
        """Receive half: the armed burst as :meth:`send` (or :meth:`send_back`) returns it.

        Raises LinkError for a lost frame: the transmitter is on another node and does not re-send it."""
        from hil.errors import SyncError

        link = self._reverse_link() if back else self._fwd
        try:
            res = link.receive()
        except SyncError as e:
            self.frames += 1
            raise LinkError(f"{self.name}: a {'reverse' if back else 'forward'} frame was lost ({e}); the "
                            "transmitter is another node and does not re-send it: raise the SNR") from e
        self.frames += 1
        return self._reception(link, res)

    def close(self) -> None:
        try:
            if self._rev_radio is not None and self._rev_radio is not self.radio:
                self._rev_radio.close()
        finally:
            self.radio.close()
