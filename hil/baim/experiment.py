"""One BAIM experiment: edge training, cloud assembly per strategy, FedAvg baseline, deployment, report.

``run_baim(cfg, out_dir)`` writes report.json, report.md, config.toml (resolved) and PNG plots.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from hil._io import atomic_write, atomic_write_json, atomic_write_text, json_safe
from hil.baim.assembly import BigModel, assemble
from hil.baim.config import BaimConfig
from hil.baim.data import DigitsSplit, batches, load_digits_split
from hil.baim.deploy import check_exact, deploy, n_params, place_task_models, split_by_task
from hil.baim.fedavg import FedAvgResult, rounds_for_budget, run_fedavg
from hil.baim.learners import LearnerSpec, VaeLearner, draw_learner_specs, train_vae
from hil.baim.metrics import FrechetEvaluator, accuracy, train_classifier
from hil.baim.wire import TrafficMeter, pack_state, unpack_state
from hil.flops import count_flops
from hil.errors import CheckpointError

logger = logging.getLogger(__name__)


@dataclass
class StrategyResult:
    name: str
    fd_per_epoch: list[float] = field(default_factory=list)  # index 0 = before cloud training / round 1
    upload_bytes: int = 0
    download_bytes: int = 0
    cloud_flops_per_epoch: int = 0
    edge_flops_per_epoch_mean: float = 0.0
    edge_epochs: int = 0
    cloud_epochs: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def final_fd(self) -> float:
        return self.fd_per_epoch[-1]


def train_cloud(big: BigModel, x: torch.Tensor, tasks: torch.Tensor, cfg: BaimConfig, strategy: str,
                gen: torch.Generator, evaluate, evaluate_nelbo=None,
                on_epoch=None) -> tuple[list[float], int, dict, list]:
    """Cloud training of the big model for ``cfg.cloud_epochs`` on the cloud proxy set.

    ``freeze`` trains only gates, component priors and projections; ``fine-tune`` and ``scratch``
    train everything. The first ``cfg.gate_warmup_epochs`` train only the gates and component priors
    (the optimizer holds only those; the others get gradients but no steps). Projections are pruned
    after epoch ``cfg.prune_epoch``.
    Returns (FD per epoch incl. epoch 0, FLOPs of the first epoch, pruning info, the values of
    ``evaluate_nelbo(big)`` per epoch or an empty list). ``on_epoch(epoch, fd)`` is called after each epoch.
    """
    if strategy == "freeze":
        for s in big.squads:
            for p in s.learner_parameters():
                p.requires_grad_(False)

    gate_params = {id(p) for s in big.squads for p in (*s.ls_gate.parameters(), s.prior_logits)}
    gate_params |= {id(p) for p in big.ts_gate.parameters()}

    def make_opt(gates_only: bool):
        params = [p for p in big.parameters() if p.requires_grad and (not gates_only or id(p) in gate_params)]
        return torch.optim.Adam(params, lr=cfg.cloud_lr)

    opt = make_opt(cfg.gate_warmup_epochs > 0)
    fds = [evaluate(big)]
    nelbos = [evaluate_nelbo(big)] if evaluate_nelbo else []
    flops = 0
    prune_info = {"before": big.n_projections(), "after": big.n_projections(), "epoch": None}
    for epoch in range(cfg.cloud_epochs):
        with count_flops(enabled=epoch == 0) as counted:
            for idx in batches(len(x), cfg.batch_size, gen):
                loss = big.loss(x[idx], tasks[idx], gen, cfg.proj_penalty)
                opt.zero_grad()
                loss.backward()
                opt.step()
        if epoch == 0:
            flops = counted.total
        if epoch + 1 == cfg.gate_warmup_epochs:
            opt = make_opt(False)
        if epoch + 1 == cfg.prune_epoch:
            removed = big.prune(cfg.keep_fraction)
            prune_info = {"before": prune_info["before"], "after": big.n_projections(), "epoch": epoch + 1,
                          "removed": removed}
            opt = make_opt(epoch + 1 < cfg.gate_warmup_epochs)
        fds.append(evaluate(big))
        if evaluate_nelbo:
            nelbos.append(evaluate_nelbo(big))
        if on_epoch:
            on_epoch(epoch + 1, fds[-1])
    return fds, flops, prune_info, nelbos


class VaeFrechet:
    """Frechet distance of a VAE's samples from ``n_samples`` latents drawn with ``seed`` (fixed noise)."""

    def __init__(self, fd: FrechetEvaluator, seed: int, n_samples: int, latent_dim: int):
        self.fd, self.seed, self.n_samples, self.latent_dim = fd, seed, n_samples, latent_dim

    def __call__(self, model: VaeLearner) -> float:
        g = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            return self.fd(model.sample(torch.randn(self.n_samples, self.latent_dim, generator=g)))


