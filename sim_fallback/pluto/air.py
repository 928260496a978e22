"""The virtual Pluto's RF front end: TX DMA -> gains/LO bookkeeping -> channel model -> RX DMA.

[Note: the virtual RF path]
One process holds every virtual Pluto of a bench and the "air" between them. Each node's RX is wired
to one node's TX: itself for a single board (a cable from TX1 to RX1 through an attenuator), the
other board for a two-node bench (A.tx -> B.rx and B.tx -> A.rx). For one RX DMA read of ``n``
samples at node ``r`` whose RX is fed by node ``s``:

1. ``x``: ``s``'s TX DMA content at DAC full scale (int16 / 32768), ``(n_tx, n)``. A cyclic buffer
   repeats from a random phase drawn when it was pushed (a capture starts anywhere in the cycle, as
   on a board); a non-cyclic push is a one-shot FIFO; nothing pushed or TX LO powered down: zeros.
2. TX attenuation per antenna (``out_voltageN_hardwaregain``, <= 0 dB).
3. The link's channel model (``hil.channel.build_channel(spec, rng)``, the ``channel`` table of the
   ``--channel`` file: fading, delay, noise, ...), then the fixed ``path_loss_db`` (cable plus
   attenuator), or a per-antenna cable when no model is given.
4. The LO difference ``f_tx(s) - f_rx(r)`` becomes a frequency offset (``hil.channel``'s
   ``CarrierFrequencyOffset``, phase continuous across reads and retunes); a signal further off
   than half the RX RF bandwidth is not received.
5. RX gain per antenna (``in_voltageN_hardwaregain``; in an AGC mode the node picks the gain that
   puts the peak near -12 dBFS, and the readback shows it).
6. The ADC: ``hil.channel``'s 12-bit ``Quantizer`` (mid-rise, clips at full scale); its level
   ``(k + 1/2) / 2048`` goes out as the code ``k`` in [-2048, 2047], I and Q on scan channels
   2a and 2a+1.

So the received level is ``|x| * 10^((tx_gain_db - path_loss_db + rx_gain_db) / 20)`` of full scale,
which is what the tone test checks.
"""

from __future__ import annotations

import collections
import logging
import threading
from dataclasses import dataclass, field

import numpy as np

from hil.channel import CarrierFrequencyOffset, Quantizer
from hil.radio.pluto import ADC_FULL_SCALE  # 12-bit codes: the one definition, shared with PlutoRadio
from sim_fallback.pluto.model import PlutoModel

log = logging.getLogger(__name__)

DAC_FULL_SCALE = 32768.0
AGC_TARGET_PEAK = 0.25  # -12 dBFS


@dataclass(frozen=True)
class AirConfig:
    """The bench between the virtual Plutos.

    Attributes:
        path_loss_db: loss from a TX port to the RX port it is wired to (cable + attenuator), dB.
        seed: seed of the numpy Generator behind every random draw of the air.
        channel: spec for ``hil.channel.build_channel`` applied on every link, or None (a cable).
    """

    path_loss_db: float = 40.0
    seed: int = 0
    channel: dict | None = field(default=None)


def _build_channel(spec: dict, n_in: int, n_out: int, sample_rate_hz: float, rng: np.random.Generator):
    """The link's channel model from the project's channel library (``hil.channel.build_channel``)."""
    from hil.channel import build_channel

    spec = dict(spec)
    spec.setdefault("n_tx", n_in)
    spec.setdefault("n_rx", n_out)
    spec.setdefault("sample_rate_hz", sample_rate_hz)
    model = build_channel(spec, rng)
    if model.n_in != n_in or model.n_out != n_out:
        raise ValueError(
            f"channel spec gives a {model.n_in}x{model.n_out} model but the link is "
            f"{n_in} TX -> {n_out} RX antennas; set n_tx/n_rx in the channel table to match --mode"
        )
    return model


