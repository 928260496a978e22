"""Training configuration: frozen dataclasses loaded from TOML (see hil/train/configs/*.toml).

A config file has the sections ``[data]``, ``[model]``, ``[ota]``, ``[train]`` and optionally
``[sweep]``; every key is optional and defaults to the values below. Unknown keys are an error (a typo
must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from hil._io import load_mapping
from hil.errors import ConfigError

DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")
MODELS = ("mlp", "cnn")
TRANSPORTS = ("ideal", "loopback", "zmq", "pluto")
GRADIENT_MODES = ("reciprocity", "estimated", "exact")


@dataclass(frozen=True)
class DataConfig:
    """name: one of DATASETS; path: folder with the dataset's standard files (not needed for digits);
    test_fraction: digits only (the others ship a test split); limit_train/limit_test: keep the first N
    samples (0: all)."""

    name: str = "digits"
    path: str = ""
    test_fraction: float = 0.2
    limit_train: int = 0
    limit_test: int = 0


@dataclass(frozen=True)
class ModelConfig:
    """kind: "mlp" (Linear-ReLU | OTALinear-BN | ReLU-Linear) or "cnn" (Conv-ReLU-Pool | OTAConv2d-BN |
    ReLU-Pool-Linear); hidden: width before the cut (MLP) or channels (CNN); cut_out: width after the
    cut; kernel_size: of the OTA convolution."""

    kind: str = "mlp"
    hidden: int = 32
    cut_out: int = 32
    kernel_size: int = 1
    normalize: bool = True


@dataclass(frozen=True)
class OTAConfig:
    """The over-the-air cut.

    transport: "ideal" (in process, no PHY), "loopback" (LoopbackRadio + PHY), "zmq" (channel server
    + PHY), "pluto". gradient_mode: "reciprocity", "estimated", "exact" (ideal only).
    snr_db: per receive antenna; rho: Gauss-Markov correlation per training burst on every transport
    (on loopback/zmq the channel's block is set to one forward burst of a full batch); chain_gain_std_db / chain_phase: unequal TX/RX chain gains
    (uncalibrated reciprocity); calibrate: run the reciprocity calibration before training;
    server_config: TOML for the channel server (zmq; default: generated from these fields);
    endpoint: a running server to use instead of starting one; uri: Pluto's URI; cfo_hz: carrier
    frequency offset of the simulated radio link (loopback, zmq; the PHY corrects it); track_phase:
    remove the burst-to-burst common phase (PhyTransport, see [Note: common phase between bursts]);
    recalibrate_every: repeat the reciprocity calibration every N training steps (0: only at the start).
    hold_channel: the receiver maps every burst onto its first channel estimate (for drifting channels,
    rho < 1; see [Note: holding the channel] in hil/ota/link.py).
    channel: replaces the generated channel spec of loopback/zmq links: "replay:DIR[?opts]" (a
    recording of ``hil capture``) or a JSON object of hil.channel keys; "" (default): generated from
    snr_db, rho, cfo_hz and the chain gains.
    """

    transport: str = "ideal"
    gradient_mode: str = "reciprocity"
    n_tx: int = 2
    n_rx: int = 2
    channel_uses: int = 16
    snr_db: float = 10.0
    rho: float = 1.0
    chain_gain_std_db: float = 0.0
    chain_phase: bool = False
    calibrate: bool = True
    channel_seed: int = 1
    server_config: str = ""
    endpoint: str = ""
    uri: str = ""
    sample_rate_hz: float = 1e6
    cfo_hz: float = 0.0
    track_phase: bool = True
    recalibrate_every: int = 0
    hold_channel: bool = False
    channel: str = ""


@dataclass(frozen=True)
class TrainConfig:
    """epochs, batch_size, lr (Adam, cosine decay to 0), seed; digital: also train the digital twin
    baseline (same architecture, nn.Linear/nn.Conv2d at the cut)."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-2
    seed: int = 0
    digital: bool = True


@dataclass(frozen=True)
class SweepConfig:
    """Trainings for the report's accuracy-vs-SNR / rho / channel-use plots (empty: none), run only on
    request (``hil train --sweeps``); transport "" (default): the run's own ``[ota] transport``."""

    snr_db: tuple[float, ...] = ()
    rho: tuple[float, ...] = ()
    channel_uses: tuple[int, ...] = ()
    epochs: int = 10
    transport: str = ""


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    ota: OTAConfig = field(default_factory=OTAConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **sections: dict) -> "RunConfig":
        """A copy with some fields changed: ``cfg.replace(ota={"snr_db": 0})``."""
        new = {}
        for name, changes in sections.items():
            new[name] = dataclasses.replace(getattr(self, name), **changes)
        return dataclasses.replace(self, **new)


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "ota": OTAConfig, "train": TrainConfig, "sweep": SweepConfig}