class Evaluators:
    """The run's quality measures (Frechet distance on the digits classifier's features, held-out ELBO),
    each with fixed noise from ``eval_seed``: an object (not closures) so that a cluster node can be
    handed it. ``clf_acc`` is the classifier's test accuracy, ``fd_real`` the real train-vs-test floor."""

    def __init__(self, cfg: BaimConfig, clf, data: DigitsSplit, eval_seed: int):
        self.cfg, self.clf, self.eval_seed = cfg, clf, eval_seed
        self.fd = FrechetEvaluator(clf, data.x_test)
        self.x_test, self.task_test = data.x_test, data.task_of(data.y_test)
        self.clf_acc = accuracy(clf, data.x_test, data.y_test)
        self.fd_vae = VaeFrechet(self.fd, eval_seed, cfg.n_fd_samples, cfg.latent_dim)
        self.fd_real = float("nan")

    def fd_big(self, big: BigModel) -> float:
        return self.fd(big.sample(self.cfg.n_fd_samples, torch.Generator().manual_seed(self.eval_seed)))

    def nelbo_big(self, big: BigModel) -> dict[str, float]:
        """Held-out negative ELBO and its terms (nats per image, squads routed by the true task; fixed noise)."""
        g = torch.Generator().manual_seed(self.eval_seed)
        sums = {"rec": 0.0, "kl_z": 0.0, "kl_comp": 0.0}
        with torch.no_grad():
            for t in range(self.cfg.n_tasks):
                for k, v in big.squads[t].loss_terms(self.x_test[self.task_test == t], g).items():
                    sums[k] += float(v.sum())
        out = {k: v / len(self.x_test) for k, v in sums.items()}
        out["nelbo"] = sum(out.values())
        return out


def seeded_split(cfg: BaimConfig) -> tuple[np.random.Generator, int, int, DigitsSplit]:
    """The run's numpy Generator, the torch global and generator seeds drawn from it, and the data split,
    in the order every BAIM run draws them (so a node can rebuild its own shard from ``cfg.seed``)."""
    rng = np.random.default_rng(cfg.seed)
    torch_seed, gen_seed = int(rng.integers(2**31)), int(rng.integers(2**31))
    return rng, torch_seed, gen_seed, load_digits_split(cfg, rng)


def baim_start(cfg: BaimConfig, say) -> tuple[np.random.Generator, torch.Generator, DigitsSplit, Evaluators]:
    """Seeds, data split, evaluation classifier and evaluators of a run; sets torch's global seed.
    """
    rng, torch_seed, gen_seed, data = seeded_split(cfg)
    torch.manual_seed(torch_seed)
    gen = torch.Generator().manual_seed(gen_seed)
    say("training the evaluation classifier")
    clf = train_classifier(data.x_train, data.y_train, cfg.classifier_epochs, gen)
    ev = Evaluators(cfg, clf, data, int(rng.integers(2**31)))
    n_ref = min(cfg.n_fd_samples, len(data.x_train))
    ev.fd_real = ev.fd(data.x_train[torch.from_numpy(rng.permutation(len(data.x_train))[:n_ref])])
    return rng, gen, data, ev


def cloud_strategy(cfg: BaimConfig, strategy: str, received: list[LearnerSpec], states: list, data: DigitsSplit,
                   gen: torch.Generator, ev: Evaluators, meter: TrafficMeter, deploy_fn, out_dir: Path,
                   grid_seed: int, place: bool, edge_flops: list, on_epoch=None) -> dict:
    """One cloud strategy from what the cloud received: assemble, train, deploy, check, sample.

    ``deploy_fn(big, members, meter)`` ships the per-task models to the nodes of their tasks and returns
    node index -> something with the per-task model's ``reconstruct`` and ``generate`` (the model, or a
    handle that runs it on its node). Returns ``result`` (StrategyResult), ``deploy_checks``, ``samples``,
    ``sizes``, ``big_state`` (the trained big model's state dict) and, with ``place``, ``placement``.
    ``on_epoch(epoch, fd)`` is called after each cloud epoch.
    """
    task_cloud = data.task_of(data.y_cloud)
    task_prior = torch.bincount(task_cloud, minlength=cfg.n_tasks).float()
    task_prior = task_prior / task_prior.sum()
    big, members = assemble(received, states, data.node_task, cfg.n_tasks, cfg.top_k, cfg.max_hop, task_prior,
                            cfg.proj_score_init)
    fds, cloud_flops, prune_info, nelbos = train_cloud(big, data.x_cloud, task_cloud, cfg, strategy, gen, ev.fd_big,
                                                       ev.nelbo_big, on_epoch)
    big.eval()
    node_models = deploy_fn(big, members, meter)
    per_task = [node_models[m[0]] for m in members]
    out = {"deploy_checks": [c.__dict__ for c in check_exact(big, per_task, data.x_test, gen)],
           "samples": big.sample(100, torch.Generator().manual_seed(grid_seed)), "big_state": big.state_dict()}
    with torch.random.fork_rng():  # building modules draws initial weights: leave the run's random state alone
        local = split_by_task(big)  # the cloud's own copies (the bytes it deployed): sizes and placement
    if place:  # placement depends on the architecture only; done once
        out["placement"] = place_task_models({m[0]: local[t] for t, m in enumerate(members)}, members,
                                             out_dir / "placement" / strategy)
    out["sizes"] = {"big_params": n_params(big), "per_task_params": [n_params(m) for m in local]}
    with torch.no_grad():
        tsgate_acc = float((big.route(data.x_test) == data.task_of(data.y_test)).float().mean())
    out["result"] = StrategyResult(
        name=strategy, fd_per_epoch=fds, upload_bytes=meter.total_bytes("up"),
        download_bytes=meter.total_bytes("down"), cloud_flops_per_epoch=cloud_flops,
        edge_flops_per_epoch_mean=0.0 if strategy == "scratch" else float(np.mean(edge_flops)),
        edge_epochs=0 if strategy == "scratch" else cfg.edge_epochs, cloud_epochs=cfg.cloud_epochs,
        extra={"pruning": {k: v for k, v in prune_info.items() if k != "removed"}, "tsgate_test_acc": tsgate_acc,
               "test_nelbo_per_epoch": [e["nelbo"] for e in nelbos],
               "test_rate_per_epoch": [e["kl_z"] for e in nelbos],
               "test_rec_per_epoch": [e["rec"] for e in nelbos]},
    )
    return out


