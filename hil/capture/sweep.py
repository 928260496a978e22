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
from typing import Any

from hil.errors import ConfigError

_TOP_KEYS = {
    "sample_rate_hz", "lo_hz", "tx_gain_db", "rx_gain_db", "frames_per_step", "frame_interval_s",
    "repeats", "max_missed", "sounder",
}


def _floats(v: Any, name: str) -> tuple[float, ...]:
    if isinstance(v, (int, float)):
        v = [v]
    try:
        out = tuple(float(x) for x in v)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"sweep: {name} must be a number or a list of numbers, got {v!r}") from e
    if not out:
        raise ConfigError(f"sweep: {name} must not be empty")
    return out


@dataclass(frozen=True)
class SweepConfig:
    """A capture sweep. See the module docstring for the file format."""

    sample_rate_hz: float = 1e6
    lo_hz: tuple[float, ...] = (2.4e9,)
    tx_gain_db: tuple[float, ...] = (0.0,)
    rx_gain_db: tuple[float, ...] = (0.0,)
    frames_per_step: int = 200
    frame_interval_s: float = 0.0
    repeats: int = 1
    max_missed: float = 0.5
    sounder: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.sample_rate_hz > 0:
            raise ConfigError(f"sweep: sample_rate_hz must be > 0, got {self.sample_rate_hz}")
        if self.frames_per_step < 2:
            raise ConfigError(f"sweep: frames_per_step must be >= 2, got {self.frames_per_step}")
        if self.frame_interval_s < 0:
            raise ConfigError(f"sweep: frame_interval_s must be >= 0, got {self.frame_interval_s}")
        if self.repeats < 1:
            raise ConfigError(f"sweep: repeats must be >= 1, got {self.repeats}")
        if not 0 <= self.max_missed <= 1:
            raise ConfigError(f"sweep: max_missed must be in [0, 1], got {self.max_missed}")
        from hil.capture.sounder import sounder_settings

        sounder_settings(self.sounder)  # ConfigError naming a removed, unknown or bad [sounder] key

    @classmethod
    def from_dict(cls, d: dict) -> "SweepConfig":
        unknown = set(d) - _TOP_KEYS
        if unknown:
            raise ConfigError(f"sweep: unknown keys {sorted(unknown)}; known: {sorted(_TOP_KEYS)}")
        kw: dict[str, Any] = {}
        for k in ("lo_hz", "tx_gain_db", "rx_gain_db"):
            if k in d:
                kw[k] = _floats(d[k], k)
        for k, typ in (("sample_rate_hz", float), ("frame_interval_s", float), ("max_missed", float),
                       ("frames_per_step", int), ("repeats", int)):
            if k in d:
                try:
                    kw[k] = typ(d[k])
                except (TypeError, ValueError) as e:
                    raise ConfigError(f"sweep: {k} must be a {typ.__name__}, got {d[k]!r}") from e
        if "sounder" in d:
            if not isinstance(d["sounder"], dict):
                raise ConfigError("sweep: [sounder] must be a table")
            kw["sounder"] = dict(d["sounder"])
        return cls(**kw)

    @classmethod
    def from_file(cls, path: str | Path) -> "SweepConfig":
        from hil._io import load_mapping

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
