"""Configuration of a BAIM experiment (TOML file -> frozen dataclass)."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from hil._io import load_mapping
from hil.errors import ConfigError

STRATEGIES = ("fine-tune", "freeze", "scratch")


@dataclass(frozen=True)
class BaimConfig:
    """All knobs of one run. Epoch counts are full passes over the data set that is trained on.

    Attributes:
        seed: seed of the one numpy Generator (and of torch, drawn from it).
        n_nodes: N edge learners (one per node).
        n_tasks: M task squads; the digit classes are split into M contiguous groups.
        classes_per_node: digit classes in one node's shard (non-IID, classes split across nodes).
        test_fraction: held-out share of the 1797 digits, used only for the Frechet distance.
        cloud_fraction: share of the remaining digits held by the cloud (IID proxy set).
        widths, depths: per-node hidden width and number of stages are drawn from these lists.
        latent_dim: VAE latent size (shared by all learners so the cloud can mix them).
        top_k: K learners per input picked by a squad's learner-selected gate.
        max_hop: h; projections run from stage i to stage j of another learner for 0 <= j - i <= h.
        proj_penalty: weight of the group-lasso penalty on the projections' usefulness.
        proj_score_init: initial usefulness-gate logit of every projection (sigmoid(-4) = 0.018:
            projections start almost closed and open only where training finds them useful).
        keep_fraction: share of projections kept when pruning (by learned usefulness).
        prune_epoch: cloud epoch after which pruning happens.
        gate_warmup_epochs: the first cloud epochs train only the gates and component priors (learners and
            projections fixed), so that routing is informed before the components move.
        edge_epochs, cloud_epochs: local training at the nodes, and cloud training per strategy.
        fedavg_rounds, fedavg_local_epochs, fedavg_widths: the federated-averaging baseline: at least
            ``fedavg_rounds`` rounds and at least BAIM's per-sample gradient budget, then on until the
            validation score has not improved for ``fedavg_patience`` rounds (0: no patience), at most
            ``fedavg_max_rounds`` ([Note: FedAvg stopping and optimizer state] in fedavg.py).
        fedavg_include_cloud_data: the server also trains on the cloud proxy set as one extra client.
        batch_size, lr: Adam with this learning rate and batch size at the edges (and FedAvg).
        cloud_lr: Adam learning rate of the cloud training of the big model.
        n_fd_samples: generated samples per Frechet-distance evaluation.
        strategies: which BAIM strategies to run.
    """

    seed: int = 0
    n_nodes: int = 10
    n_tasks: int = 2
    classes_per_node: int = 2
    test_fraction: float = 0.2
    cloud_fraction: float = 0.15
    widths: tuple[int, ...] = (32, 48, 64, 96)
    depths: tuple[int, ...] = (1, 2, 3)
    latent_dim: int = 8
    top_k: int = 2
    max_hop: int = 1
    proj_penalty: float = 1e-3
    proj_score_init: float = -4.0
    keep_fraction: float = 0.5
    prune_epoch: int = 20
    gate_warmup_epochs: int = 10
    edge_epochs: int = 150
    cloud_epochs: int = 30
    fedavg_rounds: int = 30
    fedavg_local_epochs: int = 5
    fedavg_widths: tuple[int, ...] = (64, 64)
    fedavg_patience: int = 10
    fedavg_max_rounds: int = 300
    fedavg_include_cloud_data: bool = True
    batch_size: int = 32
    lr: float = 1e-3
    cloud_lr: float = 1e-3
    n_fd_samples: int = 1000
    strategies: tuple[str, ...] = STRATEGIES
    classifier_epochs: int = 60

    def __post_init__(self) -> None:
        if self.n_tasks < 1 or self.n_nodes < self.n_tasks:
            raise ConfigError(f"n_nodes={self.n_nodes}, n_tasks={self.n_tasks}: need 1 <= n_tasks <= n_nodes")
        if 10 % self.n_tasks:
            raise ConfigError(f"n_tasks={self.n_tasks} must divide the 10 digit classes (1, 2, 5 or 10)")
        if not 1 <= self.classes_per_node <= 10 // self.n_tasks:
            raise ConfigError(f"classes_per_node={self.classes_per_node}; use 1..{10 // self.n_tasks}")
        for name in ("test_fraction", "cloud_fraction", "keep_fraction"):
            v = getattr(self, name)
            if not 0.0 < v < 1.0 and not (name == "keep_fraction" and v == 1.0):
                raise ConfigError(f"{name}={v} must lie in (0, 1)")
        if self.top_k < 1 or self.max_hop < 0 or self.latent_dim < 1:
            raise ConfigError(f"top_k={self.top_k} >= 1, max_hop={self.max_hop} >= 0, latent_dim >= 1 required")
        if not self.widths or not self.depths or min(self.widths) < 1 or min(self.depths) < 1:
            raise ConfigError(f"widths={self.widths}, depths={self.depths}: give non-empty lists of positives")
        bad = [s for s in self.strategies if s not in STRATEGIES]
        if bad:
            raise ConfigError(f"unknown strategies {bad}; choose from {list(STRATEGIES)}")
        if not 0 <= self.gate_warmup_epochs <= self.cloud_epochs:
            raise ConfigError(f"gate_warmup_epochs={self.gate_warmup_epochs}; use 0..cloud_epochs={self.cloud_epochs}")
        if self.fedavg_patience < 0 or self.fedavg_max_rounds < self.fedavg_rounds:
            raise ConfigError(f"fedavg_patience={self.fedavg_patience} must be >= 0 and fedavg_max_rounds="
                              f"{self.fedavg_max_rounds} >= fedavg_rounds={self.fedavg_rounds}")
        for name in ("edge_epochs", "cloud_epochs", "fedavg_rounds", "fedavg_local_epochs", "batch_size",
                     "n_fd_samples", "classifier_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1")

    def to_dict(self) -> dict:
        """Plain dict (tuples as lists), as written to the resolved config."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def load_config(path: str | Path | None = None, **overrides) -> BaimConfig:
    """Read a TOML file (keys at top level or under ``[baim]``); None gives the packaged default.

    Unknown keys raise :class:`ConfigError` naming them.
    """
    if path is None:
        data = tomllib.loads(resources.files("hil.baim.configs").joinpath("default.toml").read_text())
        source = "default.toml"
    else:
        data = load_mapping(path, "BAIM config")
        source = str(path)
    data = dict(data.get("baim", data))
    data.update(overrides)
    known = {f.name for f in dataclasses.fields(BaimConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown keys {unknown}; known keys: {sorted(known)}")
    data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return BaimConfig(**data)


def packaged_config(name: str) -> Path:
    """Path of a config shipped in hil/baim/configs (e.g. ``"default"``, ``"quick"``)."""
    return Path(str(resources.files("hil.baim.configs").joinpath(f"{name}.toml")))


QUICK_OVERRIDES = {
    "n_nodes": 4,
    "widths": (16, 24),
    "depths": (1, 2),
    "edge_epochs": 15,
    "cloud_epochs": 4,
    "prune_epoch": 3,
    "gate_warmup_epochs": 1,
    "fedavg_rounds": 12,
    "fedavg_local_epochs": 1,
    "fedavg_patience": 3,
    "fedavg_max_rounds": 24,
    "fedavg_widths": (24,),
    "n_fd_samples": 150,
    "classifier_epochs": 8,
}