def edge_upload(strategy: str, spec: LearnerSpec, state: dict | None) -> tuple[str, bytes]:
    """What edge node sends up for ``strategy``: ``(what, bytes)``; ``scratch`` sends only the architecture."""
    if strategy == "scratch":
        return "architecture", json.dumps(spec.to_json()).encode()
    return "edge weights", pack_state(state, spec.to_json())


def cloud_receive(strategy: str, blob: bytes) -> tuple[LearnerSpec, dict | None]:
    """The learner spec and weights (None for ``scratch``) the cloud rebuilds from an edge's upload."""
    if strategy == "scratch":
        return LearnerSpec.from_json(json.loads(blob)), None
    state, meta = unpack_state(blob)
    return LearnerSpec.from_json(meta), state


class InProcessNodes:
    """The edge nodes and the cloud of :func:`run_baim` in this process: every transfer is a byte string
    handed over through a :class:`TrafficMeter` (bytes measured, no transfer time). ``hil.cluster.baim``
    has the same three methods on node actors."""

    def __init__(self):
        self.edge_states: list[dict] = []

    def train_edges(self, cfg: BaimConfig, specs: list[LearnerSpec], data: DigitsSplit, gen: torch.Generator,
                    ev: Evaluators, say=lambda msg: None) -> tuple[list[int], list[float]]:
        """Train every edge learner on its shard; returns (first-epoch FLOPs per node, edge-alone FD per node).
        ``say(msg)`` hears of each learner trained (as do the strategy's epochs and FedAvg's rounds below)."""
        edge_flops, edge_fd = [], []
        for n, spec in enumerate(specs):
            learner = VaeLearner(spec)
            train_vae(learner, data.x_nodes[n], cfg.edge_epochs, cfg.batch_size, cfg.lr, gen, edge_flops)
            self.edge_states.append(learner.state_dict())
            edge_fd.append(ev.fd_vae(learner))
            say(f"edge learner {n + 1}/{len(specs)} trained ({cfg.edge_epochs} epochs), FD {edge_fd[-1]:.1f}")
        return edge_flops, edge_fd

    def strategy(self, cfg: BaimConfig, strategy: str, specs: list[LearnerSpec], data: DigitsSplit,
                 gen: torch.Generator, ev: Evaluators, out_dir: Path, grid_seed: int, place: bool,
                 edge_flops: list, say=lambda msg: None) -> dict:
        """Uploads, then :func:`cloud_strategy` with :func:`hil.baim.deploy.deploy`."""
        meter = TrafficMeter()
        received, states = [], []  # the cloud builds only from what it received
        for n, spec in enumerate(specs):
            what, blob = edge_upload(strategy, spec, None if strategy == "scratch" else self.edge_states[n])
            got_spec, state = cloud_receive(strategy, meter.send("up", f"node{n}", what, blob))
            received.append(got_spec)
            states.append(state)
        return cloud_strategy(cfg, strategy, received, states, data, gen, ev, meter, deploy, out_dir, grid_seed,
                              place, edge_flops, on_epoch=lambda e, f: say(
                                  f"cloud strategy {strategy}: epoch {e}/{cfg.cloud_epochs}, FD {f:.1f}"))

    def fedavg(self, fed_spec: LearnerSpec, data: DigitsSplit, cfg: BaimConfig, min_rounds: int,
               gen: torch.Generator, evaluate, validate, say=lambda msg: None) -> tuple[FedAvgResult, TrafficMeter]:
        meter = TrafficMeter()
        fed = run_fedavg(fed_spec, list(data.x_nodes), min_rounds, cfg.fedavg_local_epochs, cfg.batch_size,
                         cfg.lr, gen, meter, evaluate=evaluate,
                         cloud_data=data.x_cloud if cfg.fedavg_include_cloud_data else None, validate=validate,
                         patience=cfg.fedavg_patience, max_rounds=cfg.fedavg_max_rounds,
                         on_round=lambda r, f: say(f"federated averaging: round {r}, FD {f:.1f}"))
        return fed, meter

    def report(self) -> dict:
        return {"mode": "in-process"}


CHECKPOINT = "checkpoint.pt"


def completed_strategies(out_dir: Path) -> list[str]:
    """Cloud strategies already completed in ``out_dir``'s checkpoint (empty if there is none)."""
    ck = _load_checkpoint(Path(out_dir))
    return list(json.loads(ck["meta"])["done"]) if ck else []


