"""PhyConfig: every parameter of the frame, shared by the transmitter and the receiver.

Both ends of a link must use the same PhyConfig (like two modems agreeing on a standard): the
known sequences are drawn from ``seed``, the layout follows from the lengths below.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from hil._io import from_section

MODES = ("single", "flat", "ofdm")
POWER_NORMS = ("average", "peak", "fixed")
ESTIMATORS = ("ls", "lmmse")


@dataclass(frozen=True)
class PhyConfig:
    """Parameters of the PHY frame (see docs/phy.md for the layout).

    Attributes:
        n_tx: transmit antennas (1..4).
        n_rx: receive antennas (>= 1).
        mode: payload mode: ``"single"`` (single carrier, one transmit antenna), ``"flat"`` (single
            carrier MIMO: one channel use = one symbol time on all ``n_tx`` antennas), ``"ofdm"``
            (each channel use is one subcarrier of one OFDM symbol).
        sample_rate_hz: radio sample rate; only used to convert CFO to Hz.
        sps: samples per single-carrier symbol (root-raised-cosine pulse shaping).
        rrc_rolloff: roll-off of the RRC pulse.
        rrc_span: RRC length in symbols (even).
        preamble_len: preamble symbols (random QPSK, a different sequence per transmit antenna).
        pilot_len: channel-estimation pilot symbols per transmit antenna (total ``n_tx*pilot_len``).
        header_spread: chips per header bit (Walsh code x scrambler, orthogonal across antennas).
        quiet_len: silent symbols after the header, for the noise-power estimate.
        track_interval: payload symbols between two phase-tracking pilot blocks (0: no tracking).
        track_smooth: blocks averaged (odd) when smoothing the tracked phase.
        backoff_db: average power per antenna below DAC full scale (|x| = 1), in dB.
        power_norm: payload scaling: ``"average"`` (payload mean power = the back-off; clipping above
            full scale is counted), ``"peak"`` (payload peak = ``-peak_backoff_db`` dBFS; no
            clipping), ``"fixed"`` (symbols taken as unit power, scaled like the pilots).
        peak_backoff_db: peak level for ``power_norm="peak"``, dB below full scale.
        max_cfo_hz: CFO search range (+-) of the detector.
        p_fa: false-alarm probability per capture of noise only, sets the detection threshold.
        estimator: which estimate ``RxResult.channel_estimate`` holds and the receiver uses.
        link_id: 8-bit identity in the header; frames of another link are rejected.
        ofdm_fft, ofdm_cp: OFDM FFT size and cyclic prefix (samples).
        ofdm_used: used subcarriers (even; +-used/2 around DC, DC empty).
        ofdm_cpe_pilots: phase-tracking pilot subcarriers in each OFDM data symbol.
        ofdm_pilot_spacing: channel pilots on every n-th used subcarrier, linear interpolation between.
        ofdm_pilot_reps: repetitions of the ``n_tx`` pilot OFDM symbols.
        ofdm_delay_spread_samples: r.m.s. delay spread assumed by the OFDM LMMSE prior.
        seed: seed of the known sequences (preamble, pilots, scrambler).
    """

    n_tx: int = 1
    n_rx: int = 1
    mode: str = "flat"
    sample_rate_hz: float = 1e6
    sps: int = 2
    rrc_rolloff: float = 0.25
    rrc_span: int = 16
    preamble_len: int = 128
    pilot_len: int = 8
    header_spread: int = 8
    quiet_len: int = 64
    track_interval: int = 32
    track_smooth: int = 5
    backoff_db: float = 12.0
    power_norm: str = "average"
    peak_backoff_db: float = 1.0
    max_cfo_hz: float = 120e3
    p_fa: float = 1e-5
    estimator: str = "lmmse"
    link_id: int = 0
    ofdm_fft: int = 64
    ofdm_cp: int = 16
    ofdm_used: int = 40
    ofdm_cpe_pilots: int = 4
    ofdm_pilot_spacing: int = 1
    ofdm_pilot_reps: int = 1
    ofdm_delay_spread_samples: float = 2.0
    seed: int = 0x5EED

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> None:
            raise ValueError(f"PhyConfig.{name}={getattr(self, name)!r}: {why}")

        if not 1 <= self.n_tx <= 4:
            bad("n_tx", "must be 1..4 (2 header bits)")
        if self.n_rx < 1:
            bad("n_rx", "must be >= 1")
        if self.mode not in MODES:
            bad("mode", f"must be one of {MODES}")
        if self.mode == "single" and self.n_tx != 1:
            bad("n_tx", "mode='single' sends one stream from one antenna: use n_tx=1, or mode='flat' for MIMO")
        if self.power_norm not in POWER_NORMS:
            bad("power_norm", f"must be one of {POWER_NORMS}")
        if self.estimator not in ESTIMATORS:
            bad("estimator", f"must be one of {ESTIMATORS}")
        if self.sample_rate_hz <= 0:
            bad("sample_rate_hz", "must be > 0")
        if self.sps < 1:
            bad("sps", "must be >= 1")
        if not 0.0 < self.rrc_rolloff <= 1.0:
            bad("rrc_rolloff", "must be in (0, 1]")
        if self.rrc_span < 2 or self.rrc_span % 2:
            bad("rrc_span", "must be an even number >= 2")
        if self.preamble_len < 16:
            bad("preamble_len", "must be >= 16 symbols")
        if self.pilot_len < 1:
            bad("pilot_len", "must be >= 1")
        hs = self.header_spread
        if hs < self.n_tx or hs & (hs - 1):
            bad("header_spread", f"must be a power of two >= n_tx={self.n_tx}")
        if self.quiet_len < self.rrc_span + 8:
            bad("quiet_len", f"must be >= rrc_span + 8 = {self.rrc_span + 8} symbols")
        if self.track_interval < 0:
            bad("track_interval", "must be >= 0 (0 disables phase tracking)")
        if self.track_smooth < 1 or self.track_smooth % 2 == 0:
            bad("track_smooth", "must be an odd number >= 1")
        if self.backoff_db < 0:
            bad("backoff_db", "must be >= 0 dB below full scale")
        if self.peak_backoff_db < 0:
            bad("peak_backoff_db", "must be >= 0 dB below full scale")
        if not 0 <= self.max_cfo_hz / self.sample_rate_hz <= 0.15:
            bad("max_cfo_hz", "must be within 0..0.15 * sample_rate_hz")
        if not 0.0 < self.p_fa < 1.0:
            bad("p_fa", "must be in (0, 1)")
        if not 0 <= self.link_id <= 255:
            bad("link_id", "must be 0..255 (8 header bits)")
        if self.ofdm_fft < 8 or self.ofdm_fft & (self.ofdm_fft - 1):
            bad("ofdm_fft", "must be a power of two >= 8")
        if not 0 <= self.ofdm_cp < self.ofdm_fft:
            bad("ofdm_cp", "must be in [0, ofdm_fft)")
        if self.ofdm_used % 2 or not 2 <= self.ofdm_used <= self.ofdm_fft - 2:
            bad("ofdm_used", "must be even and in [2, ofdm_fft - 2]")
        if not 0 <= self.ofdm_cpe_pilots < self.ofdm_used:
            bad("ofdm_cpe_pilots", "must be in [0, ofdm_used)")
        if self.ofdm_pilot_spacing < 1:
            bad("ofdm_pilot_spacing", "must be >= 1")
        if self.ofdm_pilot_reps < 1:
            bad("ofdm_pilot_reps", "must be >= 1")
        if self.ofdm_delay_spread_samples <= 0:
            bad("ofdm_delay_spread_samples", "must be > 0")

    @property
    def avg_power(self) -> float:
        """Average power per antenna of the known parts of the frame (full scale = 1.0)."""
        return 10.0 ** (-self.backoff_db / 10.0)

    @property
    def amplitude(self) -> float:
        """Amplitude of the known single-carrier symbols (sqrt of :attr:`avg_power`)."""
        return self.avg_power**0.5

    def to_dict(self) -> dict:
        """The config as a JSON-serialisable dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "PhyConfig":
        """Build from a config table (e.g. a ``[phy]`` section); ConfigError ``[phy].key: ...`` on a bad
        type, NaN/Inf, an unknown key, or a value :meth:`__post_init__` rejects."""
        return from_section(cls, d, "phy")