def _build(cls, raw: dict, section: str):
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(raw) - set(names)
    if unknown:
        raise ConfigError(f"[{section}]: unknown key(s) {sorted(unknown)}; known: {sorted(names)}")
    vals: dict[str, Any] = {}
    for k, v in raw.items():
        if isinstance(v, list):
            v = tuple(v)
        vals[k] = v
    return cls(**vals)


def validate(cfg: RunConfig) -> RunConfig:
    """Raise ConfigError naming the bad value; return ``cfg``."""
    if cfg.data.name not in DATASETS:
        raise ConfigError(f"[data] name={cfg.data.name!r}: must be one of {DATASETS}")
    if cfg.data.name != "digits" and not cfg.data.path:
        raise ConfigError(f"[data] name={cfg.data.name!r} needs path= (a folder with the dataset's files)")
    if cfg.model.kind not in MODELS:
        raise ConfigError(f"[model] kind={cfg.model.kind!r}: must be one of {MODELS}")
    if cfg.ota.transport not in TRANSPORTS:
        raise ConfigError(f"[ota] transport={cfg.ota.transport!r}: must be one of {TRANSPORTS}")
    if cfg.sweep.transport and cfg.sweep.transport not in TRANSPORTS:
        raise ConfigError(f"[sweep] transport={cfg.sweep.transport!r}: must be \"\" (the run's transport) "
                          f"or one of {TRANSPORTS}")
    if cfg.ota.gradient_mode not in GRADIENT_MODES:
        raise ConfigError(f"[ota] gradient_mode={cfg.ota.gradient_mode!r}: must be one of {GRADIENT_MODES}")
    if cfg.ota.gradient_mode == "exact" and cfg.ota.transport != "ideal":
        raise ConfigError("[ota] gradient_mode='exact' needs transport='ideal' (the channel simulated in process)")
    if cfg.ota.channel and cfg.ota.transport not in ("loopback", "zmq"):
        raise ConfigError(f"[ota] channel={cfg.ota.channel!r} needs transport 'loopback' or 'zmq' (a simulated "
                          f"radio channel), got transport={cfg.ota.transport!r}")
    if cfg.ota.channel and cfg.ota.transport == "zmq" and cfg.ota.server_config:
        raise ConfigError("[ota] give channel= or server_config=, not both (server_config holds its own channel)")
    if not 0.0 <= cfg.ota.rho <= 1.0:
        raise ConfigError(f"[ota] rho={cfg.ota.rho}: must be in [0, 1]")
    for name in ("epochs", "batch_size"):
        if getattr(cfg.train, name) < 1:
            raise ConfigError(f"[train] {name}={getattr(cfg.train, name)}: must be >= 1")
    if cfg.train.batch_size < 2:
        raise ConfigError("[train] batch_size must be >= 2 (batch normalisation)")
    for name in ("n_tx", "n_rx", "channel_uses"):
        if getattr(cfg.ota, name) < 1:
            raise ConfigError(f"[ota] {name}={getattr(cfg.ota, name)}: must be >= 1")
    return cfg


def from_dict(raw: dict) -> RunConfig:
    unknown = set(raw) - set(_SECTIONS)
    if unknown:
        raise ConfigError(f"unknown section(s) {sorted(unknown)}; known: {sorted(_SECTIONS)}")
    try:
        parts = {name: _build(cls, raw.get(name, {}), name) for name, cls in _SECTIONS.items()}
    except TypeError as e:
        raise ConfigError(f"bad config: {e}") from e
    return validate(RunConfig(**parts))


def load_config(path: str | Path) -> RunConfig:
    """Load a TOML file. ``path`` may also name a packaged config: "digits_mlp" -> hil/train/configs/digits_mlp.toml."""
    p = Path(path)
    if not p.exists() and not p.suffix:
        packaged = resources.files("hil.train") / "configs" / f"{path}.toml"
        if packaged.is_file():
            return from_dict(tomllib.loads(packaged.read_text()))
    return from_dict(load_mapping(p, "training config"))


def to_toml(cfg: RunConfig) -> str:
    """The resolved config as TOML (written next to every report)."""
    out = []
    for name, section in cfg.to_dict().items():
        out.append(f"[{name}]")
        for k, v in section.items():
            out.append(f"{k} = {_toml_value(v)}")
        out.append("")
    return "\n".join(out)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