def _load_checkpoint(out_dir: Path) -> dict | None:
    """The checkpoint in ``out_dir`` or None; CheckpointError naming the file when it is unreadable."""
    path = out_dir / CHECKPOINT
    if not path.exists():
        return None
    how = "delete it (or run with --no-resume) to redo the strategies, or put back an earlier copy"
    try:
        ck = torch.load(path, weights_only=True)  # tensors and a JSON string: nothing is unpickled
        meta = json.loads(ck["meta"])
        if not isinstance(meta.get("done"), (dict, list)) or "config" not in meta:
            raise ValueError("its metadata lacks 'done' or 'config'")
    except Exception as e:  # noqa: BLE001 - torch raises OSError, RuntimeError, UnpicklingError, EOFError, ...
        raise CheckpointError(f"BAIM checkpoint {str(path)!r} is unreadable ({type(e).__name__}: {e}); it is "
                              f"truncated or corrupt: {how}") from e
    return ck


def _save_checkpoint(out_dir: Path, cfg: BaimConfig, done: dict, samples: dict, rng: np.random.Generator,
                     gen: torch.Generator) -> None:
    """After each strategy: its outputs and every random state, atomically (see [Note: BAIM resume])."""
    meta = {"config": cfg.to_dict(), "done": done, "rng": rng.bit_generator.state}
    blob = {"meta": json.dumps(json_safe(meta)), "samples": {k: samples[k] for k in done},
            "gen": gen.get_state(), "torch_rng": torch.get_rng_state()}
    atomic_write(out_dir / CHECKPOINT, lambda f: torch.save(blob, f))


def run_baim(cfg: BaimConfig, out_dir: Path, progress=None, resume: bool = True, nodes=None) -> dict:
    """Run everything and write the report folder. ``progress(msg)`` is called between phases.

    ``nodes`` runs the edge learners, the uploads, the cloud and FedAvg: :class:`InProcessNodes` (default)
    or :class:`hil.cluster.baim.BaimCluster` (node actors; the same numbers, see [Note: BAIM on node actors]).

    [Note: BAIM resume]
    After each cloud strategy ``out_dir/checkpoint.pt`` is rewritten atomically with the outputs of
    every completed strategy (results, exactness checks, sample grid, placement, sizes; the big model
    itself is ``big_<strategy>.pt``) and the numpy, torch-generator and torch-global random states.
    With ``resume`` (default) and a checkpoint of the same config, the data split, classifier and edge
    learners are recomputed from the seed (deterministic, seconds), the completed strategies are taken
    from the checkpoint and the random states restored, so the remaining strategies and FedAvg run as
    they would have without the interruption. A checkpoint of another config is ignored (logged).
    """
    say = progress or (lambda msg: logger.info(msg))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    rng, gen, data, ev = baim_start(cfg, say)
    nodes = InProcessNodes() if nodes is None else nodes

    # ---- edge learners
    say(f"training {cfg.n_nodes} edge learners")
    specs = draw_learner_specs(cfg.n_nodes, cfg.widths, cfg.depths, cfg.latent_dim, rng)
    edge_flops, edge_fd = nodes.train_edges(cfg, specs, data, gen, ev, say)

    results: dict[str, StrategyResult] = {}
    deploy_checks: dict[str, list] = {}
    samples: dict[str, torch.Tensor] = {}
    placement: dict = {}
    sizes: dict = {}
    grid_seed = int(rng.integers(2**31))
    done: dict[str, dict] = {}
    ck = _load_checkpoint(out_dir) if resume else None
    if ck is not None:
        meta = json.loads(ck["meta"])
        if meta["config"] != json.loads(json.dumps(json_safe(cfg.to_dict()))):
            logger.warning("checkpoint in %s is for another config; starting the strategies afresh", out_dir)
        elif list(meta["done"]) != list(cfg.strategies[: len(meta["done"])]):
            logger.warning("checkpoint strategies %s are not a prefix of %s; starting afresh", list(meta["done"]),
                           list(cfg.strategies))
        else:
            done = meta["done"]
            for name, d in done.items():
                results[name] = StrategyResult(**d["result"])
                deploy_checks[name] = d["deploy_checks"]
                sizes[name] = d["sizes"]
                if "placement" in d:
                    placement[name] = d["placement"]
                samples[name] = ck["samples"][name]
            if done:
                rng.bit_generator.state = meta["rng"]
                gen.set_state(ck["gen"])
                torch.set_rng_state(ck["torch_rng"])
                say(f"resuming from {out_dir / CHECKPOINT}: strategies {', '.join(done)} already done")
    for strategy in cfg.strategies:
        if strategy in done:
            continue
        say(f"cloud strategy {strategy}")
        out = nodes.strategy(cfg, strategy, specs, data, gen, ev, out_dir, grid_seed, strategy == cfg.strategies[0],
                             edge_flops, say)
        results[strategy], deploy_checks[strategy], samples[strategy], sizes[strategy] = (
            out["result"], out["deploy_checks"], out["samples"], out["sizes"])
        if "placement" in out:
            placement[strategy] = out["placement"]
        state = out["big_state"]
        atomic_write(out_dir / f"big_{strategy}.pt", lambda f: torch.save(state, f))
        done[strategy] = {"result": asdict(results[strategy]), "deploy_checks": deploy_checks[strategy],
                          "sizes": sizes[strategy], **({"placement": placement[strategy]} if strategy in placement
                                                        else {})}
        _save_checkpoint(out_dir, cfg, done, samples, rng, gen)

    # per-sample gradient evaluations (see [Note: equal budgets]) at each FD point of each strategy
    n_edge = sum(len(x) for x in data.x_nodes)
    for name, res in results.items():
        edge = 0 if name == "scratch" else cfg.edge_epochs * n_edge
        res.extra["steps_per_point"] = [edge + e * len(data.x_cloud) for e in range(len(res.fd_per_epoch))]
    budget = max((r.extra["steps_per_point"][-1] for r in results.values()), default=0)

    # ---- FedAvg baseline
    fed_clients = n_edge + (len(data.x_cloud) if cfg.fedavg_include_cloud_data else 0)
    min_rounds = max(cfg.fedavg_rounds, rounds_for_budget(budget, cfg.fedavg_local_epochs * fed_clients))
    say(f"federated averaging, at least {min_rounds} rounds (patience {cfg.fedavg_patience})")
    fed_spec = LearnerSpec(tuple(cfg.fedavg_widths), cfg.latent_dim)
    # the stopping score: FD against the training images, other noise; never the test images
    val_vae = VaeFrechet(FrechetEvaluator(ev.clf, data.x_train), int(rng.integers(2**31)), cfg.n_fd_samples,
                         cfg.latent_dim)
    fed, meter = nodes.fedavg(fed_spec, data, cfg, min_rounds, gen, ev.fd_vae, val_vae, say)
    reach = {}
    for name, res in results.items():  # the first round at which FedAvg is as good as the strategy
        r = next((k for k, f in enumerate(fed.fd_per_round) if f <= res.final_fd), None)
        reach[name] = {"round": r, "upload_bytes": None if r is None else fed.upload_bytes_per_round[r]}
    results["fedavg"] = StrategyResult(
        name="fedavg", fd_per_epoch=fed.fd_per_round, upload_bytes=meter.total_bytes("up"),
        download_bytes=meter.total_bytes("down"),
        cloud_flops_per_epoch=0,  # the server only averages: aggregation_adds_per_round additions, no matmul
        edge_flops_per_epoch_mean=float(np.mean(fed.edge_flops_per_epoch)),
        edge_epochs=fed.rounds * cfg.fedavg_local_epochs, cloud_epochs=fed.rounds,
        extra={"aggregation_adds_per_round": fed.aggregation_adds_per_round, "params": n_params(fed.model),
               "steps_per_point": [r * fed.samples_per_round for r in range(len(fed.fd_per_round))],
               "val_fd_per_round": fed.val_per_round, "upload_bytes_per_round": fed.upload_bytes_per_round,
               "min_rounds": fed.min_rounds, "best_round": fed.best_round, "stopped_by": fed.stopped_by,
               "budget_samples": budget, "reaches_strategy_fd": reach},
    )
    with torch.no_grad():
        samples["fedavg"] = fed.model.sample(torch.randn(100, cfg.latent_dim,
                                                         generator=torch.Generator().manual_seed(grid_seed)))
    samples["real (test)"] = data.x_test[torch.from_numpy(rng.permutation(len(data.x_test))[:100])]

    # ---- references: the small (FedAvg's) VAE and the big model trained centrally on all training images
    say("central references")
    results.update(central_references(cfg, data, specs, fed_spec, max(budget, fed.rounds * fed.samples_per_round),
                                      gen, ev.fd_vae, ev.fd_big, say))

    report = build_report(cfg, results, deploy_checks, placement, sizes, edge_fd, specs, data, ev.clf_acc,
                          ev.fd_real, time.perf_counter() - t_start)
    report["nodes"] = nodes.report()
    write_outputs(out_dir, cfg, report, results, samples)
    return report


