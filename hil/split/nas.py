"""JMSNAS: joint model split and neural architecture search (Tian et al., arXiv 2111.08206).

The search space is :class:`hil.split.zoo.DigitsCNN` on 8x8 sklearn digits: per block a width, a
depth and a kernel. The width of the block at a cut sets the size of the activation that crosses
the link, hence the channel uses of an over-the-air link (hil.split.topology [Note: link cost model]).

[Note: JMSNAS search]
Each candidate gets ``error`` (*validation* error after a short training, cached on disk by a hash
of the architecture and the training config) and ``latency`` (the optimal placement of its traced profile
on the topology, by the placement solver). An evolutionary search (tournament selection, one-gene
mutation, elitism) minimises ``alpha * error + beta * latency / ref_latency`` for each ``beta`` in a
sweep; every candidate evaluated is kept, and the Pareto front is taken over all of them.
"Search first, split after" runs the same search with the same budget and seed but scores latency
split-unaware (the whole model's compute time on the fastest node), then places its candidates.
"Fixed model, best split" places the reference architecture. Both are compared on (error, latency).

[Note: validation and test]
The digits are split once (``NasTraining.seed``) into training, validation (``n_val``) and test
(``n_test``) images. Everything the search decides (fitness, fronts, the chosen model, the
comparisons) uses the validation error; the test images are touched once, at the end, for the
chosen architecture and the fixed reference (:attr:`NASResult.test_error`), so the reported test
error is not biased by the selection over hundreds of candidates.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from hil._io import check_fields, config_error, from_section, load_mapping
from hil.errors import ConfigError
from hil.split.plan import Plan, Problem
from hil.split.solvers import solve
from hil.split.topology import Topology

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Arch:
    """One architecture of the space: per block width, depth (convs) and kernel size."""

    widths: tuple[int, ...] = field(metadata={"ge": 1, "min_items": 1})
    depths: tuple[int, ...] = field(metadata={"ge": 1, "min_items": 1})
    kernels: tuple[int, ...] = field(metadata={"ge": 1, "min_items": 1})

    def __post_init__(self) -> None:
        if not len(self.widths) == len(self.depths) == len(self.kernels):
            raise ValueError(f"widths, depths and kernels need one entry per block; got {len(self.widths)}, "
                             f"{len(self.depths)}, {len(self.kernels)}")

    def key(self) -> str:
        return "w" + "-".join(map(str, self.widths)) + "_d" + "-".join(map(str, self.depths)) + \
            "_k" + "-".join(map(str, self.kernels))

    def to_dict(self) -> dict[str, list[int]]:
        return {"widths": list(self.widths), "depths": list(self.depths), "kernels": list(self.kernels)}


@dataclass(frozen=True)
class SearchSpace:
    """Choices per block; ``pool_after``: blocks followed by a 2x2 max-pool."""

    n_blocks: int = field(default=3, metadata={"ge": 1})
    widths: tuple[int, ...] = field(default=(4, 8, 16, 32), metadata={"ge": 1, "min_items": 1})
    depths: tuple[int, ...] = field(default=(1, 2), metadata={"ge": 1, "min_items": 1})
    kernels: tuple[int, ...] = field(default=(3, 5), metadata={"ge": 1, "min_items": 1})
    pool_after: tuple[int, ...] = field(default=(1,), metadata={"ge": 0})

    def __post_init__(self) -> None:
        if any(b >= self.n_blocks for b in self.pool_after):
            raise ValueError(f"pool_after={list(self.pool_after)}: block indices must be < n_blocks={self.n_blocks}")

    def sample(self, rng: np.random.Generator) -> Arch:
        pick = lambda opts: tuple(int(opts[i]) for i in rng.integers(0, len(opts), self.n_blocks))  # noqa: E731
        return Arch(pick(self.widths), pick(self.depths), pick(self.kernels))

    def mutate(self, arch: Arch, rng: np.random.Generator) -> Arch:
        """Change one gene (block, kind) to a different value."""
        kind = int(rng.integers(0, 3))
        opts = (self.widths, self.depths, self.kernels)[kind]
        b = int(rng.integers(0, self.n_blocks))
        genes = [list(arch.widths), list(arch.depths), list(arch.kernels)]
        choices = [o for o in opts if o != genes[kind][b]] or list(opts)
        genes[kind][b] = int(choices[int(rng.integers(0, len(choices)))])
        return Arch(tuple(genes[0]), tuple(genes[1]), tuple(genes[2]))

    @property
    def size(self) -> int:
        return (len(self.widths) * len(self.depths) * len(self.kernels)) ** self.n_blocks


@dataclass(frozen=True)
class NasTraining:
    """Short training on sklearn digits (1797 8x8 images; ``n_test`` test and ``n_val`` validation
    images held out, fixed by ``seed``; see [Note: validation and test])."""

    epochs: int = field(default=4, metadata={"ge": 1})
    lr: float = field(default=1e-2, metadata={"gt": 0.0})
    batch_size: int = field(default=128, metadata={"ge": 1})
    n_test: int = field(default=500, metadata={"ge": 1, "le": 1000})
    n_val: int = field(default=300, metadata={"ge": 1})
    n_train: int | None = field(default=None, metadata={"ge": 1})
    seed: int = field(default=0, metadata={"ge": 0})

    def __post_init__(self) -> None:
        check_fields(self, "train")
        if self.n_test + self.n_val >= 1797:
            raise ConfigError(f"[train] n_test + n_val = {self.n_test + self.n_val} leaves no training images "
                             "of the 1797 digits: lower them")


@dataclass(frozen=True)
class NASConfig:
    """JMSNAS settings. ``betas``: latency weights swept to trace the front; ``alpha``/``beta``: the
    weights that choose the final model; ``pin_first``: the first layer stays on the source node
    (the raw input never leaves the device)."""

    space: SearchSpace = field(default_factory=SearchSpace)
    train: NasTraining = field(default_factory=NasTraining)
    population: int = field(default=8, metadata={"ge": 2})
    generations: int = field(default=5, metadata={"ge": 0})
    betas: tuple[float, ...] = field(default=(0.02, 0.05, 0.1, 0.2, 0.5), metadata={"ge": 0.0, "min_items": 1})
    alpha: float = field(default=1.0, metadata={"ge": 0.0})
    beta: float = field(default=0.1, metadata={"ge": 0.0})
    seed: int = field(default=0, metadata={"ge": 0})
    reference: Arch = Arch((32, 32, 32), (1, 1, 1), (3, 3, 3))
    pin_first: bool = True
    cache_dir: str = "~/.cache/hil/jmsnas"

    def __post_init__(self) -> None:
        if len(self.reference.widths) != self.space.n_blocks:
            raise ValueError(f"reference has {len(self.reference.widths)} blocks but space.n_blocks is "
                             f"{self.space.n_blocks}; give one width, depth and kernel per block")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NASConfig":
        """From the ``[nas]`` table (``topology`` and ``out_dir`` are read by :func:`load_nas_file`)."""
        return from_section(cls, d, "nas", ignore=("topology", "out_dir"))


@dataclass(frozen=True)
class NASFile:
    """What ``hil nas --config FILE`` reads: the search config, its topology and the report folder."""

    config: NASConfig
    topology: Topology
    topology_path: str
    out_dir: str | None


def load_nas_file(path: str | Path) -> NASFile:
    """Read a JMSNAS file (TOML/JSON, keys under ``[nas]`` or at the top level).

    ``topology``: a placement topology file, relative to this file (default: the packaged
    ``nas_topology.json``); ``out_dir``: default report folder. ConfigError on anything wrong.
    """
    path = Path(path)
    raw = load_mapping(path, "JMSNAS config")
    if "nas" in raw:
        extra = sorted(set(raw) - {"nas"})
        if extra:
            raise config_error(f"{path}: [{extra[0]}]", "unknown section", valid="nas")
        raw = raw["nas"]
    cfg = NASConfig.from_dict(raw)
    for key in ("topology", "out_dir"):
        if key in raw and not isinstance(raw[key], str):
            raise config_error(f"[nas].{key}", "must be a string (a path)", raw[key])
    topo_path = raw.get("topology")
    if topo_path is None:
        from importlib.resources import files

        topo_path = str(files("hil.split.examples") / "nas_topology.json")
    elif not Path(topo_path).expanduser().is_absolute():
        topo_path = str((path.parent / Path(topo_path).expanduser()).resolve())
    return NASFile(cfg, Topology.load(topo_path), topo_path, raw.get("out_dir"))


@dataclass(frozen=True)
class Candidate:
    """An evaluated architecture: validation error, placed latency, its plan, and split-unaware latency."""

    arch: Arch
    error: float
    latency_s: float
    flops: float
    unsplit_latency_s: float
    plan: Plan

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch.to_dict(), "key": self.arch.key(), "error": self.error,
                "latency_s": self.latency_s, "flops": self.flops, "unsplit_latency_s": self.unsplit_latency_s,
                "cuts": self.plan.cuts, "assignment": dict(self.plan.assignment)}


# ---------------------------------------------------------------------- evaluation
@functools.lru_cache(maxsize=1)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's bundled digits via the package's one reader (hil.data.digits_arrays), cached:
    pixels float32 ``[1797, 64]`` in [0, 1], labels int64."""
    from hil.data import digits_arrays

    return digits_arrays()