class Node:
    """One virtual Pluto: its :class:`PlutoModel`, its TX DMA state and its RX clock."""

    def __init__(self, air: "Air", index: int, model: PlutoModel):
        self.air = air
        self.index = index
        self.model = model
        self.n_ant = model.n_chan
        self._lock = threading.Lock()
        self._cyclic: np.ndarray | None = None  # complex (n_ant, L) at DAC full scale
        self._phase = 0
        self._fifo: collections.deque = collections.deque()
        self.rx_clock = 0  # samples received so far (the receiver's time axis)
        self._cfo = None  # hil.channel CarrierFrequencyOffset for the current LO difference
        self._adc = Quantizer(self.n_ant, 12, 1.0)

    # ------------------------------------------------------------------ TX DMA
    def tx_dma(self, enabled: list[int], words: np.ndarray, cyclic: bool) -> None:
        """Take a TX DMA push: int16 ``(samples, len(enabled))`` on scan channels ``enabled``."""
        x = np.zeros((self.n_ant, words.shape[0]), np.complex64)
        for k, ch in enumerate(enabled):
            a, q = divmod(ch, 2)
            if q == 0:
                x[a].real = words[:, k] / DAC_FULL_SCALE
            else:
                x[a].imag = words[:, k] / DAC_FULL_SCALE
        with self._lock:
            if cyclic:
                self._cyclic = x
                self._phase = int(self.air.rng.integers(x.shape[1]))
            else:
                self._fifo.append(x)

    def tx_stop(self) -> None:
        with self._lock:
            self._cyclic = None
            self._fifo.clear()

    def _tx_samples(self, n: int, t0: int) -> np.ndarray:
        """What this node transmits during ``n`` samples from the receiver's time ``t0``."""
        out = np.zeros((self.n_ant, n), np.complex64)
        with self._lock:
            if self.model.powered_down(tx=True):
                return out
            if self._cyclic is not None:
                L = self._cyclic.shape[1]
                idx = (self._phase + t0 + np.arange(n)) % L
                out[:] = self._cyclic[:, idx]
            else:
                k = 0
                while k < n and self._fifo:
                    blk = self._fifo[0]
                    take = min(n - k, blk.shape[1])
                    out[:, k : k + take] = blk[:, :take]
                    if take == blk.shape[1]:
                        self._fifo.popleft()
                    else:
                        self._fifo[0] = blk[:, take:]
                    k += take
        gains = np.array([self.model.gain_db(True, a) for a in range(self.n_ant)])
        return out * (10 ** (gains / 20)).astype(np.float32)[:, None]

    # ------------------------------------------------------------------ RX DMA
    def rx_dma(self, enabled: list[int], n: int) -> np.ndarray:
        """Serve an RX DMA read: int16 ``(n, len(enabled))`` 12-bit codes on scan channels ``enabled``."""
        src = self.air.source_of(self)
        with self.air.lock:  # one read at a time per bench keeps the channel models' clocks coherent
            t0 = self.rx_clock
            self.rx_clock += n
            x = src._tx_samples(n, t0)  # [n_tx, n]
            y = self.air.propagate(src, self, x)  # [n_rx, n]
            fs = self.model.sample_rate_hz()
            df = src.model.lo_hz(tx=True) - self.model.lo_hz(tx=False)
            if abs(df) > self.model.rx_bandwidth_hz() / 2 or self.model.powered_down(tx=False):
                y = np.zeros_like(y)
            else:
                y = self._lo_offset(df, fs)(y)
            y = self._adc(self._rx_gain(y))  # mid-rise 12-bit: levels (k + 1/2) / 2048
        codes = np.floor(np.stack([y.real, y.imag], 1) * ADC_FULL_SCALE)  # the code k of each level
        codes = codes.reshape(2 * self.n_ant, n)  # rows: I0, Q0, I1, Q1
        return np.ascontiguousarray(codes[enabled].T.astype(np.int16))

    def _lo_offset(self, df: float, fs: float) -> CarrierFrequencyOffset:
        """The CFO model of the current LO difference; its phase runs on when the LOs are retuned."""
        c = self._cfo
        if c is None or c.cfo_hz != df or c.sample_rate_hz != fs:
            self._cfo = CarrierFrequencyOffset(self.n_ant, df, fs, c.phase if c is not None else 0.0)
        return self._cfo

    def _rx_gain(self, y: np.ndarray) -> np.ndarray:
        P = self.model.devices[0].id
        g = np.empty(self.n_ant)
        for a in range(self.n_ant):
            mode = self.model.read(P, "dev", (f"voltage{a}", False), "gain_control_mode")
            if mode != "manual":  # the AGC sets the gain; the readback shows what it chose
                peak = float(np.max(np.abs(y[a]))) if y.shape[1] else 0.0
                gain = 71.0 if peak <= 0 else float(np.clip(np.floor(20 * np.log10(AGC_TARGET_PEAK / peak)), -3, 71))
                with self.model.lock:
                    self.model.values[(P, f"in_voltage{a}_hardwaregain")] = f"{gain:.6f} dB"
            g[a] = self.model.gain_db(False, a)
        return y * (10 ** (g / 20)).astype(np.float32)[:, None]


class Air:
    """Every virtual Pluto of a bench and the links between them (see [Note: the virtual RF path]).

    Args:
        models: one :class:`PlutoModel` per node.
        config: the bench (:class:`AirConfig`).
        wiring: ``{rx node: tx node}``; default: one node loops back to itself, two nodes cross.
    """

    def __init__(self, models: list[PlutoModel], config: AirConfig = AirConfig(),
                 wiring: dict[int, int] | None = None):
        if not models:
            raise ValueError("Air needs at least one PlutoModel")
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        self.lock = threading.RLock()
        self.nodes = [Node(self, i, m) for i, m in enumerate(models)]
        if wiring is None:
            wiring = {0: 0} if len(models) == 1 else {i: (i + 1) % len(models) for i in range(len(models))}
        self.wiring = dict(wiring)
        self._channels = {}
        for r, s in self.wiring.items():
            if config.channel is not None:
                self._channels[(s, r)] = _build_channel(config.channel, self.nodes[s].n_ant,
                                                        self.nodes[r].n_ant, models[r].sample_rate_hz(),
                                                        self.rng)

    def source_of(self, node: Node) -> Node:
        return self.nodes[self.wiring[node.index]]

    def propagate(self, src: Node, dst: Node, x: np.ndarray) -> np.ndarray:
        """TX port of ``src`` to RX port of ``dst``: the channel model and the path loss."""
        loss = 10 ** (-self.config.path_loss_db / 20)
        model = self._channels.get((src.index, dst.index))
        if model is not None:
            y = np.asarray(model(x), dtype=np.complex64)
        else:  # a cable per antenna: TX1 -> RX1, TX2 -> RX2
            y = np.zeros((dst.n_ant, x.shape[1]), np.complex64)
            k = min(dst.n_ant, src.n_ant)
            y[:k] = x[:k]
        return (y * loss).astype(np.complex64)