def central_references(cfg: BaimConfig, data, specs: list[LearnerSpec], fed_spec: LearnerSpec, budget: int,
                       gen: torch.Generator, fd_vae, fd_big, say=None) -> dict[str, StrategyResult]:
    """The small VAE (FedAvg's architecture) and the big model (BAIM's assembled architecture, random
    initialisation) trained centrally on all training images (edges' and cloud's pooled) for
    ``budget`` per-sample gradient evaluations (rounded up to whole epochs).

    [Note: equal budgets]
    A "step" on every axis is one per-sample gradient evaluation (an image through forward and
    backward once): a BAIM strategy's edge training counts ``edge_epochs x`` the edges' images and
    each cloud epoch the cloud set; a FedAvg round counts ``local_epochs x`` every client's images. The
    references get the larger of BAIM's and FedAvg's budgets, so they are what centralised training of
    the same architectures reaches with as much compute (no upload: the data would have to move).
    ``say(msg)`` (optional) hears of each epoch."""
    import dataclasses
    import math

    n = len(data.x_train)
    epochs = max(1, math.ceil(budget / n))
    out: dict[str, StrategyResult] = {}
    small = VaeLearner(fed_spec)
    opt = torch.optim.Adam(small.parameters(), lr=cfg.lr)
    fds = [fd_vae(small)]
    say = say or (lambda msg: None)
    for e in range(epochs):
        train_vae(small, data.x_train, 1, cfg.batch_size, cfg.lr, gen, opt=opt)
        fds.append(fd_vae(small))
        say(f"central small model: epoch {e + 1}/{epochs}, FD {fds[-1]:.1f}")
    out["central-small"] = StrategyResult(name="central-small", fd_per_epoch=fds, edge_epochs=0, cloud_epochs=epochs,
                                          extra={"steps_per_point": [e * n for e in range(epochs + 1)],
                                                 "params": n_params(small)})
    task_prior = torch.bincount(data.task_of(data.y_train), minlength=cfg.n_tasks).float()
    big, _ = assemble(specs, [None] * len(specs), data.node_task, cfg.n_tasks, cfg.top_k, cfg.max_hop,
                      task_prior / task_prior.sum(), cfg.proj_score_init)
    scale = epochs / cfg.cloud_epochs  # gate warm-up and pruning at the same fraction of training
    ccfg = dataclasses.replace(cfg, cloud_epochs=epochs, gate_warmup_epochs=min(epochs, round(cfg.gate_warmup_epochs * scale)),
                               prune_epoch=max(1, round(cfg.prune_epoch * scale)))
    fds, _, _, _ = train_cloud(big, data.x_train, data.task_of(data.y_train), ccfg, "scratch", gen, fd_big,
                               on_epoch=lambda e, f: say(f"central big model: epoch {e}/{epochs}, FD {f:.1f}"))
    out["central-big"] = StrategyResult(name="central-big", fd_per_epoch=fds, edge_epochs=0, cloud_epochs=epochs,
                                        extra={"steps_per_point": [e * n for e in range(epochs + 1)],
                                               "params": n_params(big)})
    return out


