"""Task-oriented deployment: split the big model by its task gate into compact per-task models.

A per-task model is squad t alone (its learners, its LSGate, its kept projections and its component
prior), without the TSGate and the other squads. It is shipped to the nodes of task t as bytes (spec in
the JSON header, weights as raw float32) and rebuilt there; see [Note: exact dispatch] in
hil.baim.assembly for why its outputs equal the big model's bit for bit on the inputs routed to t.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from hil._io import atomic_write_json
from hil.baim.assembly import BigModel, VaeSquad, parse_projection_key
from hil.baim.wire import TrafficMeter, pack_state, unpack_state
from hil.flops import module_flops

logger = logging.getLogger(__name__)


def pack_task_model(big: BigModel, task: int) -> bytes:
    """The bytes of per-task model ``task`` (header: the squad's spec JSON; body: its weights)."""
    if not 0 <= task < big.n_tasks:
        raise ValueError(f"task={task} out of range; the model has {big.n_tasks} tasks")
    squad = big.squads[task]
    return pack_state(squad.state_dict(), meta=squad.spec_json())


def unpack_task_model(blob: bytes) -> VaeSquad:
    """Rebuild a per-task model from the bytes of :func:`pack_task_model` (what a node does)."""
    state, meta = unpack_state(blob)
    if meta is None:
        raise ValueError("message has no architecture header; build it with pack_task_model")
    model = VaeSquad.from_spec_json(meta)
    model.load_state_dict(state)
    model.eval()
    return model


def split_by_task(big: BigModel) -> list[VaeSquad]:
    """All per-task models, each rebuilt from its bytes (no shared tensors with the big model)."""
    return [unpack_task_model(pack_task_model(big, t)) for t in range(big.n_tasks)]


def deploy(big: BigModel, members: list[list[int]], meter: TrafficMeter) -> dict[int, VaeSquad]:
    """Send per-task model t to every node of squad t (metered) and rebuild it there.

    Returns node index -> the per-task model that node rebuilt from the bytes it received.
    """
    nodes: dict[int, VaeSquad] = {}
    for t, nodes_t in enumerate(members):
        blob = pack_task_model(big, t)
        for n in nodes_t:
            nodes[n] = unpack_task_model(meter.send("down", f"node{n}", f"per-task model {t}", blob))
    return nodes


@dataclass(frozen=True)
class ExactnessCheck:
    """Per-task comparison of a deployed model with the big model on the rows routed to its task."""

    task: int
    n_rows: int
    reconstruct_equal: bool
    reconstruct_max_abs_diff: float
    generate_equal: bool
    generate_max_abs_diff: float


def check_exact(big: BigModel, per_task: list[VaeSquad], x: torch.Tensor, gen: torch.Generator) -> list[ExactnessCheck]:
    """Compare outputs with ``torch.equal`` (tolerance 0): reconstructions of the images x [B, 64] that
    the TSGate routes to each task, and generations from the big model's own draw of (z, task, comp)."""
    out = []
    with torch.no_grad():
        rec_big, tasks = big.reconstruct(x)
        z, gtasks, comps = big.draw(len(x), gen)
        gen_big = big.generate(z, gtasks, comps)
        for t, model in enumerate(per_task):
            idx = torch.nonzero(tasks == t).squeeze(1)
            gidx = torch.nonzero(gtasks == t).squeeze(1)
            # a task the gate routes no row to has nothing to compare (and a model cannot run on 0 rows)
            rec = model.reconstruct(x[idx]) if len(idx) else rec_big[idx]
            gimg = model.generate(z[gidx], comps[gidx]) if len(gidx) else gen_big[gidx]
            out.append(ExactnessCheck(
                task=t, n_rows=len(idx),
                reconstruct_equal=bool(torch.equal(rec, rec_big[idx])),
                reconstruct_max_abs_diff=float((rec - rec_big[idx]).abs().max()) if len(idx) else 0.0,
                generate_equal=bool(torch.equal(gimg, gen_big[gidx])),
                generate_max_abs_diff=float((gimg - gen_big[gidx]).abs().max()) if len(gidx) else 0.0,
            ))
    return out


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- placement (hil.split formats)


def _per_sample_flops(lin: torch.nn.Linear) -> int:
    return module_flops(lin, (1, lin.in_features))


def task_model_profile(model: VaeSquad) -> dict:
    """Per-sample generation profile of a per-task model in the placement engine's JSON format
    (``{"layers": [{"name", "flops", "out_bytes", "params_bytes", "deps"}], "input_bytes"}``).

    Follows [Note: stage order]: layer ``l<b>.dec<s>`` is learner b's own stage s; if projections end
    in that stage, layer ``l<b>.mix<s>`` adds them (deps: the own stage and the source stages). Layers
    are listed stage by stage, so every dependency precedes its user. FLOPs per generated image, as
    ``hil.flops`` counts them (2 * in * out per matmul, biases and activations free); bytes are float32.
    """
    proj = model.dec_proj
    into: dict[tuple[int, int], list[tuple[int, int, str]]] = {}
    for k in proj.keys_list():
        a, i, b, j = parse_projection_key(k)
        into.setdefault((b, j), []).append((a, i, k))
    depth = [len(m.dec.stages) for m in model.learners]
    last = [None] * len(model.learners)  # name of the layer holding learner b's current output
    layers = []
    for s in range(max(depth)):
        for b, m in enumerate(model.learners):
            if s < depth[b]:
                lin = m.dec.stages[s]
                layers.append({"name": f"l{b}.dec{s}", "flops": _per_sample_flops(lin),
                               "out_bytes": 4 * lin.out_features,
                               "params_bytes": 4 * (lin.weight.numel() + lin.bias.numel()),
                               "deps": [last[b]] if last[b] else []})
                last[b] = f"l{b}.dec{s}"
        for b, m in enumerate(model.learners):
            if s < depth[b] and (b, s) in into:
                lins = [proj.proj[k] for _, _, k in into[(b, s)]]
                layers.append({"name": f"l{b}.mix{s}", "flops": sum(_per_sample_flops(p) for p in lins),
                               "out_bytes": 4 * m.dec.widths[s],
                               "params_bytes": sum(4 * (p.weight.numel() + 1) for p in lins),
                               "deps": sorted({f"l{b}.dec{s}"} | {f"l{a}.dec{i}" for a, i, _ in into[(b, s)]})})
                last[b] = f"l{b}.mix{s}"
    for b, m in enumerate(model.learners):
        head = m.dec_head
        layers.append({"name": f"l{b}.head", "flops": _per_sample_flops(head),
                       "out_bytes": 4 * head.out_features,
                       "params_bytes": 4 * (head.weight.numel() + head.bias.numel()), "deps": [last[b]]})
    return {"layers": layers, "input_bytes": 4 * model.latent_dim}


def place_task_models(models: dict[int, VaeSquad], members: list[list[int]], out_dir: Path,
                      mem_fraction: float = 0.5, time_limit_s: float = 5.0) -> dict:
    """Place each per-task model's generation graph on its task's nodes with ``hil.split``.

    Topology per task: the nodes of the task (the first is the source, which draws z), compute speeds
    1-4 x 10^8 FLOP/s, each with memory for ``mem_fraction`` of the model (so it must be split), full
    mesh of 1 MB/s digital links with 1 ms latency. Profile and topology JSON are written to ``out_dir``.
    ``time_limit_s`` bounds hil.split's MILP (used for more than two nodes); the plan says whether it
    is proven optimal. Returns, per task, the plan (hil.split's dict) or a note why placement was not done.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict = {}
    for t, nodes_t in enumerate(members):
        profile = task_model_profile(models[nodes_t[0]])
        total_mem = sum(l["params_bytes"] + l["out_bytes"] for l in profile["layers"])
        biggest = max(l["params_bytes"] + l["out_bytes"] for l in profile["layers"])
        mem = float(max(mem_fraction * total_mem, 2 * biggest)) if len(nodes_t) > 1 else float(2 * total_mem)
        topology = {
            "nodes": [{"name": f"node{n}", "flops_per_s": 1e8 * (1 + i % 4), "mem_bytes": mem, "source": i == 0}
                      for i, n in enumerate(nodes_t)],
            "links": [{"a": f"node{a}", "b": f"node{b}", "bytes_per_s": 1.0e6, "latency_s": 1e-3, "ota": False}
                      for i, a in enumerate(nodes_t) for b in nodes_t[i + 1:]],
        }
        atomic_write_json(out_dir / f"task{t}_profile.json", profile)
        atomic_write_json(out_dir / f"task{t}_topology.json", topology)
        result[str(t)] = solve_placement(profile, topology, time_limit_s)
    return result


def solve_placement(profile: dict, topology: dict, time_limit_s: float = 5.0) -> dict:
    """Solve with hil.split (its automatic solver choice).

    Returns ``{"placed": True, "plan": ...}``, or ``{"placed": False, "note": ...}`` only when hil.split
    cannot be imported. A failure of the engine itself (bad profile, infeasible problem, solver error)
    propagates: it is a bug or a real placement failure, not something to hide in the report.
    """
    try:
        from hil.split.plan import Problem
        from hil.split.profile import Profile
        from hil.split.solvers import choose_solver, solve
        from hil.split.topology import Topology
    except ImportError as e:
        return {"placed": False, "note": f"hil.split placement engine not available ({e}); "
                                         "profile and topology JSON are written for it"}
    problem = Problem(Profile.from_dict(profile), Topology.from_dict(topology))
    solver = choose_solver(problem)
    plan = solve(problem, solver, **({"time_limit_s": time_limit_s} if solver == "milp" else {}))
    return {"placed": True, "plan": plan.to_dict()}
