"""PhyConfig: every parameter of the frame, shared by the transmitter and the receiver.

Both ends of a link must use the same PhyConfig (like two modems agreeing on a standard): the
known sequences are drawn from ``seed``, the layout follows from the lengths below.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from hil._io import check_fields, from_section

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

    n_tx: int = field(default=1, metadata={"ge": 1, "le": 4})
    n_rx: int = field(default=1, metadata={"ge": 1})
    mode: str = field(default="flat", metadata={"choices": MODES})
    sample_rate_hz: float = field(default=1e6, metadata={"gt": 0})
    sps: int = field(default=2, metadata={"ge": 1})
    rrc_rolloff: float = field(default=0.25, metadata={"gt": 0, "le": 1})
    rrc_span: int = field(default=16, metadata={"ge": 2})
    preamble_len: int = field(default=128, metadata={"ge": 16})
    pilot_len: int = field(default=8, metadata={"ge": 1})
    header_spread: int = field(default=8, metadata={"ge": 1})
    quiet_len: int = field(default=64, metadata={"ge": 1})
    track_interval: int = field(default=32, metadata={"ge": 0})
    track_smooth: int = field(default=5, metadata={"ge": 1})
    backoff_db: float = field(default=12.0, metadata={"ge": 0})
    power_norm: str = field(default="average", metadata={"choices": POWER_NORMS})
    peak_backoff_db: float = field(default=1.0, metadata={"ge": 0})
    max_cfo_hz: float = field(default=120e3, metadata={"ge": 0})
    p_fa: float = field(default=1e-5, metadata={"gt": 0, "lt": 1})
    estimator: str = field(default="lmmse", metadata={"choices": ESTIMATORS})
    link_id: int = field(default=0, metadata={"ge": 0, "le": 255})
    ofdm_fft: int = field(default=64, metadata={"ge": 8})
    ofdm_cp: int = field(default=16, metadata={"ge": 0})
    ofdm_used: int = field(default=40, metadata={"ge": 2})
    ofdm_cpe_pilots: int = field(default=4, metadata={"ge": 0})
    ofdm_pilot_spacing: int = field(default=1, metadata={"ge": 1})
    ofdm_pilot_reps: int = field(default=1, metadata={"ge": 1})
    ofdm_delay_spread_samples: float = field(default=2.0, metadata={"gt": 0})
    seed: int = field(default=0x5EED, metadata={"ge": 0})

    def __post_init__(self) -> None:
        check_fields(self, "phy")  # types and the one-field ranges in the metadata above

        def bad(name: str, why: str) -> None:
            raise ValueError(f"PhyConfig.{name}={getattr(self, name)!r}: {why}")

        if self.mode == "single" and self.n_tx != 1:
            bad("n_tx", "mode='single' sends one stream from one antenna: use n_tx=1, or mode='flat' for MIMO")
        if self.rrc_span % 2:
            bad("rrc_span", "must be an even number >= 2")
        hs = self.header_spread
        if hs < self.n_tx or hs & (hs - 1):
            bad("header_spread", f"must be a power of two >= n_tx={self.n_tx}")
        if self.quiet_len < self.rrc_span + 8:
            bad("quiet_len", f"must be >= rrc_span + 8 = {self.rrc_span + 8} symbols")
        if self.track_smooth % 2 == 0:
            bad("track_smooth", "must be an odd number >= 1")
        if self.max_cfo_hz / self.sample_rate_hz > 0.15:
            bad("max_cfo_hz", "must be within 0..0.15 * sample_rate_hz")
        if self.ofdm_fft & (self.ofdm_fft - 1):
            bad("ofdm_fft", "must be a power of two >= 8")
        if self.ofdm_cp >= self.ofdm_fft:
            bad("ofdm_cp", "must be in [0, ofdm_fft)")
        if self.ofdm_used % 2 or self.ofdm_used > self.ofdm_fft - 2:
            bad("ofdm_used", "must be even and in [2, ofdm_fft - 2]")
        if self.ofdm_cpe_pilots >= self.ofdm_used:
            bad("ofdm_cpe_pilots", "must be in [0, ofdm_used)")

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
