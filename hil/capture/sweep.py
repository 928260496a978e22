"""The sweep file of ``hil capture --sweep FILE`` (TOML or JSON).

Example (every key optional, defaults shown)::

    sample_rate_hz = 1e6
    lo_hz = [2.4e9]            # one capture segment per LO step, in this order
    tx_gain_db = [0.0]         # one recording per (tx_gain_db, rx_gain_db) pair
    rx_gain_db = [0.0]
    frames_per_step = 200      # sounding frames per LO step
    frame_interval_s = 0.0     # wait between frames (0: back to back)
    repeats = 1                # passes over the LO list within one recording (time)
    max_missed = 0.5           # fraction of missed frames per step above which the capture fails

    [sounder]                  # the sounding frame: hil.phy frames (hil.capture.sounder.PhySounder)
    mode = "flat"              # or "ofdm"; any hil.phy.PhyConfig field (n_tx/n_rx from the radio)
    pilot_len = 512            # pilot symbols per transmit antenna
    quiet_len = 256            # silent symbols (noise estimate)
    amplitude = 0.35           # RMS per transmit antenna, full scale 1.0 (sets backoff_db)
    channel_uses = 8           # payload symbols per antenna

On a Pluto the LO and gains of each step are applied to the board (and read back); on a simulated
radio (ZMQ server, loopback) they are labels in the recording only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from hil._io import check_fields, from_section, load_mapping


@dataclass(frozen=True)
class CaptureSweep:
    """A capture sweep. See the module docstring for the file format."""

    sample_rate_hz: float = field(default=1e6, metadata={"gt": 0.0})
    lo_hz: tuple[float, ...] = field(default=(2.4e9,), metadata={"gt": 0.0, "min_items": 1, "scalar_ok": True})
    tx_gain_db: tuple[float, ...] = field(default=(0.0,), metadata={"min_items": 1, "scalar_ok": True})
    rx_gain_db: tuple[float, ...] = field(default=(0.0,), metadata={"min_items": 1, "scalar_ok": True})
    frames_per_step: int = field(default=200, metadata={"ge": 2})
    frame_interval_s: float = field(default=0.0, metadata={"ge": 0.0})
    repeats: int = field(default=1, metadata={"ge": 1})
    max_missed: float = field(default=0.5, metadata={"ge": 0.0, "le": 1.0})
    sounder: dict = field(default_factory=dict)

    def __post_init__(self):
        check_fields(self, "sweep")
        from hil.capture.sounder import sounder_settings

        sounder_settings(self.sounder)  # ConfigError naming a removed, unknown or bad [sounder] key

    @classmethod
    def from_dict(cls, d: dict) -> "CaptureSweep":
        """The sweep from the parsed file; ConfigError ``[sweep].key: ...`` on any bad or unknown key."""
        return from_section(cls, d, "sweep")

    @classmethod
    def from_file(cls, path: str | Path) -> "CaptureSweep":
        return cls.from_dict(load_mapping(path, "sweep"))

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("lo_hz", "tx_gain_db", "rx_gain_db"):
            d[k] = list(d[k])
        return d

    @property
    def n_recordings(self) -> int:
        return len(self.tx_gain_db) * len(self.rx_gain_db)

    @property
    def frames_total(self) -> int:
        return self.n_recordings * self.repeats * len(self.lo_hz) * self.frames_per_step