SPLITS = ("val", "test")


def _digits(cfg: NasTraining, split: str = "val") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training images and the ``split`` ("val" or "test") images: disjoint, fixed by ``cfg.seed``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    pixels, y = _digits_raw()
    x = pixels.reshape(-1, 8, 8)[:, None]  # [n, 1, 8, 8] float32 in [0, 1]
    perm = np.random.default_rng(cfg.seed).permutation(len(y))
    te, va, tr = perm[: cfg.n_test], perm[cfg.n_test : cfg.n_test + cfg.n_val], perm[cfg.n_test + cfg.n_val :]
    if cfg.n_train is not None:
        tr = tr[: cfg.n_train]
    held = te if split == "test" else va
    return x[tr], y[tr], x[held], y[held]


def train_error(arch: Arch, space: SearchSpace, cfg: NasTraining, split: str = "val") -> float:
    """Error on the ``split`` images ("val": what the search selects on; "test": reported once at the
    end) of ``arch`` after ``cfg.epochs`` epochs of Adam on digits (deterministic per arch: the same
    trained model whichever split it is scored on)."""
    import torch

    from hil.split.zoo import DigitsCNN

    xtr, ytr, xte, yte = _digits(cfg, split)
    seed = int(hashlib.sha256(arch.key().encode()).hexdigest()[:8], 16) ^ cfg.seed
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = DigitsCNN(arch.widths, arch.depths, arch.kernels, space.pool_after)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    for _ in range(cfg.epochs):
        model.train()
        for idx in torch.randperm(len(yt), generator=g).split(cfg.batch_size):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(xte)).argmax(1).numpy()
    return float(np.mean(pred != yte))