def build_report(cfg, results, deploy_checks, placement, sizes, edge_fd, specs, data, clf_acc, fd_real,
                 elapsed_s) -> dict:
    baim = [s for s in cfg.strategies]
    fed = results["fedavg"]
    verdict_ft = None
    if "fine-tune" in results:
        others = {k: v.final_fd for k, v in results.items() if k != "fine-tune" and not k.startswith("central-")}
        best_other = min(others, key=others.get)
        verdict_ft = {
            "fine_tune_final_fd": results["fine-tune"].final_fd,
            "best_other": best_other, "best_other_final_fd": others[best_other],
            "fine_tune_lowest": results["fine-tune"].final_fd < others[best_other],
        }
    ratios = {s: fed.upload_bytes / results[s].upload_bytes for s in baim}
    reach = fed.extra.get("reaches_strategy_fd", {})
    fed_at = {s: {**reach[s], "ratio_to_baim": None if reach[s]["upload_bytes"] is None
                  else reach[s]["upload_bytes"] / results[s].upload_bytes} for s in baim if s in reach}
    exact_all = all(c["reconstruct_equal"] and c["generate_equal"] for s in baim for c in deploy_checks[s])
    return {
        "config": cfg.to_dict(),
        "elapsed_s": elapsed_s,
        "data": {"n_test": len(data.x_test), "n_cloud": len(data.x_cloud),
                 "n_per_node": [len(x) for x in data.x_nodes], "node_classes": [list(c) for c in data.node_classes],
                 "node_task": list(data.node_task)},
        "learners": [{"node": n, "widths": list(s.widths), "params": n_params(VaeLearner(s)),
                      "edge_alone_fd": edge_fd[n]} for n, s in enumerate(specs)],
        "frechet": {"what": "Frechet distance on the 32-d penultimate features of an MLP digits classifier "
                            "trained in this run; NOT Inception FID", "classifier_test_acc": clf_acc,
                    "real_train_vs_test_fd": fd_real, "n_samples": cfg.n_fd_samples},
        "strategies": {k: {"fd_per_epoch": v.fd_per_epoch, "final_fd": v.final_fd, "upload_bytes": v.upload_bytes,
                           "download_bytes": v.download_bytes, "cloud_flops_per_epoch": v.cloud_flops_per_epoch,
                           "edge_flops_per_epoch_mean": v.edge_flops_per_epoch_mean, "edge_epochs": v.edge_epochs,
                           "cloud_epochs_or_rounds": v.cloud_epochs, **v.extra} for k, v in results.items()},
        "deployment": {"checks": deploy_checks, "sizes": sizes, "all_exact": exact_all},
        "placement": placement,
        "must_show": {"fine_tune_vs_others": verdict_ft, "fedavg_upload_ratio": ratios,
                      "fedavg_upload_at_strategy_fd": fed_at,
                      "fedavg_upload_ge_10x": all(r >= 10 for r in ratios.values()),
                      "per_task_exact": exact_all},
    }


