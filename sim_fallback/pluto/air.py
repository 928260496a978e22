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
   ``CarrierFrequencyOffset``, phase continuous across reads and retunes), attenuated by the RX
   analog filter's response at that offset (see [Note: the receiver front end]).
5. The front end: thermal noise (or the noise of ``snr_db``) and LO leakage at the RX input.
6. RX gain per antenna (``in_voltageN_hardwaregain``; in an AGC mode the node picks the gain that
   puts the peak near -12 dBFS, and the readback shows it).
7. The baseband DC offset (after the gain), then the ADC: ``hil.channel``'s 12-bit ``Quantizer`` (mid-rise, clips at full scale); its level
   ``(k + 1/2) / 2048`` goes out as the code ``k`` in [-2048, 2047], I and Q on scan channels
   2a and 2a+1.

So the received level is ``|x| * 10^((tx_gain_db - path_loss_db + rx_gain_db) / 20)`` of full scale,
which is what the tone test checks.

The TX source is the DMA buffer when one was pushed, else the DDS (two tones per I and Q of each TX
channel from the ``TXn_{I,Q}_F{1,2}`` channels' ``frequency``, ``scale``, ``phase``, on while a
``raw`` is 1): ``I(t) = sum scale * sin(2 pi f t + phase)``, so pyadi-iio's ``dds_single_tone``
(I phase 90 deg, Q phase 0) gives ``scale * exp(+j 2 pi f t)``; the DDS output is rounded to the
DAC's 16-bit words like DMA data. The ``loopback`` debug attribute of ad9361-phy selects:
0 the path above, 1 digital loopback inside the FPGA (the node's own TX words come back as RX codes
``word >> 4``: the 12 most significant bits the DAC uses, sign extended; no gain, no channel, no
noise: bit exact), 2 RF loopback inside the chip (the node's own TX through
:data:`RF_LOOPBACK_LOSS_DB` of coupling instead of the air, then the front end as above).

