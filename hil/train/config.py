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
from typing import Mapping

from hil._io import config_error, from_section, load_mapping

DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")
MODELS = ("mlp", "cnn")
TRANSPORTS = ("ideal", "loopback", "zmq", "pluto")
GRADIENT_MODES = ("reciprocity", "estimated", "exact")
POWER_MODES = ("batch", "sample")  # hil.ota.layers.POWER_MODES, kept here so that reading a config needs no torch


@dataclass(frozen=True)
class DataConfig:
    """name: one of DATASETS; path: folder with the dataset's standard files (not needed for digits);
    test_fraction: digits only (the others ship a test split); limit_train/limit_test: keep the first N
    samples (0: all)."""

    name: str = field(default="digits", metadata={"choices": DATASETS})
    path: str = ""
    test_fraction: float = field(default=0.2, metadata={"gt": 0.0, "lt": 1.0})
    limit_train: int = field(default=0, metadata={"ge": 0})
    limit_test: int = field(default=0, metadata={"ge": 0})


@dataclass(frozen=True)
class ModelConfig:
    """kind: "mlp" (Linear-ReLU | OTALinear-BN | ReLU-Linear) or "cnn" (Conv-ReLU-Pool | OTAConv2d-BN |
    ReLU-Pool-Linear); hidden: width before the cut (MLP) or channels (CNN); cut_out: width after the
    cut; kernel_size: of the OTA convolution; normalize: batch normalisation after the cut (else a
    bias); power: the transmitter's power normalisation in training, "batch" or "sample" (per vector:
    no batch statistic anywhere when normalize is false, see hil.ota.layers.OTALinear)."""

    kind: str = field(default="mlp", metadata={"choices": MODELS})
    hidden: int = field(default=32, metadata={"ge": 1})
    cut_out: int = field(default=32, metadata={"ge": 1})
    kernel_size: int = field(default=1, metadata={"ge": 1})
    normalize: bool = True
    power: str = field(default="batch", metadata={"choices": POWER_MODES})


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

    transport: str = field(default="ideal", metadata={"choices": TRANSPORTS})
    gradient_mode: str = field(default="reciprocity", metadata={"choices": GRADIENT_MODES})
    n_tx: int = field(default=2, metadata={"ge": 1})
    n_rx: int = field(default=2, metadata={"ge": 1})
    channel_uses: int = field(default=16, metadata={"ge": 1})
    snr_db: float = 10.0
    rho: float = field(default=1.0, metadata={"ge": 0.0, "le": 1.0})
    chain_gain_std_db: float = field(default=0.0, metadata={"ge": 0.0})
    chain_phase: bool = False
    calibrate: bool = True
    channel_seed: int = field(default=1, metadata={"ge": 0})
    server_config: str = ""
    endpoint: str = ""
    uri: str = ""
    sample_rate_hz: float = field(default=1e6, metadata={"gt": 0.0})
    cfo_hz: float = 0.0
    track_phase: bool = True
    recalibrate_every: int = field(default=0, metadata={"ge": 0})
    hold_channel: bool = False
    channel: str = ""


@dataclass(frozen=True)
class TrainConfig:
    """epochs, batch_size, lr (Adam, cosine decay to 0), seed; digital: also train the digital twin
    baseline (same architecture, nn.Linear/nn.Conv2d at the cut)."""

    epochs: int = field(default=30, metadata={"ge": 1})
    batch_size: int = field(default=64, metadata={"ge": 2})  # batch normalisation needs two samples
    lr: float = field(default=1e-2, metadata={"gt": 0.0})
    seed: int = field(default=0, metadata={"ge": 0})
    digital: bool = True


@dataclass(frozen=True)
class SweepConfig:
    """Trainings for the report's accuracy-vs-SNR / rho / channel-use plots (empty: none), run only on
    request (``hil train --sweeps``); transport "" (default): the run's own ``[ota] transport``."""

    snr_db: tuple[float, ...] = ()
    rho: tuple[float, ...] = field(default=(), metadata={"ge": 0.0, "le": 1.0})
    channel_uses: tuple[int, ...] = field(default=(), metadata={"ge": 1})
    epochs: int = field(default=10, metadata={"ge": 1})
    transport: str = field(default="", metadata={"choices": ("",) + TRANSPORTS})


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


def _check_together(cfg: RunConfig) -> RunConfig:
    """The checks that involve more than one field (each field is checked by from_section)."""
    if cfg.data.name != "digits" and not cfg.data.path:
        raise config_error("[data].path", f"missing; name={cfg.data.name!r} needs path= (the folder with the "
                           "dataset's files)")
    if cfg.ota.gradient_mode == "exact" and cfg.ota.transport != "ideal":
        raise config_error("[ota].gradient_mode", "'exact' needs transport='ideal' (the channel simulated in "
                           "process)", cfg.ota.gradient_mode, "reciprocity, estimated")
    if cfg.ota.channel and cfg.ota.transport not in ("loopback", "zmq"):
        raise config_error("[ota].channel", f"needs transport 'loopback' or 'zmq' (a simulated radio channel), "
                           f"not transport={cfg.ota.transport!r}", cfg.ota.channel)
    if cfg.ota.channel and cfg.ota.transport == "zmq" and cfg.ota.server_config:
        raise config_error("[ota].channel", "give channel= or server_config=, not both (server_config holds its "
                           "own channel)", cfg.ota.channel)
    return cfg


def validate(cfg: RunConfig) -> RunConfig:
    """Check every field of ``cfg`` (e.g. after :meth:`RunConfig.replace`); ConfigError naming the bad value."""
    return from_dict(cfg.to_dict())


def from_dict(raw: dict) -> RunConfig:
    """A RunConfig from the parsed file; ConfigError ``[section].key: ...`` on any bad or unknown key."""
    if not isinstance(raw, Mapping):
        raise config_error("training config", f"must be a table, not {type(raw).__name__}", raw)
    for k in raw:
        if k not in _SECTIONS:
            raise config_error(f"[{k}]", "unknown section", valid=", ".join(_SECTIONS))
    parts = {name: from_section(cls, raw.get(name, {}), name) for name, cls in _SECTIONS.items()}
    return _check_together(RunConfig(**parts))


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
