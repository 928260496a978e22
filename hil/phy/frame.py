"""Frame layout and the transmitter.

[Note: frame layout]
Per transmit antenna, in symbols of ``sps`` samples (RRC shaped) then, in OFDM mode, OFDM symbols::

    | preamble | pilots      | header            | quiet | payload ...                            |
    | Np QPSK  | n_tx*Lp     | 100 bits x hs     | Nq 0  | flat/single: [trk][T data][trk]...[trk] |
    | per-ant. | DFT-covered | Walsh x scrambler |       | ofdm: n_tx*R pilot syms, data syms      |

- preamble: a different random QPSK sequence per antenna; detection, coarse+fine CFO, timing.
- pilots: ``P[t, n] = a q[n] exp(-2j pi t n / n_tx)``, orthogonal: ``P P^H = n_tx Lp a^2 I``.
- header: each bit spread by a Walsh row per antenna (orthogonal) times a common scrambler;
  decoded with the pilot channel estimate (MRC over all antennas).
- quiet: all antennas silent; the receiver measures the noise power there.
- payload: B vectors x K channel uses. flat: channel use ``i = b*K + k`` is symbol ``i`` of the
  payload, with a phase-tracking block (``n_tx`` known symbols) every ``track_interval`` symbols
  and one at the end. ofdm: channel use ``i`` is data subcarrier ``i % n_data`` of OFDM data
  symbol ``i // n_data``; each data symbol carries ``ofdm_cpe_pilots`` phase pilots.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from hil.phy.config import PhyConfig
from hil.phy.waveform import HEADER_BITS, ZERO_PAYLOAD_CODE, FrameType, Header, Pulse, Sequences, scale_code_for

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=32)
def _pulse(cfg: PhyConfig) -> Pulse:
    """The :class:`Pulse` of a config, built once (its polyphase table costs more than a frame's layout)."""
    return Pulse(cfg)


class OfdmGrid:
    """Subcarrier bookkeeping of OFDM mode."""

    def __init__(self, cfg: PhyConfig):
        n, u = cfg.ofdm_fft, cfg.ofdm_used
        self.n_fft, self.cp = n, cfg.ofdm_cp
        self.used = np.concatenate([np.arange(-u // 2, 0), np.arange(1, u // 2 + 1)])  # signed
        self.bins = self.used % n
        if cfg.ofdm_cpe_pilots:
            cpe = np.round(np.linspace(0, u - 1, cfg.ofdm_cpe_pilots + 2)[1:-1]).astype(int)
        else:
            cpe = np.zeros(0, int)
        self.cpe_pos = cpe  # positions within `used`
        self.data_pos = np.setdiff1d(np.arange(u), cpe)
        comb = np.arange(0, u, cfg.ofdm_pilot_spacing)
        if comb[-1] != u - 1:
            comb = np.append(comb, u - 1)
        self.pilot_pos = comb
        self.n_data = len(self.data_pos)
        self.sym_len = n + cfg.ofdm_cp
        self.n_pilot_syms = cfg.n_tx * cfg.ofdm_pilot_reps
        self.pilot_amp = float(np.sqrt(cfg.avg_power * n / u))

    def pilot_grid(self, cfg: PhyConfig, seqs: Sequences) -> np.ndarray:
        """Channel pilot symbols ``[n_pilot_syms, n_tx, used]`` (zero off the comb)."""
        s = np.arange(self.n_pilot_syms)
        cover = np.exp(-2j * np.pi * np.outer(s, np.arange(cfg.n_tx)) / cfg.n_tx)  # [S, n_tx]
        grid = np.zeros((self.n_pilot_syms, cfg.n_tx, len(self.used)), np.complex128)
        grid[:, :, self.pilot_pos] = self.pilot_amp * cover[:, :, None] * seqs.ofdm_q[self.pilot_pos][None, None, :]
        return grid

    def cpe_values(self, seqs: Sequences) -> np.ndarray:
        """Phase-pilot values ``[n_tx, n_cpe]``."""
        return self.pilot_amp * seqs.ofdm_cpe[:, : len(self.cpe_pos)]

    def modulate(self, grid: np.ndarray) -> np.ndarray:
        """``[n_sym, n_tx, used]`` frequency grid -> ``[n_tx, n_sym*(N+CP)]`` samples (ortho IFFT)."""
        n_sym, n_tx, _ = grid.shape
        full = np.zeros((n_sym, n_tx, self.n_fft), np.complex128)
        full[:, :, self.bins] = grid
        t = sfft.ifft(full, axis=-1, norm="ortho")
        t = np.concatenate([t[:, :, self.n_fft - self.cp :], t], axis=-1)  # [n_sym, n_tx, N+CP]
        return t.transpose(1, 0, 2).reshape(n_tx, -1)


@dataclass(frozen=True)
class FrameLayout:
    """Where everything sits in a frame of ``batch_size`` x ``channel_uses`` (see [Note: frame layout]).

    Symbol offsets count single-carrier symbols from the first preamble symbol; sample offsets
    count samples from the frame start (sample 0 of the first pulse).
    """

    cfg: PhyConfig
    batch_size: int
    channel_uses: int

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.channel_uses < 1:
            raise ValueError(
                f"a frame needs batch_size >= 1 and channel_uses >= 1, got {self.batch_size}, {self.channel_uses}"
            )
        if self.batch_size > 0xFFFF or self.channel_uses > 0xFFFF:
            raise ValueError(
                f"batch_size={self.batch_size} and channel_uses={self.channel_uses} must be <= 65535 (16 header bits)"
            )

    @property
    def n_uses(self) -> int:
        return self.batch_size * self.channel_uses

    @property
    def pilot_start(self) -> int:
        return self.cfg.preamble_len

    @property
    def n_pilots(self) -> int:
        return self.cfg.n_tx * self.cfg.pilot_len

    @property
    def header_start(self) -> int:
        return self.pilot_start + self.n_pilots

    @property
    def n_header(self) -> int:
        return HEADER_BITS * self.cfg.header_spread

    @property
    def quiet_start(self) -> int:
        return self.header_start + self.n_header

    @property
    def payload_start(self) -> int:
        return self.quiet_start + self.cfg.quiet_len

    @property
    def n_track_blocks(self) -> int:
        if self.cfg.mode == "ofdm" or self.cfg.track_interval == 0:
            return 0
        return -(-self.n_uses // self.cfg.track_interval) + 1

    @property
    def n_payload_symbols(self) -> int:
        """Single-carrier payload symbols (0 in OFDM mode)."""
        if self.cfg.mode == "ofdm":
            return 0
        return self.n_uses + self.n_track_blocks * self.cfg.n_tx

    def payload_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """(data symbol indices ``[n_uses]``, tracking block starts ``[n_blocks]``) within the payload."""
        n_trk, t = self.cfg.n_tx, self.cfg.track_interval
        i = np.arange(self.n_uses)
        if self.n_track_blocks == 0:
            return i, np.zeros(0, int)
        data = i + (i // t + 1) * n_trk
        blocks = np.arange(self.n_track_blocks) * (t + n_trk)
        blocks[-1] = self.n_uses + (self.n_track_blocks - 1) * n_trk  # right after the last data symbol
        return data, blocks

    @property
    def n_sc_symbols(self) -> int:
        return self.payload_start + self.n_payload_symbols

    @property
    def sc_samples(self) -> int:
        return _pulse(self.cfg).n_samples(self.n_sc_symbols)

    @property
    def n_ofdm_data_symbols(self) -> int:
        if self.cfg.mode != "ofdm":
            return 0
        return -(-self.n_uses // OfdmGrid(self.cfg).n_data)

    @property
    def n_samples(self) -> int:
        """Total samples of the frame per antenna."""
        n = self.sc_samples
        if self.cfg.mode == "ofdm":
            g = OfdmGrid(self.cfg)
            n += (g.n_pilot_syms + self.n_ofdm_data_symbols) * g.sym_len
        return n


@dataclass(frozen=True)
class TxInfo:
    """What the transmitter did to one burst.

    Attributes:
        header: the header sent.
        tx_scale: linear amplitude applied to the payload symbols (quantised as in the header).
        clipped_samples: samples (over all antennas) whose magnitude exceeded full scale and were clipped.
        peak_dbfs: peak sample magnitude before clipping, dB relative to full scale.
        avg_dbfs: mean power per antenna over the payload, dB relative to full scale.
        n_samples: burst length per antenna.
    """

    header: Header
    tx_scale: float
    clipped_samples: int
    peak_dbfs: float
    avg_dbfs: float
    n_samples: int


class FrameTransmitter:
    """Builds bursts: ``build(symbols, seq) -> (burst [n_tx, n] complex64, TxInfo)``."""

    def __init__(self, cfg: PhyConfig):
        self.cfg = cfg
        self.pulse = Pulse(cfg)
        self.seqs = Sequences(cfg)
        self.grid = OfdmGrid(cfg) if cfg.mode == "ofdm" else None

    def _scale(self, symbols: np.ndarray, ref_amp: float, data_wave, known_peak: float) -> float:
        cfg = self.cfg
        p = float(np.mean(np.abs(symbols) ** 2))
        if cfg.power_norm == "fixed" or p == 0.0:
            return ref_amp
        if cfg.power_norm == "average":
            return ref_amp / np.sqrt(p)
        lim = 10.0 ** (-cfg.peak_backoff_db / 20.0) - known_peak
        if lim <= 0:
            raise ValueError(
                f"power_norm='peak': the pilots alone reach {20*np.log10(known_peak):.1f} dBFS, above the "
                f"peak limit -{cfg.peak_backoff_db} dBFS; raise backoff_db or lower peak_backoff_db"
            )
        peak = float(np.max(np.abs(data_wave())))
        return lim / peak if peak > 0 else ref_amp

    def build(
        self, symbols: np.ndarray, seq: int = 0, frame_type: int = FrameType.DATA
    ) -> tuple[np.ndarray, TxInfo]:
        """Build one burst.

        Args:
            symbols: complex ``[B, n_tx, K]``: B vectors of K channel uses on n_tx antennas.
            seq: 16-bit sequence number written into the header.
            frame_type: :class:`FrameType`.

        Returns:
            (burst complex64 ``[n_tx, n_samples]`` with ``|x| <= 1``, :class:`TxInfo`).
        """
        cfg = self.cfg
        s = np.asarray(symbols)
        if s.ndim != 3 or s.shape[1] != cfg.n_tx:
            raise ValueError(f"symbols: expected shape [B, n_tx={cfg.n_tx}, K], got {s.shape}")
        if not np.all(np.isfinite(s)):
            raise ValueError("symbols contain NaN or Inf")
        b, _, k = s.shape
        lay = FrameLayout(cfg, b, k)
        a = cfg.amplitude
        seqs, pulse = self.seqs, self.pulse
        # streams [n_tx, U]: channel use i = b*K + k
        streams = s.transpose(1, 0, 2).reshape(cfg.n_tx, -1).astype(np.complex128)

        peak_norm = cfg.power_norm == "peak"
        sc = np.zeros((cfg.n_tx, lay.n_sc_symbols), np.complex128)
        sc[:, : cfg.preamble_len] = a * seqs.preamble
        sc[:, lay.pilot_start : lay.header_start] = a * seqs.pilots

        if cfg.mode == "ofdm":
            grid = self.grid
            cpe = grid.cpe_values(seqs)
            n_sym = lay.n_ofdm_data_symbols

            def data_grid(g: float) -> np.ndarray:
                d = np.zeros((cfg.n_tx, n_sym * grid.n_data), np.complex128)
                d[:, : lay.n_uses] = g * streams
                fg = np.zeros((n_sym, cfg.n_tx, cfg.ofdm_used), np.complex128)
                fg[:, :, grid.data_pos] = d.reshape(cfg.n_tx, n_sym, grid.n_data).transpose(1, 0, 2)
                return fg

            cpe_grid = np.zeros((n_sym, cfg.n_tx, cfg.ofdm_used), np.complex128)
            cpe_grid[:, :, grid.cpe_pos] = cpe[None]
            # the known waveform's peak matters only to power_norm "peak" (see _scale)
            known_peak = float(np.max(np.abs(grid.modulate(cpe_grid)))) if n_sym and peak_norm else 0.0
            scale = self._scale(s, grid.pilot_amp, lambda: grid.modulate(data_grid(1.0)), known_peak)
        else:
            data_pos, blocks = lay.payload_positions()
            pay0 = lay.payload_start
            trk = np.zeros((cfg.n_tx, lay.n_payload_symbols), np.complex128)
            for st in blocks:
                trk[:, st : st + cfg.n_tx] = a * seqs.track

            def data_wave() -> np.ndarray:
                d = np.zeros((cfg.n_tx, lay.n_payload_symbols), np.complex128)
                d[:, data_pos] = streams
                return pulse.shape(d)

            known_peak = float(np.max(np.abs(pulse.shape(trk)))) if len(blocks) and peak_norm else 0.0
            scale = self._scale(s, a, data_wave, known_peak)

        # a payload of zeros has no scale: its header says so and the receiver returns exact zeros
        code = ZERO_PAYLOAD_CODE if not np.any(s) else scale_code_for(scale)
        header = Header(
            frame_type=int(frame_type),
            seq=int(seq) & 0xFFFF,
            batch_size=b,
            channel_uses=k,
            n_tx=cfg.n_tx,
            mode=cfg.mode,
            link_id=cfg.link_id,
            scale_code=code,
        )
        gq = header.tx_scale
        sc[:, lay.header_start : lay.quiet_start] = a * seqs.header_chips(header.to_bits())
        if cfg.mode != "ofdm":
            pay = trk.copy()
            pay[:, data_pos] = gq * streams
            sc[:, lay.payload_start :] = pay
            x = pulse.shape(sc)
            payload_wave = x[:, pay0 * cfg.sps :]
        else:
            pil = grid.modulate(grid.pilot_grid(cfg, seqs))
            dat = grid.modulate(data_grid(gq) + cpe_grid) if n_sym else np.zeros((cfg.n_tx, 0))
            x = np.concatenate([pulse.shape(sc), pil, dat], axis=1)
            payload_wave = dat
        mag = np.abs(x)
        peak = float(mag.max())
        over = mag > 1.0
        clipped = int(over.sum())
        if clipped:
            x[over] /= mag[over]
            log.info("PHY TX: %d samples clipped at full scale (peak %.2f dBFS)", clipped, 20 * np.log10(peak))
        avg = float(np.mean(np.abs(payload_wave) ** 2)) if payload_wave.size else 0.0
        info = TxInfo(
            header=header,
            tx_scale=gq,
            clipped_samples=clipped,
            peak_dbfs=20 * np.log10(max(peak, 1e-30)),
            avg_dbfs=10 * np.log10(max(avg, 1e-30)),
            n_samples=x.shape[1],
        )
        return x.astype(np.complex64), info