def _fmt_bytes(b: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if b < 1000:
            return f"{b:.1f} {unit}"
        b /= 1000
    return f"{b:.1f} TB"


def accounting_rows(report: dict) -> list[list[str]]:
    rows = []
    for k, v in report["strategies"].items():
        rows.append([k, _fmt_bytes(v["upload_bytes"]), _fmt_bytes(v["download_bytes"]),
                     f"{v['cloud_flops_per_epoch'] / 1e6:.1f}", f"{v['edge_flops_per_epoch_mean'] / 1e6:.2f}",
                     str(v["edge_epochs"]), str(v["cloud_epochs_or_rounds"]), f"{v['final_fd']:.2f}"])
    return rows


ACCOUNTING_HEADER = ["strategy", "upload", "download", "cloud MFLOP/epoch", "edge MFLOP/epoch/node",
                     "edge epochs", "cloud epochs / rounds", "final FD"]


def write_outputs(out_dir: Path, cfg: BaimConfig, report: dict, results: dict, samples: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = ["[baim]"]
    for k, v in cfg.to_dict().items():
        lines.append(f"{k} = {json.dumps(v)}")
    atomic_write_text(out_dir / "config.toml", "\n".join(lines) + "\n")

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.0))
    for k, v in results.items():
        steps = v.extra.get("steps_per_point") or list(range(len(v.fd_per_epoch)))
        label = f"{k} ({len(v.fd_per_epoch) - 1} rounds)" if k == "fedavg" else k
        ax.plot(steps, v.fd_per_epoch, marker="." if len(steps) < 60 else None, label=label,
                ls="--" if k.startswith("central-") else "-")
        if v.extra.get("test_nelbo_per_epoch"):
            ax2.plot(range(len(v.extra["test_nelbo_per_epoch"])), v.extra["test_nelbo_per_epoch"], marker=".", label=k)
    ax2.set_xlabel("cloud epoch")
    ax2.set_ylabel("held-out negative ELBO (nats / image)")
    ax2.set_title("Held-out ELBO of the big model")
    ax2.legend()
    ax.axhline(report["frechet"]["real_train_vs_test_fd"], color="k", ls=":", label="real train vs test")
    ax.set_xlabel("per-sample gradient evaluations (BAIM: edge + cloud epochs; FedAvg: rounds)")
    ax.set_xscale("symlog", linthresh=1e3)
    ax.set_ylabel("Frechet distance (digits-classifier features)")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("Convergence per strategy")
    fig.tight_layout()
    fig.savefig(out_dir / "baim_convergence.png", dpi=110)
    plt.close(fig)

    rows = accounting_rows(report)
    fig, ax = plt.subplots(figsize=(10, 0.5 + 0.35 * len(rows)))
    ax.axis("off")
    table = ax.table(cellText=rows, colLabels=ACCOUNTING_HEADER, loc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1, 1.3)
    fig.tight_layout()
    fig.savefig(out_dir / "baim_accounting.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(samples), figsize=(3.2 * len(samples), 3.5))
    for ax, (k, imgs) in zip(np.atleast_1d(axes), samples.items()):
        grid = imgs[:100].reshape(10, 10, 8, 8).permute(0, 2, 1, 3).reshape(80, 80).numpy()
        ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(k, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out_dir / "baim_samples.png", dpi=110)
    plt.close(fig)

    atomic_write_text(out_dir / "report.md", render_markdown(report))
    atomic_write_json(out_dir / "report.json", report)  # last: its presence marks a finished run


def render_markdown(report: dict) -> str:
    ms = report["must_show"]
    ft = ms["fine_tune_vs_others"]
    L = ["# BAIM run", "",
         f"Wall time {report['elapsed_s']:.1f} s. Nodes {report['config']['n_nodes']}, tasks "
         f"{report['config']['n_tasks']}, cloud proxy set {report['data']['n_cloud']} images, test "
         f"{report['data']['n_test']} images.", "",
         "Quality: " + report["frechet"]["what"] + f" (classifier test accuracy "
         f"{report['frechet']['classifier_test_acc']:.3f}; real train-vs-test floor "
         f"{report['frechet']['real_train_vs_test_fd']:.2f}; {report['frechet']['n_samples']} samples).", "",
         "## Accounting (measured bytes; FLOPs counted by torch FlopCounterMode over the first epoch)", "",
         "| " + " | ".join(ACCOUNTING_HEADER) + " |", "|" + "---|" * len(ACCOUNTING_HEADER)]
    L += ["| " + " | ".join(r) + " |" for r in accounting_rows(report)]
    L += ["", "## Findings", ""]
    if ft is not None:
        if ft["fine_tune_lowest"]:
            L.append(f"- Fine-tune reaches the lowest final Frechet distance ({ft['fine_tune_final_fd']:.2f}; "
                     f"next best {ft['best_other']} {ft['best_other_final_fd']:.2f}).")
        else:
            L.append(f"- **Fine-tune does NOT reach the lowest final Frechet distance**: fine-tune "
                     f"{ft['fine_tune_final_fd']:.2f}, {ft['best_other']} {ft['best_other_final_fd']:.2f}. "
                     "See docs/baim.md for the discussion of why.")
            nel = {k: v["test_nelbo_per_epoch"][-1] for k, v in report["strategies"].items()
                   if v.get("test_nelbo_per_epoch")}
            if nel:
                rate = {k: (v["test_rate_per_epoch"][0], v["test_rate_per_epoch"][-1])
                        for k, v in report["strategies"].items() if v.get("test_rate_per_epoch")}
                L.append("  Held-out negative ELBO after cloud training (nats/image, lower = better likelihood): "
                         + ", ".join(f"{k} {v:.2f}" for k, v in nel.items())
                         + ". Rate KL(q(z|x) || N(0, I)) before -> after: "
                         + ", ".join(f"{k} {a:.2f} -> {b:.2f}" for k, (a, b) in rate.items())
                         + ". A better likelihood with a worse Frechet distance means the cloud training "
                         "changed what the components generate; `python benchmarks/baim_diagnose.py RUN_DIR` "
                         "prints the classes each component generates.")
    fed = report["strategies"]["fedavg"]
    L.append(f"- FedAvg ran {fed['cloud_epochs_or_rounds']} rounds (at least {fed.get('min_rounds')}: BAIM's "
             f"per-sample gradient budget {fed.get('budget_samples')}; then until its validation FD stopped "
             f"improving for {report['config']['fedavg_patience']} rounds; stopped by {fed.get('stopped_by')}, "
             f"best validation round {fed.get('best_round')}), final FD {fed['final_fd']:.2f}.")
    for s, r in ms["fedavg_upload_ratio"].items():
        L.append(f"- FedAvg uploads {r:.1f}x the bytes of BAIM {s} over its whole run "
                 f"({'>= 10x' if r >= 10 else 'less than 10x'}).")
    for s, a in (ms.get("fedavg_upload_at_strategy_fd") or {}).items():
        if a["round"] is None:
            L.append(f"- FedAvg never reaches {s}'s final FD ({report['strategies'][s]['final_fd']:.2f}).")
        else:
            L.append(f"- FedAvg reaches {s}'s final FD ({report['strategies'][s]['final_fd']:.2f}) at round "
                     f"{a['round']}, having uploaded {_fmt_bytes(a['upload_bytes'])} ({a['ratio_to_baim']:.1f}x {s}'s upload).")
    for k in ("central-small", "central-big"):
        if k in report["strategies"]:
            v = report["strategies"][k]
            L.append(f"- Reference {k} (trained centrally on all training images, {v['cloud_epochs_or_rounds']} epochs, "
                     f"{v['params']} parameters): final FD {v['final_fd']:.2f}.")
    L.append(f"- Per-task models reproduce the big model exactly (torch.equal) on every task: {ms['per_task_exact']}.")
    L += ["", "## Deployment", ""]
    for s, checks in report["deployment"]["checks"].items():
        sz = report["deployment"]["sizes"][s]
        L.append(f"- {s}: big model {sz['big_params']} parameters, per-task models {sz['per_task_params']}; "
                 + "; ".join(f"task {c['task']}: {c['n_rows']} rows, equal={c['reconstruct_equal'] and c['generate_equal']}"
                             for c in checks))
        pr = report["strategies"][s]["pruning"]
        L.append(f"  projections {pr['before']} -> {pr['after']} after pruning at epoch {pr['epoch']}; "
                 f"TSGate test accuracy {report['strategies'][s]['tsgate_test_acc']:.3f}")
    L += ["", "## Placement", ""]
    for s, p in report["placement"].items():
        for t, r in p.items():
            if r.get("placed"):
                plan = r["plan"]
                per_node: dict[str, int] = {}
                for node in plan["assignment"].values():
                    per_node[node] = per_node.get(node, 0) + 1
                L.append(f"- {s}, task {t}: hil.split {plan.get('solver')} (optimal={plan.get('optimal')}), "
                         f"latency {1e3 * plan.get('latency_s', float('nan')):.2f} ms per image, layers per node "
                         f"{per_node} (full plan in report.json)")
            else:
                L.append(f"- {s}, task {t}: not placed: {r['note']}")
    L += ["", "## Edge learners", "", "| node | classes | widths | params | edge-alone FD |", "|---|---|---|---|---|"]
    for ln in report["learners"]:
        L.append(f"| {ln['node']} | {report['data']['node_classes'][ln['node']]} | {ln['widths']} | {ln['params']} "
                 f"| {ln['edge_alone_fd']:.2f} |")
    L += cluster_markdown(report.get("nodes") or {})
    L += ["", "Plots: baim_convergence.png, baim_accounting.png, baim_samples.png.", ""]
    return "\n".join(L)


def cluster_markdown(nodes: dict) -> list[str]:
    """The "On node actors" section of report.md (nothing for an in-process run)."""
    if not nodes.get("strategies"):
        return []
    L = ["", f"## On node actors (cluster {nodes['mode']}{', ' + nodes['address'] if nodes.get('address') else ''})", "",
         "Nodes: " + ", ".join(f"{i['name']} (host {i['host']}, pid {i['pid']})" for i in nodes["nodes"]) + ".", "",
         "Bytes and seconds measured at the receiver of each message (the request, Ray's transfer and the reply).", "",
         "| phase | up messages | up bytes | up s | down messages | down bytes | down s |", "|---|---|---|---|---|---|---|"]

    def row(name: str, links: dict) -> str:
        up, down = links["up"], links["down"]
        s = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        return (f"| {name} | {up['messages']} | {up['bytes']} | {s(up['seconds'])} | {down['messages']} | "
                f"{down['bytes']} | {s(down['seconds'])} |")

    L += [row(k, v["links"]) for k, v in nodes["strategies"].items()]
    if nodes.get("fedavg_links"):
        L.append(row("fedavg (all rounds)", nodes["fedavg_links"]))
    L += ["", "Deployed per-task models, evaluated on their edge node (held-out negative ELBO on the test images of "
          "the node's own classes, nats per image):", ""]
    for k, v in nodes["strategies"].items():
        L.append(f"- {k}: " + ", ".join(f"{n} (task {d['task']}) {d['local_test_nelbo']:.2f}" for n, d in v["deployed"].items()))
    return L