[Note: the receiver front end]
Unit: amplitude 1.0 at a port is :data:`FULL_SCALE_DBM` (+10 dBm): a full-scale DAC at 0 dB TX
attenuation puts out +10 dBm (the Pluto's data sheet: up to about +7 dBm), and a +10 dBm input at
0 dB RX gain reaches ADC full scale. With that unit:

- Thermal noise at the RX input: ``-174 dBm/Hz + NF(g) + 10 log10(fs)`` (white over the sample rate
  ``fs``), with the noise figure of the gain table: ``NF(g) = NF_MIN_DB + max(0, G_KNEE_DB - g)``
  (3 dB at high gain as the AD9363 data sheet gives at 2.4 GHz; below the knee, 40 dB, the front
  gain stages are backed off and the noise after them dominates, so the floor at the ADC stops
  falling). At ``fs`` = 30.72 MS/s and 71 dB: -35.1 dBFS; the 12-bit ADC adds -74 dBFS.
- ``snr_db`` (``--snr-db``) replaces the thermal noise: noise per receive antenna at
  ``P_rx / 10^(snr_db/10)``, where ``P_rx`` is the signal power at that antenna averaged over the
  fading: the TX power (measured where the signal is on, ``hil.channel.active_power``) times the
  path loss (``E|h|^2 = 1`` for the channel models), in the same bandwidth as the noise (the sample
  rate). Silent reads reuse the last power, so noise never stops.
- A signal whose LO is ``df`` away from the RX LO passes the RX analog filter, a 3rd order
  Butterworth with its corner at half ``rf_bandwidth``: ``|H|^2 = 1 / (1 + (2 df / BW)^6)``; it
  is attenuated, not removed (at ``df`` beyond ``fs/2`` it aliases, as the digital filters that
  would remove it are not modelled).
- LO leakage: the node's own TX LO at :data:`LO_LEAKAGE_DBM` at the RX input, at the offset of the
  TX LO from the RX LO, 30 dB lower at ``df = 0`` while ``rf_dc_offset_tracking_en`` = 1.
- DC offset after the gain: :data:`DC_OFFSET_DBFS` with ``bb_dc_offset_tracking_en`` = 0,
  :data:`DC_RESIDUAL_DBFS` while the tracking runs (the default); a fixed phase per antenna.
- RSSI (``in_voltageN_rssi``) after each read: ``g - P`` in dB, 0.25 dB steps, where ``P`` is the
  power at the ADC in dBFS over that read: the received power referred to the input, larger for a
  weaker signal, as the driver reports it (about 106 dB for the noise floor at 71 dB).

``AirConfig(front_end=False)`` turns noise, leakage and DC off (an ideal receiver, for tests that
need a clean channel; the filter response stays).

[Note: real time]
By default RX is made on demand: a read never waits and never loses samples. With
``realtime=True`` the RX DMA runs on the wall clock from the buffer's ``OPEN``: samples accrue at
the sample rate into a ring of ``buffers_count`` x the buffer size (``SET ... BUFFERS_COUNT``,
libiio's default 4); a read waits until its samples exist; when the reader is so slow that more
than the ring has accrued, the oldest samples are dropped and the RX overflow bit is set in
cf-ad9361-lpc's DMA status register (``0x80000088`` bit 2, write one to clear). A non-cyclic TX
stream that runs dry while it is being received sets the TX underflow bit (cf-ad9361-dds-core-lpc,
bit 0) in either mode.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from hil.channel import CarrierFrequencyOffset, Quantizer, active_power
from hil.radio.pluto import ADC_FULL_SCALE  # 12-bit codes: the one definition, shared with PlutoRadio
from sim_fallback.pluto.model import RX_OVERFLOW_BIT, TX_UNDERFLOW_BIT, PlutoModel

log = logging.getLogger(__name__)

DAC_FULL_SCALE = 32768.0
AGC_TARGET_PEAK = 0.25  # -12 dBFS
#: the front end (see [Note: the receiver front end])
FULL_SCALE_DBM = 10.0
NF_MIN_DB = 3.0
G_KNEE_DB = 40.0
LO_LEAKAGE_DBM = -110.0
DC_OFFSET_DBFS = -40.0
DC_RESIDUAL_DBFS = -80.0
RF_LOOPBACK_LOSS_DB = 30.0
DEFAULT_BUFFERS_COUNT = 4


def thermal_noise_dbfs(gain_db: float, fs_hz: float) -> float:
    """Thermal noise power at the ADC in dBFS (before quantization) at RX gain ``gain_db``."""
    nf = NF_MIN_DB + max(0.0, G_KNEE_DB - gain_db)
    return -174.0 + nf + 10 * math.log10(fs_hz) - FULL_SCALE_DBM + gain_db


def rx_filter_gain(df_hz: float, rf_bandwidth_hz: float) -> float:
    """Amplitude response of the RX analog filter (3rd order Butterworth, corner BW/2) at ``df_hz``."""
    return (1.0 + (2.0 * abs(df_hz) / rf_bandwidth_hz) ** 6) ** -0.5


@dataclass(frozen=True)
class AirConfig:
    """The bench between the virtual Plutos.

    Attributes:
        path_loss_db: loss from a TX port to the RX port it is wired to (cable + attenuator), dB.
        seed: seed of the numpy Generator behind every random draw of the air.
        channel: spec for ``hil.channel.build_channel`` applied on every link, or None (a cable).
        front_end: thermal noise, LO leakage and DC offset on (False: an ideal receiver).
        snr_db: SNR per receive antenna that sets the RX noise instead of the thermal floor.
        realtime: RX accrues in wall time and overflows for a slow reader (see [Note: real time]).
    """

    path_loss_db: float = 40.0
    seed: int = 0
    channel: dict | None = field(default=None)
    front_end: bool = True
    snr_db: float | None = None
    realtime: bool = False

    def __post_init__(self):
        if self.snr_db is not None and not math.isfinite(self.snr_db):
            raise ValueError(f"snr_db must be a finite number of dB, got {self.snr_db}")
        if not math.isfinite(self.path_loss_db):
            raise ValueError(f"path_loss_db must be finite, got {self.path_loss_db}")


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


class AirBoard:
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
        self._streaming = False  # a non-cyclic TX push was made since the last stop
        self.rx_clock = 0  # samples received so far (the receiver's time axis)
        self._cfo = None  # hil.channel CarrierFrequencyOffset for the current LO difference
        self._leak = None  # the same for the node's own TX LO leaking into its RX
        self._adc = Quantizer(self.n_ant, 12, 1.0)
        ph = air.rng.uniform(0, 2 * np.pi, self.n_ant)
        self._dc_dir = np.exp(1j * ph).astype(np.complex64)
        self._last_p_rx = np.ones(self.n_ant)
        self._rt_epoch: float | None = None  # realtime: wall time of the RX buffer's OPEN
        self._rt_taken = 0  # realtime: samples taken or dropped since then
        self._rt_ring = 0  # realtime: ring capacity in samples
        self.overflows = 0

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
                self._streaming = True

    def tx_stop(self) -> None:
        with self._lock:
            self._cyclic = None
            self._fifo.clear()
            self._streaming = False

    def _dds(self, n: int, t0: int) -> np.ndarray | None:
        """The DDS output (DAC full scale, rounded to 16-bit words) or None when the DDS is off."""
        fs = self.model.sample_rate_hz()
        t = (t0 + np.arange(n)) / fs
        out, on = np.zeros((self.n_ant, n), np.complex64), False
        for a in range(self.n_ant):
            tones = self.model.dds_tones(a)
            on |= bool(tones)
            for iq, f, scale, phase_deg in tones:
                if scale == 0:
                    continue
                v = (scale * np.sin(2 * np.pi * f * t + np.deg2rad(phase_deg))).astype(np.float32)
                if iq == "I":
                    out[a].real += v
                else:
                    out[a].imag += v
        if not on:
            return None
        q = lambda v: np.clip(np.round(v * DAC_FULL_SCALE), -32768, 32767) / DAC_FULL_SCALE  # noqa: E731
        return (q(out.real) + 1j * q(out.imag)).astype(np.complex64)

    def _tx_raw(self, n: int, t0: int) -> np.ndarray:
        """The DAC's input during ``n`` samples from the receiver's time ``t0`` (no TX attenuation)."""
        out = np.zeros((self.n_ant, n), np.complex64)
        with self._lock:
            if self.model.powered_down(tx=True):
                return out
            if self._cyclic is not None:
                L = self._cyclic.shape[1]
                idx = (self._phase + t0 + np.arange(n)) % L
                out[:] = self._cyclic[:, idx]
                return out
            if self._fifo or self._streaming:
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
                if k < n and self._streaming:  # the stream ran dry while on air: a TX underflow
                    self._streaming = bool(self._fifo)
                    self.model.set_status("cf-ad9361-dds-core-lpc", TX_UNDERFLOW_BIT)
                return out
        dds = self._dds(n, t0)
        return out if dds is None else dds

    def _tx_samples(self, n: int, t0: int) -> np.ndarray:
        """What this node transmits during ``n`` samples from the receiver's time ``t0``."""
        out = self._tx_raw(n, t0)
        gains = np.array([self.model.gain_db(True, a) for a in range(self.n_ant)])
        return out * (10 ** (gains / 20)).astype(np.float32)[:, None]

    # ------------------------------------------------------------------ RX DMA
    def rx_open(self, samples: int, buffers_count: int = DEFAULT_BUFFERS_COUNT) -> None:
        """An RX buffer was opened: in real time, the DMA starts filling a ring now."""
        self._rt_epoch = time.monotonic()
        self._rt_taken = 0
        self._rt_ring = int(samples) * max(1, int(buffers_count))

    def _realtime(self, n: int) -> int:
        """Wait until ``n`` samples have accrued; returns how many older samples were dropped."""
        fs = self.model.sample_rate_hz()
        if self._rt_epoch is None:
            self.rx_open(n)
        made = int((time.monotonic() - self._rt_epoch) * fs)
        dropped = 0
        if made - self._rt_taken > self._rt_ring:  # the ring wrapped: samples were lost
            dropped = made - self._rt_taken - self._rt_ring
            self._rt_taken += dropped
            self.overflows += 1
            self.model.set_status("cf-ad9361-lpc", RX_OVERFLOW_BIT)
        wait = (self._rt_taken + n - made) / fs
        if wait > 0:
            time.sleep(wait)
        self._rt_taken += n
        return dropped

    def rx_dma(self, enabled: list[int], n: int) -> np.ndarray:
        """Serve an RX DMA read: int16 ``(n, len(enabled))`` 12-bit codes on scan channels ``enabled``."""
        dropped = self._realtime(n) if self.air.config.realtime else 0
        with self.air.lock:  # one read at a time per bench keeps the channel models' clocks coherent
            self.rx_clock += dropped
            t0 = self.rx_clock
            loopback = self.model.debug_int("loopback")
            if loopback == 1:
                words = np.round(self._tx_raw(n, t0) * DAC_FULL_SCALE)
                words = np.clip(words.real, -32768, 32767) + 1j * np.clip(words.imag, -32768, 32767)
                codes = np.stack([words.real, words.imag], 1).astype(np.int16) >> 4  # the DAC's 12 MSBs
            else:
                codes = self._rf_path(n, t0, loopback == 2)
            self.rx_clock += n  # only once the samples exist
        codes = codes.reshape(2 * self.n_ant, n)  # rows: I0, Q0, I1, Q1
        return np.ascontiguousarray(codes[enabled].T.astype(np.int16))

    def _rf_path(self, n: int, t0: int, rf_loopback: bool) -> np.ndarray:
        cfg = self.air.config
        src = self if rf_loopback else self.air.source_of(self)
        x = src._tx_samples(n, t0)  # [n_tx, n]
        if rf_loopback:
            y = x[: self.n_ant] * np.float32(10 ** (-RF_LOOPBACK_LOSS_DB / 20))
        else:
            y = self.air.propagate(src, self, x)  # [n_rx, n]
        fs = self.model.sample_rate_hz()
        bw = self.model.rx_bandwidth_hz()
        rx_lo = self.model.lo_hz(tx=False)
        rx_on = not self.model.powered_down(tx=False)
        df = src.model.lo_hz(tx=True) - rx_lo
        y = self._lo_offset(df, fs)(y) * np.float32(rx_filter_gain(df, bw) if rx_on else 0.0)
        gains = self._rx_gains(y)
        if cfg.front_end or cfg.snr_db is not None:
            y = y + self._input_noise(x, n, gains, fs)
        if cfg.front_end and rx_on:
            y = y + self._lo_leakage(n, fs, bw, rx_lo)
        y = y * (10 ** (gains / 20)).astype(np.float32)[:, None]
        if cfg.front_end:
            dc_db = DC_RESIDUAL_DBFS if self.model.flag("in_voltage_bb_dc_offset_tracking_en") else DC_OFFSET_DBFS
            y = y + (self._dc_dir * np.float32(10 ** (dc_db / 20)))[:, None]
        p = np.mean(np.abs(y) ** 2, axis=1) if n else np.zeros(self.n_ant)
        for a in range(self.n_ant):
            p_dbfs = 10 * np.log10(max(float(p[a]), 1e-30))
            self.model.set_rssi(a, round((gains[a] - p_dbfs) * 4) / 4)
        y = self._adc(y.astype(np.complex64))  # mid-rise 12-bit: levels (k + 1/2) / 2048
        return np.floor(np.stack([y.real, y.imag], 1) * ADC_FULL_SCALE)  # the code k of each level

    def _input_noise(self, x: np.ndarray, n: int, gains: np.ndarray, fs: float) -> np.ndarray:
        """The noise at the RX input: thermal (gain table) or set by ``snr_db``."""
        cfg = self.air.config
        if cfg.snr_db is not None:
            p_tx = active_power(np.ascontiguousarray(x, dtype=np.complex64)) * 10 ** (-cfg.path_loss_db / 10)
            if (self.air.source_of(self).index, self.index) in self.air._channels:
                p = np.full(self.n_ant, p_tx.sum())  # every TX antenna reaches every RX antenna, E|h|^2 = 1
            else:
                p = np.zeros(self.n_ant)
                k = min(self.n_ant, p_tx.shape[0])
                p[:k] = p_tx[:k]
            p = np.where(p > 0, p, self._last_p_rx)
            self._last_p_rx = p
            n0 = p / 10 ** (cfg.snr_db / 10)
        else:
            n0 = np.array([10 ** ((thermal_noise_dbfs(g, fs) - g) / 10) for g in gains])
        w = self.air.rng.standard_normal((self.n_ant, 2 * n), dtype=np.float32).view(np.complex64)
        return w * np.sqrt(n0 / 2).astype(np.float32)[:, None]

    def _lo_leakage(self, n: int, fs: float, bw: float, rx_lo: float) -> np.ndarray:
        if self.model.powered_down(tx=True):
            return np.zeros((self.n_ant, n), np.complex64)
        df = self.model.lo_hz(tx=True) - rx_lo
        level = LO_LEAKAGE_DBM - FULL_SCALE_DBM
        if df == 0 and self.model.flag("in_voltage_rf_dc_offset_tracking_en"):
            level -= 30.0
        c = self._leak
        if c is None or c.cfo_hz != df or c.sample_rate_hz != fs:
            self._leak = c = CarrierFrequencyOffset(self.n_ant, df, fs, c.phase if c is not None else 0.0)
        amp = np.float32(10 ** (level / 20) * rx_filter_gain(df, bw))
        return c(np.full((self.n_ant, n), amp, np.complex64))

    def _lo_offset(self, df: float, fs: float) -> CarrierFrequencyOffset:
        """The CFO model of the current LO difference; its phase runs on when the LOs are retuned."""
        c = self._cfo
        if c is None or c.cfo_hz != df or c.sample_rate_hz != fs:
            self._cfo = CarrierFrequencyOffset(self.n_ant, df, fs, c.phase if c is not None else 0.0)
        return self._cfo

    def _rx_gains(self, y: np.ndarray) -> np.ndarray:
        """The RX gain of each antenna in dB; in an AGC mode the node picks it and the readback shows it."""
        P = self.model.devices[0].id
        g = np.empty(self.n_ant)
        for a in range(self.n_ant):
            mode = self.model.read(P, "dev", (f"voltage{a}", False), "gain_control_mode")
            if mode != "manual":
                peak = float(np.max(np.abs(y[a]))) if y.shape[1] else 0.0
                gain = 71.0 if peak <= 0 else float(np.clip(np.floor(20 * np.log10(AGC_TARGET_PEAK / peak)), -3, 71))
                with self.model.lock:
                    self.model.values[(P, f"in_voltage{a}_hardwaregain")] = f"{gain:.6f} dB"
            g[a] = self.model.gain_db(False, a)
        return g


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
        self.nodes = [AirBoard(self, i, m) for i, m in enumerate(models)]
        if wiring is None:
            wiring = {0: 0} if len(models) == 1 else {i: (i + 1) % len(models) for i in range(len(models))}
        self.wiring = dict(wiring)
        self._channels = {}
        for r, s in self.wiring.items():
            if config.channel is not None:
                self._channels[(s, r)] = _build_channel(config.channel, self.nodes[s].n_ant,
                                                        self.nodes[r].n_ant, models[r].sample_rate_hz(),
                                                        self.rng)

    def source_of(self, node: AirBoard) -> AirBoard:
        return self.nodes[self.wiring[node.index]]

    def propagate(self, src: AirBoard, dst: AirBoard, x: np.ndarray) -> np.ndarray:
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