class Evaluator:
    """Scores architectures: cached training error and placed latency on ``topology``."""

    def __init__(self, config: NASConfig, topology: Topology,
                 trainer: Callable[[Arch, SearchSpace, NasTraining], float] = train_error) -> None:
        self.config = config
        self.topology = topology
        self.trainer = trainer
        self.cache_dir = Path(config.cache_dir).expanduser()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._mem: dict[str, Candidate] = {}
        self.trained = 0
        self.cache_hits = 0

    def _train_key(self, arch: Arch, split: str = "val") -> str:
        blob = json.dumps({"arch": arch.to_dict(), "pool_after": list(self.config.space.pool_after),
                           "train": asdict(self.config.train), "split": split}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def error(self, arch: Arch, split: str = "val") -> float:
        """Validation error (``split="val"``, what the search uses) or test error (``"test"``, only
        for the final report; see [Note: validation and test]). The trainer is called as
        ``trainer(arch, space, train_config, split)``."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        path = self.cache_dir / f"{self._train_key(arch, split)}.json"
        if path.exists():
            try:
                err = float(json.loads(path.read_text())["error"])
            except (ValueError, KeyError, TypeError):
                log.warning("cache entry %s is corrupt; retraining", path)
            else:
                self.cache_hits += 1  # counted only once the entry parsed: a hit or a training, never both
                return err
        err = self.trainer(arch, self.config.space, self.config.train, split)
        if split == "val":
            self.trained += 1
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"arch": arch.to_dict(), "error": err}))
        tmp.replace(path)
        return err

    def evaluate(self, arch: Arch) -> Candidate:
        key = arch.key()
        if key in self._mem:
            return self._mem[key]
        problem = candidate_problem(self.config, self.topology, arch)
        prof = problem.profile
        plan = solve(problem)
        fastest = self.topology.nodes[self.topology.fastest_index].flops_per_s
        cand = Candidate(arch, self.error(arch), plan.latency_s, prof.total_flops, prof.total_flops / fastest, plan)
        self._mem[key] = cand
        return cand


def candidate_problem(config: NASConfig, topology: Topology, arch: Arch) -> Problem:
    """The placement problem of ``arch``: its traced profile on ``topology`` (first layer pinned if asked)."""
    from hil.split.trace import profile_model
    from hil.split.zoo import DigitsCNN

    model = DigitsCNN(arch.widths, arch.depths, arch.kernels, config.space.pool_after).eval()
    prof, _ = profile_model(model, (1, 1, 8, 8), name=arch.key())
    src = topology.names[topology.source_index]
    pins = {prof.layers[0].name: src} if config.pin_first else {}
    return Problem(prof, topology, "latency", pins)


# ---------------------------------------------------------------------- search
def evolve(space: SearchSpace, score: Callable[[Arch], float], rng: np.random.Generator, population: int,
           generations: int, on_generation: Callable[[int, float], None] | None = None) -> list[Arch]:
    """Regularised-evolution-style search minimising ``score``; returns every architecture scored.
    ``on_generation(g, best score)`` is called after the initial population (g = 0) and each generation."""
    pop = [space.sample(rng) for _ in range(population)]
    seen: list[Arch] = list(pop)
    fit = [score(a) for a in pop]
    if on_generation:
        on_generation(0, min(fit))
    for gen in range(generations):
        children = []
        for _ in range(population):
            i, j = rng.integers(0, len(pop), 2)
            parent = pop[i] if fit[i] <= fit[j] else pop[j]
            children.append(space.mutate(parent, rng))
        cfit = [score(a) for a in children]
        seen += children
        merged = sorted(zip(fit + cfit, range(len(pop) + len(children))), key=lambda t: t[0])
        both = pop + children
        keep = [k for _, k in merged[:population]]
        pop, fit = [both[k] for k in keep], [merged[n][0] for n in range(population)]
        if on_generation:
            on_generation(gen + 1, fit[0])
    return seen


def pareto_front(cands: Sequence[Candidate]) -> list[Candidate]:
    """Candidates not dominated in (latency_s, error), sorted by latency."""
    out: list[Candidate] = []
    best_err = math.inf
    for c in sorted(cands, key=lambda c: (c.latency_s, c.error)):
        if c.error < best_err:
            out.append(c)
            best_err = c.error
    return out


def best_error_under(front: Sequence[Candidate], budget_s: float) -> float:
    """Least error among candidates with latency <= ``budget_s`` (inf if none)."""
    errs = [c.error for c in front if c.latency_s <= budget_s]
    return min(errs) if errs else math.inf


@dataclass(frozen=True)
class NASResult:
    """Outcome of :func:`run_jmsnas` (all lists of :class:`Candidate`; their ``error`` is the validation
    error). ``test_error``: the chosen architecture's and the fixed reference's test error, measured
    once after the search (``{"chosen": e, "fixed": e}``)."""

    jmsnas: tuple[Candidate, ...]
    search_first: tuple[Candidate, ...]
    front: tuple[Candidate, ...]
    search_first_front: tuple[Candidate, ...]
    chosen: Candidate
    fixed: Candidate
    comparison: dict[str, Any]
    trained: int
    wall_s: float
    test_error: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "front": [c.to_dict() for c in self.front],
            "search_first_front": [c.to_dict() for c in self.search_first_front],
            "chosen": {**self.chosen.to_dict(), "plan": self.chosen.plan.to_dict()},
            "fixed_model_best_split": {**self.fixed.to_dict(), "plan": self.fixed.plan.to_dict()},
            "comparison": self.comparison,
            "n_evaluated": {"jmsnas": len(self.jmsnas), "search_first": len(self.search_first)},
            "trained": self.trained,
            "wall_s": self.wall_s,
            "error_split": "validation",
            "test_error": dict(self.test_error),
        }


def compare_fronts(a: Sequence[Candidate], b: Sequence[Candidate], lo_q: float = 0.25, hi_q: float = 0.75,
                   n: int = 11) -> dict[str, Any]:
    """Best error of front ``a`` vs ``b`` at latency budgets over the middle of the joint latency range.

    Budgets are ``n`` points evenly spaced between the ``lo_q`` and ``hi_q`` fractions of the range
    [min latency, max latency] of both fronts. ``dominates`` = a's error <= b's at every budget and
    < at one at least.
    """
    lat = [c.latency_s for c in list(a) + list(b)]
    lo, hi = min(lat), max(lat)
    budgets = [lo + (hi - lo) * (lo_q + (hi_q - lo_q) * k / (n - 1)) for k in range(n)]
    ea = [best_error_under(a, t) for t in budgets]
    eb = [best_error_under(b, t) for t in budgets]
    return {
        "budgets_s": budgets,
        "error_a": ea,
        "error_b": eb,
        "dominates": all(x <= y for x, y in zip(ea, eb)) and any(x < y for x, y in zip(ea, eb)),
        "range_s": [lo, hi],
    }


def run_jmsnas(config: NASConfig, topology: Topology, evaluator: Evaluator | None = None,
               progress: Callable[[str], None] | None = None) -> NASResult:
    """Run JMSNAS and the two comparisons (see [Note: JMSNAS search])."""
    t0 = time.perf_counter()
    ev = evaluator or Evaluator(config, topology)
    ref = ev.evaluate(config.reference)
    ref_lat, ref_unsplit = ref.latency_s, ref.unsplit_latency_s

    def run(split_aware: bool) -> list[Candidate]:
        seen: dict[str, Candidate] = {}
        for k, beta in enumerate(config.betas):
            rng = np.random.default_rng([config.seed, k])

            def score(arch: Arch) -> float:
                c = ev.evaluate(arch)
                seen[arch.key()] = c
                lat = c.latency_s / ref_lat if split_aware else c.unsplit_latency_s / ref_unsplit
                return config.alpha * c.error + beta * lat

            tag = "jmsnas" if split_aware else "search-first"

            def gen_done(g: int, best: float, tag: str = tag, beta: float = beta) -> None:
                if progress:
                    progress(f"{tag} beta={beta}: generation {g}/{config.generations}, best score {best:.4f}, "
                             f"{len(seen)} architectures, {ev.trained} trained")

            evolve(config.space, score, rng, config.population, config.generations, gen_done)
            if progress:
                progress(f"{'jmsnas' if split_aware else 'search-first'} beta={beta}: {len(seen)} architectures")
        return list(seen.values())

    joint = run(True)
    first = run(False)
    front, first_front = pareto_front(joint), pareto_front(first)
    chosen = min(joint, key=lambda c: config.alpha * c.error + config.beta * c.latency_s / ref_lat)
    comp = compare_fronts(front, first_front)
    comp["fixed_model"] = {"error": ref.error, "latency_s": ref.latency_s,
                           "jmsnas_best_error_at_its_latency": best_error_under(front, ref.latency_s)}
    # the test images, once, after every decision (see [Note: validation and test])
    test = {"chosen": ev.error(chosen.arch, "test"), "fixed": ev.error(ref.arch, "test")}
    return NASResult(tuple(joint), tuple(first), tuple(front), tuple(first_front), chosen, ref, comp,
                     ev.trained, time.perf_counter() - t0, test)
