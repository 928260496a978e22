"""The big model's life after deployment (BAIM maintenance): local fine-tuning, continual learning,
few-shot adaptation and pruning, each measured over several seeds.

``run_maintenance(cfg, mcfg, out_dir=None)`` runs the four studies for every seed in ``mcfg.seeds`` and
returns a report (per-seed values and mean with 95 % interval from :func:`hil.stats.mean_ci95`);
with ``out_dir`` it writes report.json and report.md. See docs/baim.md, "After deployment".

[Note: what is measured]
The BAIM case here is generative (mixtures of VAE experts on 8x8 digits), so "quality" is the held-out
negative ELBO in nats per image (lower is better), computed with a fixed noise seed, and "accuracy" is
the TSGate's task-routing accuracy (share of test images sent to the squad of their true task), the
one classification the big model makes. ``routed`` NELBO sends each test image to the squad the TSGate
picks (what a user of the big model gets: a wrong route is paid in nats); ``true-task`` NELBO sends it
to the squad of its true task (the squad's own quality, gate excluded). Images count in the task of
their digit class (classes split into contiguous groups, as hil.baim.data does).

[Note: the setting]
One base config (packaged ``maintain.toml``): M tasks, the last of which (task M - 1) is "new": it is
absent from the old big model, which is assembled and trained from the nodes of tasks 0..M-2 only. A
reference big model over all M tasks (assembled from all edge learners and trained on all cloud data)
is the retrain-from-scratch reference of continual learning and the deployed model of fine-tuning and
pruning. Each node's shard is split: the first ``1 - new_fraction`` is what it trained its edge learner
on before deployment, the rest is the data that arrives after deployment (local fine-tuning).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from hil._io import atomic_write_json, atomic_write_text, from_section, load_mapping
from hil.baim.assembly import BigModel, VaeSquad, assemble, parse_projection_key, projection_key
from hil.baim.config import BaimConfig
from hil.baim.data import N_CLASSES, DigitsSplit, batches, load_digits_split
from hil.baim.deploy import n_params, pack_task_model, unpack_task_model
from hil.baim.learners import VaeLearner, draw_learner_specs
from hil.baim.wire import pack_state
from hil.errors import ConfigError
from hil.stats import mean_ci95

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MaintainConfig:
    """Knobs of the maintenance studies (a ``[maintain]`` table beside the ``[baim]`` one).

    Attributes:
        seeds: one full run (data split, edge learners, big models, studies) per seed.
        new_fraction: share of each node's shard held back as the data that arrives after deployment.
        finetune_epochs, finetune_lr: local fine-tuning at a node (per-task model and edge learner alike).
        absorb_epochs: cloud epochs that absorb the new task into the old big model.
        replay_per_task: images per old task in the replay buffer (drawn from the cloud proxy set).
        shots: k values of few-shot adaptation (k images per class of the new task).
        fewshot_epochs: epochs of few-shot fine-tuning (big model and single edge model alike).
        prune_ratios: shares of projections / experts removed, in [0, 1).
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    new_fraction: float = 0.3
    finetune_epochs: int = 20
    finetune_lr: float = 1e-3
    absorb_epochs: int = 10
    replay_per_task: int = 10
    shots: tuple[int, ...] = (1, 5, 10)
    fewshot_epochs: int = 30
    prune_ratios: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75)

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ConfigError("maintain.seeds is empty; give at least one seed (3 or more for intervals)")
        if not 0.0 < self.new_fraction < 1.0:
            raise ConfigError(f"maintain.new_fraction={self.new_fraction} must lie in (0, 1)")
        for name in ("finetune_epochs", "absorb_epochs", "fewshot_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"maintain.{name}={getattr(self, name)} must be >= 1")
        if self.replay_per_task < 0:
            raise ConfigError(f"maintain.replay_per_task={self.replay_per_task} must be >= 0")
        if not self.shots or min(self.shots) < 1:
            raise ConfigError(f"maintain.shots={self.shots}: give positive k values, e.g. [1, 5, 10]")
        if not self.prune_ratios or not all(0.0 <= r < 1.0 for r in self.prune_ratios):
            raise ConfigError(f"maintain.prune_ratios={self.prune_ratios}: each must lie in [0, 1)")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def load_maintain_config(path: str | Path | None = None, **overrides) -> tuple[BaimConfig, MaintainConfig]:
    """Read ``[baim]`` and ``[maintain]`` from a TOML file; None gives the packaged ``maintain.toml``.

    ``overrides`` go to the ``[maintain]`` table. Unknown ``[maintain]`` keys raise :class:`ConfigError`.
    """
    if path is None:
        path = Path(str(resources.files("hil.baim.configs").joinpath("maintain.toml")))
    data = load_mapping(path, "BAIM maintenance config")
    if "baim" not in data:
        raise ConfigError(f"{path}: no [baim] table; put the base experiment's keys under [baim] and the "
                          "maintenance keys under [maintain] (see hil/baim/configs/maintain.toml)")
    try:
        cfg = from_section(BaimConfig, data["baim"], "baim")
        m = data.get("maintain", {})
        if not isinstance(m, dict):
            raise ConfigError(f"[maintain]: must be a table, not {type(m).__name__}")
        extra = sorted(set(data) - {"baim", "maintain"})
        if extra:
            raise ConfigError(f"[{extra[0]}]: unknown section; valid: baim, maintain")
        mcfg = from_section(MaintainConfig, {**m, **overrides}, "maintain")
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e
    if cfg.n_tasks < 2:
        raise ConfigError(f"{path}: n_tasks={cfg.n_tasks}; maintenance needs >= 2 tasks (the last one is the new task)")
    return cfg, mcfg


# ---------------------------------------------------------------- measurements


def nelbo(model: VaeSquad | VaeLearner, x: torch.Tensor, seed: int) -> float:
    """Mean negative ELBO (nats per image) of a squad or learner on x [n, 64], noise from ``seed``."""
    with torch.no_grad():
        return float(model.loss(x, torch.Generator().manual_seed(seed)).mean())


def big_metrics(big: BigModel, x: torch.Tensor, tasks: torch.Tensor, seed: int) -> dict:
    """Routing accuracy, routed NELBO and true-task NELBO of the big model on x (see [Note: what is measured])."""
    with torch.no_grad():
        routed = big.route(x)
        g = torch.Generator().manual_seed(seed)
        tot_routed = sum(float(big.squads[t].loss(x[routed == t], g).sum()) for t in range(big.n_tasks)
                         if bool((routed == t).any()))
        g = torch.Generator().manual_seed(seed)
        tot_true = sum(float(big.squads[t].loss(x[tasks == t], g).sum()) for t in range(big.n_tasks)
                       if bool((tasks == t).any()))
    return {"route_acc": float((routed == tasks).float().mean()), "nelbo_routed": tot_routed / len(x),
            "nelbo_true": tot_true / len(x)}


def adam_epochs(params, loss_fn: Callable[[torch.Tensor, torch.Generator], torch.Tensor], n: int, epochs: int,
                batch_size: int, lr: float, gen: torch.Generator) -> None:
    """Adam for ``epochs`` passes over ``range(n)`` in shuffled batches; ``loss_fn(idx, gen)`` is the batch loss."""
    params = [p for p in params if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(epochs):
        for idx in batches(n, batch_size, gen):
            loss = loss_fn(idx, gen)
            opt.zero_grad()
            loss.backward()
            opt.step()


def fit(model: VaeSquad | VaeLearner, x: torch.Tensor, epochs: int, batch_size: int, lr: float,
        gen: torch.Generator) -> None:
    """Fine-tune a squad or a learner on images x by its own loss (mean negative ELBO)."""
    adam_epochs(model.parameters(), lambda idx, g: model.loss(x[idx], g).mean(), len(x), epochs, batch_size, lr, gen)


def fit_big(big: BigModel, x: torch.Tensor, tasks: torch.Tensor, epochs: int, cfg: BaimConfig,
            gen: torch.Generator) -> None:
    """Train the whole big model on (x, tasks) with its own loss (squads by true task + TSGate CE + penalty)."""
    adam_epochs(big.parameters(), lambda idx, g: big.loss(x[idx], tasks[idx], g, cfg.proj_penalty), len(x), epochs,
                cfg.batch_size, cfg.cloud_lr, gen)


def size_of(big: BigModel) -> dict:
    """Parameters and bytes of the big model as :func:`hil.baim.wire.pack_state` serialises it."""
    return {"params": n_params(big), "bytes": len(pack_state(big.state_dict()))}


# ---------------------------------------------------------------- structural changes


def extend_with_squad(big: BigModel, squad: VaeSquad, task_prior: torch.Tensor) -> BigModel:
    """A new big model: copies of ``big``'s squads plus ``squad`` as task M, the TSGate extended by one output.

    The TSGate's hidden layer and its old output rows are copied; the new output row keeps PyTorch's default
    initialisation (the absorbing training sets it). ``big`` is not modified.
    """
    if task_prior.shape != (big.n_tasks + 1,):
        raise ValueError(f"task_prior has shape {tuple(task_prior.shape)}; need ({big.n_tasks + 1},)")
    new = BigModel([copy.deepcopy(s) for s in big.squads] + [squad], task_prior)
    old_net, new_net = big.ts_gate.net, new.ts_gate.net
    if old_net[0].out_features != new_net[0].out_features:  # pragma: no cover - TSGate's hidden width is fixed
        raise ValueError("TSGate hidden widths differ")
    with torch.no_grad():
        new_net[0].load_state_dict(old_net[0].state_dict())
        new_net[2].weight[: big.n_tasks] = old_net[2].weight
        new_net[2].bias[: big.n_tasks] = old_net[2].bias
    return new


def prune_experts(squad: VaeSquad, ratio: float, x_ref: torch.Tensor) -> VaeSquad:
    """Remove ``floor(ratio * n)`` learners (at most n - 1) with the lowest mean LSGate weight on x_ref.

    Returns a new squad: kept learners, their LSGate rows and prior logits, and the projections between
    kept learners (re-indexed), with their weights; top-K becomes ``min(K, kept)``. At ratio 0 the new
    squad computes exactly what the old one does.
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"ratio={ratio} must lie in [0, 1)")
    n = squad.n
    n_remove = min(int(ratio * n), n - 1)
    with torch.no_grad():
        w = squad.gate(x_ref).mean(0) if len(x_ref) else torch.zeros(n)
    ranked = sorted(range(n), key=lambda l: (-float(w[l]), l))
    keep = sorted(ranked[: n - n_remove])
    remap = {old: new for new, old in enumerate(keep)}

    def mapped(ps) -> dict[str, str]:
        out = {}
        for k in ps.keys_list():
            a, i, b, j = parse_projection_key(k)
            if a in remap and b in remap:
                out[k] = projection_key(remap[a], i, remap[b], j)
        return out

    enc_map, dec_map = mapped(squad.enc_proj), mapped(squad.dec_proj)
    new = VaeSquad([squad.specs[l] for l in keep], squad.top_k, squad.max_hop, list(enc_map.values()),
                   list(dec_map.values()))
    idx = torch.tensor(keep)
    with torch.no_grad():
        for l_new, l_old in enumerate(keep):
            new.learners[l_new].load_state_dict(squad.learners[l_old].state_dict())
        new.ls_gate.weight.copy_(squad.ls_gate.weight[idx])
        new.ls_gate.bias.copy_(squad.ls_gate.bias[idx])
        new.prior_logits.copy_(squad.prior_logits[idx])
        for old_ps, new_ps, kmap in ((squad.enc_proj, new.enc_proj, enc_map), (squad.dec_proj, new.dec_proj, dec_map)):
            for k_old, k_new in kmap.items():
                new_ps.proj[k_new].weight.copy_(old_ps.proj[k_old].weight)
                new_ps.score_logit[k_new].copy_(old_ps.score_logit[k_old])
    return new.eval()


def prune_big(big: BigModel, ratio: float, what: str, x_ref: torch.Tensor, tasks_ref: torch.Tensor) -> BigModel:
    """A pruned copy of the big model: ``what`` is "projections" (by learned usefulness, the share
    ``ratio`` of each projection set removed), "experts" (:func:`prune_experts` per squad, gate weights
    measured on the rows of x_ref of that squad's task) or "both"."""
    if what not in ("projections", "experts", "both"):
        raise ValueError(f"what={what!r}; use 'projections', 'experts' or 'both'")
    new = copy.deepcopy(big)
    if what in ("experts", "both"):
        new.squads = torch.nn.ModuleList(prune_experts(s, ratio, x_ref[tasks_ref == t]) for t, s in enumerate(new.squads))
    if what in ("projections", "both"):
        new.prune(1.0 - ratio)
    return new.eval()


# ---------------------------------------------------------------- the deployed system of one seed


@dataclass
class Deployed:
    """Everything the studies start from, for one seed."""

    cfg: BaimConfig
    data: DigitsSplit
    x_init: list[torch.Tensor]  # per node: the shard trained on before deployment
    x_new: list[torch.Tensor]  # per node: data arriving after deployment
    y_new: list[torch.Tensor]
    edge: list[VaeLearner]  # per node, trained on x_init
    big_all: BigModel  # all M tasks (deployed model; retrain-from-scratch reference)
    members_all: list[list[int]]
    big_old: BigModel  # tasks 0..M-2 only
    new_task: int
    eval_seed: int
    rng: np.random.Generator
    gen: torch.Generator

    def task_of(self, y: torch.Tensor) -> torch.Tensor:
        return self.data.task_of(y)


def _task_prior(tasks: torch.Tensor, n_tasks: int) -> torch.Tensor:
    p = torch.bincount(tasks, minlength=n_tasks).float()
    return p / p.sum()


def seed_split(cfg: BaimConfig, seed: int
               ) -> tuple[BaimConfig, np.random.Generator, int, torch.Generator, DigitsSplit, int]:
    """The data of one seed, as every node of a run rebuilds it: ``(cfg with the seed, rng, torch seed,
    generator, split, evaluation noise seed)``. The caller applies the torch seed (``torch.manual_seed``)."""
    cfg = dataclasses.replace(cfg, seed=seed)
    rng = np.random.default_rng(seed)
    torch_seed = int(rng.integers(2**31))
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    data = load_digits_split(cfg, rng)
    return cfg, rng, torch_seed, gen, data, int(rng.integers(2**31))


def after_deployment_cut(n: int, new_fraction: float) -> int:
    """A shard of ``n`` images: the first ``cut`` trained the edge learner before deployment, the rest
    (at least one image) is the node's data that arrives after deployment."""
    return n - max(1, int(round(new_fraction * n)))


def train_edge(spec, x: torch.Tensor, cfg: BaimConfig, gen: torch.Generator) -> VaeLearner:
    """An edge learner of ``spec`` trained on x (pre-deployment part of its shard), in eval mode."""
    learner = VaeLearner(spec)
    fit(learner, x, cfg.edge_epochs, cfg.batch_size, cfg.lr, gen)
    return learner.eval()


def build_deployed(cfg: BaimConfig, mcfg: MaintainConfig, seed: int, nodes=None) -> Deployed:
    """Split the data, train the edge learners on the pre-deployment part of their shards, and train the
    all-task and the old-task big models on the cloud proxy set (as hil.baim.experiment's fine-tune strategy).

    ``nodes`` (e.g. :class:`hil.cluster.baim.MaintainNodes`): ``start(seed)`` makes each edge node rebuild
    its own data, ``train_edges(specs, gen)`` trains the learners on the nodes and returns the uploaded
    copies (this process is the cloud); None trains them here."""
    from hil.baim.experiment import train_cloud

    cfg, rng, torch_seed, gen, data, eval_seed = seed_split(cfg, seed)
    torch.manual_seed(torch_seed)
    x_init, x_new, y_new = [], [], []
    for x, y in zip(data.x_nodes, data.y_nodes):
        cut = after_deployment_cut(len(x), mcfg.new_fraction)
        x_init.append(x[:cut])
        x_new.append(x[cut:])
        y_new.append(y[cut:])
    specs = draw_learner_specs(cfg.n_nodes, cfg.widths, cfg.depths, cfg.latent_dim, rng)
    if nodes is None:
        edge = [train_edge(spec, x_init[n], cfg, gen) for n, spec in enumerate(specs)]
    else:
        nodes.start(seed)
        edge = nodes.train_edges(specs, gen)
    states = [m.state_dict() for m in edge]
    t_cloud = data.task_of(data.y_cloud)
    no_eval = lambda big: float("nan")  # noqa: E731 - the studies measure afterwards

    big_all, members_all = assemble(specs, states, data.node_task, cfg.n_tasks, cfg.top_k, cfg.max_hop,
                                    _task_prior(t_cloud, cfg.n_tasks), cfg.proj_score_init)
    train_cloud(big_all, data.x_cloud, t_cloud, cfg, "fine-tune", gen, no_eval)
    new_task = cfg.n_tasks - 1
    old_nodes = [n for n in range(cfg.n_nodes) if data.node_task[n] != new_task]
    old = t_cloud != new_task
    big_old, _ = assemble([specs[n] for n in old_nodes], [states[n] for n in old_nodes],
                          tuple(data.node_task[n] for n in old_nodes), cfg.n_tasks - 1, cfg.top_k, cfg.max_hop,
                          _task_prior(t_cloud[old], cfg.n_tasks - 1), cfg.proj_score_init)
    train_cloud(big_old, data.x_cloud[old], t_cloud[old], cfg, "fine-tune", gen, no_eval)
    return Deployed(cfg, data, x_init, x_new, y_new, edge, big_all.eval(), members_all, big_old.eval(), new_task,
                    eval_seed, rng, gen)


# ---------------------------------------------------------------- the four studies (one seed each)


def finetune_node(models: dict, x_new: torch.Tensor, x_local: torch.Tensor, x_task: torch.Tensor,
                  mcfg: MaintainConfig, batch_size: int, gen: torch.Generator, eval_seed: int) -> dict[str, float]:
    """One node's local fine-tuning: each model of ``models`` (name -> model, in order) is fine-tuned on the
    node's new data x_new; NELBO on x_local (test images of the node's own classes) and x_task (of its whole
    task) before and after, as ``{name}_local_before`` etc."""
    out = {}
    for name, model in models.items():
        out[f"{name}_local_before"] = nelbo(model, x_local, eval_seed)
        out[f"{name}_task_before"] = nelbo(model, x_task, eval_seed)
        fit(model, x_new, mcfg.finetune_epochs, batch_size, mcfg.finetune_lr, gen)
        out[f"{name}_local_after"] = nelbo(model, x_local, eval_seed)
        out[f"{name}_task_after"] = nelbo(model, x_task, eval_seed)
    return out


def node_test_sets(data: DigitsSplit, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Node ``n``'s test images: of its own classes, and of its whole task."""
    local = data.x_test[torch.isin(data.y_test, torch.tensor(data.node_classes[n]))]
    return local, data.x_test[data.task_of(data.y_test) == data.node_task[n]]


def study_finetune(d: Deployed, mcfg: MaintainConfig, nodes=None) -> dict:
    """Each node fine-tunes (a) its deployed per-task model and (b) a copy of its own edge learner on its
    new data, same epochs, batch size and learning rate (:func:`finetune_node`). NELBO on the test images of
    the node's own classes ("local") and of its whole task ("task"), before and after; means over nodes.

    ``nodes`` (see :func:`build_deployed`): ``finetune(n, task, blob, gen)`` sends per-task model ``task``'s
    bytes to edge node ``n``, which fine-tunes it and its own edge learner on its own new data; None does
    it here."""
    cfg = d.cfg
    rows: dict[str, list[float]] = {k: [] for k in (
        "deployed_local_before", "deployed_local_after", "deployed_task_before", "deployed_task_after",
        "edge_local_before", "edge_local_after", "edge_task_before", "edge_task_after")}
    for t, members in enumerate(d.members_all):
        blob = pack_task_model(d.big_all, t)
        for n in members:
            if nodes is None:
                models = {"deployed": unpack_task_model(blob), "edge": copy.deepcopy(d.edge[n])}
                got = finetune_node(models, d.x_new[n], *node_test_sets(d.data, n), mcfg, cfg.batch_size, d.gen,
                                    d.eval_seed)
            else:
                got = nodes.finetune(n, t, blob, d.gen)
            for k, v in got.items():
                rows[k].append(v)
    out = {k: float(np.mean(v)) for k, v in rows.items()}
    out["n_new_per_node_mean"] = float(np.mean([len(x) for x in d.x_new]))
    return out


def replay_buffer(d: Deployed, per_task: int, balance_to: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_task`` cloud images of each old task (drawn with the seed's generator): (x, task labels).

    [Note: balanced replay]
    The buffer holds few images per old task, fewer than the new task brings; trained as they are, the
    TSGate's cross-entropy sees the new task as the majority class and learns to send everything there.
    With ``balance_to`` > 0 each old task's buffer is repeated ``ceil(balance_to / per_task)`` times, so
    every task has about as many rows per epoch as the new one (the memory stays ``per_task`` images).
    """
    t_cloud = d.task_of(d.data.y_cloud)
    idx = []
    for t in range(d.new_task):
        rows = np.flatnonzero((t_cloud == t).numpy())
        idx.append(d.rng.choice(rows, size=min(per_task, len(rows)), replace=False))
    sel = torch.from_numpy(np.concatenate(idx)) if idx else torch.zeros(0, dtype=torch.int64)
    if balance_to > 0 and per_task > 0:
        sel = sel.repeat(-(-balance_to // per_task))
    return d.data.x_cloud[sel], t_cloud[sel]


def _old_new_metrics(big: BigModel, d: Deployed) -> dict:
    t_test = d.task_of(d.data.y_test)
    old, new = t_test != d.new_task, t_test == d.new_task
    out = {}
    for name, mask in (("old", old), ("new", new)):
        if big.n_tasks <= d.new_task and name == "new":
            continue
        for k, v in big_metrics(big, d.data.x_test[mask], t_test[mask], d.eval_seed).items():
            out[f"{name}_{k}"] = v
    return out


def study_continual(d: Deployed, mcfg: MaintainConfig) -> dict:
    """The new task's learners arrive; the old big model absorbs them as a new squad with an extended TSGate,
    trained ``absorb_epochs`` on the new task's cloud images with a replay buffer of old-task images, or
    without (replay-free baseline). The reference is the all-task big model retrained from all learners."""
    cfg, data = d.cfg, d.data
    t_cloud = d.task_of(data.y_cloud)
    new_nodes = [n for n in range(cfg.n_nodes) if data.node_task[n] == d.new_task]
    x_new_task, t_new_task = data.x_cloud[t_cloud == d.new_task], t_cloud[t_cloud == d.new_task]
    x_rep, t_rep = replay_buffer(d, mcfg.replay_per_task, balance_to=len(x_new_task))
    before = _old_new_metrics(d.big_old, d)
    out = {"before": before, "reference": _old_new_metrics(d.big_all, d),
           "replay_buffer_images": min(mcfg.replay_per_task * d.new_task, len(x_rep))}
    prior = _task_prior(t_cloud, cfg.n_tasks)
    for name, (x, t) in (("replay", (torch.cat([x_new_task, x_rep]), torch.cat([t_new_task, t_rep]))),
                         ("no_replay", (x_new_task, t_new_task))):
        squad_big, _ = assemble([d.edge[n].spec for n in new_nodes], [d.edge[n].state_dict() for n in new_nodes],
                                (0,) * len(new_nodes), 1, cfg.top_k, cfg.max_hop, torch.ones(1), cfg.proj_score_init)
        big = extend_with_squad(d.big_old, squad_big.squads[0], prior)
        fit_big(big, x, t, mcfg.absorb_epochs, cfg, d.gen)
        m = _old_new_metrics(big.eval(), d)
        m["forgetting_route_acc"] = before["old_route_acc"] - m["old_route_acc"]
        m["forgetting_nelbo_routed"] = m["old_nelbo_routed"] - before["old_nelbo_routed"]
        out[name] = m
    return out


def draw_shots(d: Deployed, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """k images per class of the new task, drawn from the cloud proxy set (the only place that holds every
    class of the task; a node may hold only some): (x, y)."""
    x, y = d.data.x_cloud, d.data.y_cloud
    group = N_CLASSES // d.cfg.n_tasks
    idx = []
    for c in range(d.new_task * group, (d.new_task + 1) * group):
        rows = np.flatnonzero((y == c).numpy())
        if len(rows) < k:
            raise ConfigError(f"few-shot k={k}: class {c} has only {len(rows)} images in the cloud proxy set; "
                              "use smaller shots")
        idx.append(d.rng.choice(rows, size=k, replace=False))
    sel = torch.from_numpy(np.concatenate(idx))
    return x[sel], y[sel]


def study_fewshot(d: Deployed, mcfg: MaintainConfig, k: int) -> dict:
    """Adapt to the new task from k images per class. BAIM: the old squad with the lowest NELBO on the shots
    is copied as the new task's squad, the TSGate extended, and the big model trained ``fewshot_epochs`` on
    the shots plus the replay buffer. Baseline: the edge learner (of any old-task node) with the lowest NELBO
    on the shots, fine-tuned ``fewshot_epochs`` on the shots alone. NELBO on the new task's test images
    (true task; for BAIM also routed) before and after, and BAIM's routing accuracy."""
    cfg, data = d.cfg, d.data
    xs, ys = draw_shots(d, k)
    t_test = d.task_of(data.y_test)
    x_test_new = data.x_test[t_test == d.new_task]
    donor = min(range(d.big_old.n_tasks), key=lambda t: nelbo(d.big_old.squads[t], xs, d.eval_seed))
    t_cloud = d.task_of(data.y_cloud)
    big = extend_with_squad(d.big_old, copy.deepcopy(d.big_old.squads[donor]), _task_prior(t_cloud, cfg.n_tasks))
    out = {"k": k, "n_shots": len(xs), "shots_per_class": torch.bincount(ys, minlength=N_CLASSES).tolist(),
           "baim_donor_task": donor, "baim_before": nelbo(big.squads[d.new_task], x_test_new, d.eval_seed)}
    x_rep, t_rep = replay_buffer(d, mcfg.replay_per_task, balance_to=len(xs))
    fit_big(big, torch.cat([xs, x_rep]), torch.cat([torch.full((len(xs),), d.new_task), t_rep]),
            mcfg.fewshot_epochs, cfg, d.gen)
    big.eval()
    m = _old_new_metrics(big, d)
    out.update(baim_after=m["new_nelbo_true"], baim_after_routed=m["new_nelbo_routed"],
               baim_new_route_acc=m["new_route_acc"], baim_old_route_acc=m["old_route_acc"])
    old_nodes = [n for n in range(cfg.n_nodes) if data.node_task[n] != d.new_task]
    best = min(old_nodes, key=lambda n: nelbo(d.edge[n], xs, d.eval_seed))
    edge = copy.deepcopy(d.edge[best])
    out["edge_node"] = best
    out["edge_before"] = nelbo(edge, x_test_new, d.eval_seed)
    fit(edge, xs, mcfg.fewshot_epochs, cfg.batch_size, cfg.lr, d.gen)
    out["edge_after"] = nelbo(edge, x_test_new, d.eval_seed)
    return out


def study_pruning(d: Deployed, mcfg: MaintainConfig) -> dict:
    """Post-hoc pruning (no retraining) of the all-task big model at each ratio: projections, experts, both.
    Size (parameters, packed bytes, projection and expert counts) and test quality (routed NELBO, routing
    accuracy; the TSGate is untouched, so routing is the same at every ratio)."""
    t_test = d.task_of(d.data.y_test)
    t_cloud = d.task_of(d.data.y_cloud)
    out: dict = {}
    for what in ("projections", "experts", "both"):
        for r in mcfg.prune_ratios:
            p = prune_big(d.big_all, r, what, d.data.x_cloud, t_cloud)
            m = big_metrics(p, d.data.x_test, t_test, d.eval_seed)
            out[f"{what}@{r:g}"] = {**size_of(p), "n_projections": p.n_projections(),
                                    "n_experts": sum(s.n for s in p.squads), "nelbo_routed": m["nelbo_routed"],
                                    "route_acc": m["route_acc"]}
    return out


# ---------------------------------------------------------------- over seeds, and the report


def _summaries(per_seed: list) -> dict:
    """mean_ci95 of every numeric leaf across the per-seed dicts (same structure in each)."""
    first = per_seed[0]
    if isinstance(first, dict):
        return {k: _summaries([s[k] for s in per_seed]) for k in first}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return mean_ci95(per_seed)
    return {"values": per_seed}


def run_maintenance(cfg: BaimConfig, mcfg: MaintainConfig, out_dir: Path | None = None, progress=None,
                    nodes=None) -> dict:
    """All four studies for every seed; report with per-seed values and ``mean_ci95`` summaries.

    ``nodes`` (:class:`hil.cluster.baim.MaintainNodes`) trains the edge learners and runs local fine-tuning
    on the edge nodes (see :func:`build_deployed`, :func:`study_finetune`); its ``report()`` goes under
    ``"nodes"``. The numbers are the same as without it."""
    say = progress or (lambda msg: logger.info(msg))
    t0 = time.perf_counter()
    per_seed = []
    for seed in mcfg.seeds:
        say(f"seed {seed}: edge learners and big models")
        d = build_deployed(cfg, mcfg, seed, nodes)
        say(f"seed {seed}: fine-tuning{' on the edge nodes' if nodes is not None else ''}, continual learning, "
            "few-shot, pruning")
        per_seed.append({"finetune": study_finetune(d, mcfg, nodes), "continual": study_continual(d, mcfg),
                         "fewshot": {str(k): study_fewshot(d, mcfg, k) for k in mcfg.shots},
                         "pruning": study_pruning(d, mcfg)})
    report = {"config": cfg.to_dict(), "maintain": mcfg.to_dict(), "elapsed_s": time.perf_counter() - t0,
              "what": "quality = held-out negative ELBO in nats/image (lower is better); accuracy = TSGate "
                      "task-routing accuracy; see hil/baim/maintain.py [Note: what is measured]",
              "per_seed": per_seed, "summary": _summaries(per_seed)}
    if nodes is not None:
        report["nodes"] = nodes.report()
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / "report.md", render_maintenance_md(report))
        atomic_write_json(out_dir / "report.json", report)
    return report


def _ci(s: dict, digits: int = 2) -> str:
    if s.get("ci95") is None:
        return f"{s['mean']:.{digits}f}"
    lo, hi = s["ci95"]
    return f"{s['mean']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def render_maintenance_md(report: dict) -> str:
    """The four tables (mean [95 % interval] over seeds)."""
    S = report["summary"]
    n = len(report["maintain"]["seeds"])
    L = [f"Seeds {report['maintain']['seeds']} (n = {n}); mean [95 % Student-t interval]. {report['what']}.", ""]
    f = S["finetune"]
    L += [f"### Local fine-tuning ({report['maintain']['finetune_epochs']} epochs on each node's new data, "
          f"{f['n_new_per_node_mean']['mean']:.0f} images per node on average; NELBO, nats/image)", "",
          "| model at the node | local test before | local test after | task test before | task test after |",
          "|---|---|---|---|---|"]
    for name, label in (("deployed", "deployed per-task model"), ("edge", "own edge learner")):
        L.append(f"| {label} | {_ci(f[f'{name}_local_before'])} | {_ci(f[f'{name}_local_after'])} | "
                 f"{_ci(f[f'{name}_task_before'])} | {_ci(f[f'{name}_task_after'])} |")
    c = S["continual"]
    L += ["", f"### Continual learning (new task {report['config']['n_tasks'] - 1} absorbed in "
              f"{report['maintain']['absorb_epochs']} epochs; replay buffer {report['maintain']['replay_per_task']} "
              "images per old task)", "",
          "| model | old: routing acc | old: routed NELBO | new: routing acc | new: routed NELBO | "
          "forgetting (acc drop) | forgetting (NELBO rise) |", "|---|---|---|---|---|---|---|"]
    b = c["before"]
    L.append(f"| old big model (before) | {_ci(b['old_route_acc'], 3)} | {_ci(b['old_nelbo_routed'])} | - | - | - | - |")
    for name, label in (("replay", "absorbed, replay"), ("no_replay", "absorbed, no replay")):
        m = c[name]
        L.append(f"| {label} | {_ci(m['old_route_acc'], 3)} | {_ci(m['old_nelbo_routed'])} | "
                 f"{_ci(m['new_route_acc'], 3)} | {_ci(m['new_nelbo_routed'])} | {_ci(m['forgetting_route_acc'], 3)} | "
                 f"{_ci(m['forgetting_nelbo_routed'])} |")
    r = c["reference"]
    L.append(f"| retrained from all learners (reference) | {_ci(r['old_route_acc'], 3)} | {_ci(r['old_nelbo_routed'])} "
             f"| {_ci(r['new_route_acc'], 3)} | {_ci(r['new_nelbo_routed'])} | - | - |")
    L += ["", f"### Few-shot adaptation of the new task ({report['maintain']['fewshot_epochs']} epochs; NELBO on the "
              "new task's test images, nats/image)", "",
          "| k per class | BAIM before | BAIM after | BAIM after (routed) | BAIM new-task routing acc | "
          "BAIM old-task routing acc | edge model before | edge model after |", "|---|---|---|---|---|---|---|---|"]
    for k, fs in S["fewshot"].items():
        L.append(f"| {k} | {_ci(fs['baim_before'])} | {_ci(fs['baim_after'])} | {_ci(fs['baim_after_routed'])} | "
                 f"{_ci(fs['baim_new_route_acc'], 3)} | {_ci(fs['baim_old_route_acc'], 3)} | {_ci(fs['edge_before'])} "
                 f"| {_ci(fs['edge_after'])} |")
    L += ["", "### Pruning (post hoc, no retraining; all-task big model; routed NELBO on all test images)", "",
          "| pruned | ratio | projections | experts | params | bytes | routed NELBO | routing acc |",
          "|---|---|---|---|---|---|---|---|"]
    for key, p in S["pruning"].items():
        what, ratio = key.split("@")
        L.append(f"| {what} | {ratio} | {_ci(p['n_projections'], 0)} | {_ci(p['n_experts'], 0)} | "
                 f"{_ci(p['params'], 0)} | {_ci(p['bytes'], 0)} | {_ci(p['nelbo_routed'])} | {_ci(p['route_acc'], 3)} |")
    L += nodes_markdown(report.get("nodes"))
    L += ["", f"Wall time {report['elapsed_s']:.0f} s.", ""]
    return "\n".join(L)


def nodes_markdown(nodes: dict | None) -> list[str]:
    """The edge nodes' part of a run on node actors: where each ran, what crossed the links (bytes, seconds
    measured at the receiver) and how long its training and fine-tuning took; means over seeds."""
    if not nodes:
        return []
    L = ["", f"### On node actors (cluster {nodes['mode']}{', ' + nodes['address'] if nodes.get('address') else ''})",
         "", "Edge learners trained and per-task models fine-tuned inside the edge nodes; this process is the cloud. "
         "Means over seeds; seconds measured at the receiver (upload: the cloud; deployment: the edge).", "",
         "| node | host | pid | task | train s | upload B | upload s | per-task model B | download s | fine-tune s |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    for i in nodes["nodes"]:
        rows = [s["edges"][i["name"]] for s in nodes["seeds"]]
        mean = lambda k: float(np.mean([r[k] for r in rows]))  # noqa: E731
        L.append(f"| {i['name']} | {i['host']} | {i['pid']} | {rows[0]['task']} | {mean('train_s'):.2f} | "
                 f"{mean('upload_bytes'):.0f} | {mean('upload_s'):.4f} | {mean('download_bytes'):.0f} | "
                 f"{mean('download_s'):.4f} | {mean('finetune_s'):.2f} |")
    new = [s["new_task_uploads"] for s in nodes["seeds"]]
    L += ["", f"Continual learning absorbs the new task's learners as uploaded: {np.mean([u['messages'] for u in new]):.0f} "
              f"messages, {np.mean([u['bytes'] for u in new]):.0f} B in {np.mean([u['seconds'] for u in new]):.4f} s "
              "per seed (mean)."]
    return L
