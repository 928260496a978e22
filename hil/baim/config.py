"""Configuration of a BAIM experiment (TOML file -> frozen dataclass)."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from hil._io import check_fields, from_section, load_mapping
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

    seed: int = field(default=0, metadata={"ge": 0})
    n_nodes: int = field(default=10, metadata={"ge": 1})
    n_tasks: int = field(default=2, metadata={"ge": 1})
    classes_per_node: int = field(default=2, metadata={"ge": 1})
    test_fraction: float = field(default=0.2, metadata={"gt": 0.0, "lt": 1.0})
    cloud_fraction: float = field(default=0.15, metadata={"gt": 0.0, "lt": 1.0})
    widths: tuple[int, ...] = field(default=(32, 48, 64, 96), metadata={"ge": 1, "min_items": 1})
    depths: tuple[int, ...] = field(default=(1, 2, 3), metadata={"ge": 1, "min_items": 1})
    latent_dim: int = field(default=8, metadata={"ge": 1})
    top_k: int = field(default=2, metadata={"ge": 1})
    max_hop: int = field(default=1, metadata={"ge": 0})
    proj_penalty: float = field(default=1e-3, metadata={"ge": 0.0})
    proj_score_init: float = -4.0
    keep_fraction: float = field(default=0.5, metadata={"gt": 0.0, "le": 1.0})
    prune_epoch: int = field(default=20, metadata={"ge": 0})
    gate_warmup_epochs: int = field(default=10, metadata={"ge": 0})
    edge_epochs: int = field(default=150, metadata={"ge": 1})
    cloud_epochs: int = field(default=30, metadata={"ge": 1})
    fedavg_rounds: int = field(default=30, metadata={"ge": 1})
    fedavg_local_epochs: int = field(default=5, metadata={"ge": 1})
    fedavg_widths: tuple[int, ...] = field(default=(64, 64), metadata={"ge": 1})
    fedavg_patience: int = field(default=10, metadata={"ge": 0})
    fedavg_max_rounds: int = field(default=300, metadata={"ge": 1})
    fedavg_include_cloud_data: bool = True
    batch_size: int = field(default=32, metadata={"ge": 1})
    lr: float = field(default=1e-3, metadata={"gt": 0.0})
    cloud_lr: float = field(default=1e-3, metadata={"gt": 0.0})
    n_fd_samples: int = field(default=1000, metadata={"ge": 1})
    strategies: tuple[str, ...] = field(default=STRATEGIES, metadata={"choices": STRATEGIES})
    classifier_epochs: int = field(default=60, metadata={"ge": 1})

    def __post_init__(self) -> None:
        check_fields(self, "baim")  # types and ranges of each field (their metadata)
        if self.n_nodes < self.n_tasks:
            raise ConfigError(f"n_nodes={self.n_nodes}, n_tasks={self.n_tasks}: need 1 <= n_tasks <= n_nodes")
        if 10 % self.n_tasks:
            raise ConfigError(f"n_tasks={self.n_tasks} must divide the 10 digit classes (1, 2, 5 or 10)")
        if not 1 <= self.classes_per_node <= 10 // self.n_tasks:
            raise ConfigError(f"classes_per_node={self.classes_per_node}; use 1..{10 // self.n_tasks}")
        if not 0 <= self.gate_warmup_epochs <= self.cloud_epochs:
            raise ConfigError(f"gate_warmup_epochs={self.gate_warmup_epochs}; use 0..cloud_epochs={self.cloud_epochs}")
        if self.fedavg_max_rounds < self.fedavg_rounds:
            raise ConfigError(f"fedavg_max_rounds={self.fedavg_max_rounds} must be >= fedavg_rounds={self.fedavg_rounds}")

    def to_dict(self) -> dict:
        """Plain dict (tuples as lists), as written to the resolved config."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def load_baim_config(path: str | Path | None = None, **overrides) -> BaimConfig:
    """Read a TOML/JSON file (keys under ``[baim]``, or at the top level); None gives the packaged default.

    ``overrides`` replace keys of the file. Any bad or unknown key raises :class:`ConfigError`
    ``[baim].key: ...`` naming the file.
    """
    if path is None:
        data = tomllib.loads(resources.files("hil.baim.configs").joinpath("default.toml").read_text())
        source = "default.toml"
    else:
        data = load_mapping(path, "BAIM config")
        source = str(path)
    if "baim" in data:
        extra = sorted(set(data) - {"baim"})
        if extra:
            raise ConfigError(f"{source}: [{extra[0]}]: unknown section; valid: baim")
        data = data["baim"]
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: [baim] must be a table, not {type(data).__name__}")
    try:
        return from_section(BaimConfig, {**data, **overrides}, "baim")
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from e


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
