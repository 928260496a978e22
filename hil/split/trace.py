"""Trace a torch ``nn.Module`` with torch.fx into a placement :class:`~hil.split.profile.Profile`.

Every fx node other than placeholders, constants (``get_attr``) and the output becomes a layer;
its ``deps`` are the fx nodes it reads, the model input (the placeholder) as ``"input"`` and
constants left out (see hil.split.profile [Note: the model input in deps]). Shapes come from ``ShapeProp`` on an example input.

FLOPs per layer are torch's count of that node's operations (``hil.flops``, [Note: FLOP counts] there:
matrix products and convolutions, a multiply-add counting 2; element-wise ops, normalisation and
pooling 0), taken while ShapeProp runs the example input through the graph.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Sequence

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from hil.flops import count_flops
from hil.split.profile import INPUT, Layer, Profile

log = logging.getLogger(__name__)


def _nbytes(meta: Any) -> int:
    if meta is None:
        return 0
    if hasattr(meta, "shape") and hasattr(meta, "dtype"):
        return int(math.prod(meta.shape)) * torch.empty((), dtype=meta.dtype).element_size()
    if isinstance(meta, (tuple, list)):
        return sum(_nbytes(m) for m in meta)
    return 0


class _ShapeAndFlops(ShapeProp):
    """ShapeProp that also counts each node's FLOPs (``hil.flops.count_flops``) into ``flops``."""

    def __init__(self, gm: fx.GraphModule):
        super().__init__(gm)
        self.flops: dict[str, float] = {}

    def run_node(self, n: fx.Node) -> Any:
        with count_flops() as c:
            out = super().run_node(n)
        self.flops[n.name] = float(c.total)
        return out


def _params_bytes(gm: fx.GraphModule, node: fx.Node) -> int:
    if node.op != "call_module":
        return 0
    mod = gm.get_submodule(str(node.target))
    return sum(p.numel() * p.element_size() for p in mod.parameters()) + sum(
        b.numel() * b.element_size() for b in mod.buffers()
    )


def _flat_nodes(args: Any) -> list[fx.Node]:
    out: list[fx.Node] = []
    fx.node.map_arg(args, lambda n: out.append(n) or n)
    return out


def trace(model: nn.Module) -> fx.GraphModule:
    """``torch.fx.symbolic_trace`` with an error that says what to do when tracing fails."""
    try:
        return fx.symbolic_trace(model)
    except Exception as e:  # fx raises many types (TraceError, TypeError, ...) on dynamic control flow
        raise ValueError(
            f"torch.fx cannot trace {type(model).__name__}: {e}. Remove data-dependent control flow "
            "or write the profile JSON by hand"
        ) from e


def profile_model(model: nn.Module, example: torch.Tensor | Sequence[int], measure: bool = False,
                  repeats: int = 3, name: str = "") -> tuple[Profile, fx.GraphModule]:
    """Trace ``model`` and profile each layer.

    Args:
        model: the module (put in eval mode by the caller if batch norm statistics matter).
        example: an example input tensor, or its shape (a zero tensor is used), e.g. (1, 3, 224, 224).
        measure: also time each layer on this machine (median of ``repeats`` runs) into ``latency_s``.
        repeats: timing repeats.
        name: model name stored in the profile.

    Returns:
        ``(profile, graph_module)``; the profile's layer names are the fx node names, so
        :func:`hil.split.execute.build_stages` can cut the same graph module by a plan.
    """
    x = example if isinstance(example, torch.Tensor) else torch.zeros(tuple(int(s) for s in example))
    gm = trace(model)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise ValueError(f"profile_model supports models with one input; {type(model).__name__} has {len(placeholders)}")
    shapes = _ShapeAndFlops(gm)
    with torch.no_grad():
        shapes.propagate(x)
    timings: dict[str, float] = {}
    if measure:
        timings = _measure(gm, x, repeats)
    layers = []
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output", "get_attr"):
            continue
        deps = tuple(dict.fromkeys(INPUT if d.op == "placeholder" else d.name
                                   for d in _flat_nodes((node.args, node.kwargs)) if d.op != "get_attr"))
        layers.append(Layer(
            name=node.name,
            flops=shapes.flops.get(node.name, 0.0),
            out_bytes=float(_nbytes(node.meta.get("tensor_meta"))),
            params_bytes=float(_params_bytes(gm, node)),
            deps=deps,
            latency_s=timings.get(node.name),
        ))
    input_bytes = float(x.numel() * x.element_size())
    return Profile(tuple(layers), input_bytes, name or type(model).__name__), gm


def _measure(gm: fx.GraphModule, x: torch.Tensor, repeats: int) -> dict[str, float]:
    runs: dict[str, list[float]] = {}

    class Timer(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            t0 = time.perf_counter()
            out = super().run_node(n)
            runs.setdefault(n.name, []).append(time.perf_counter() - t0)
            return out

    with torch.no_grad():
        for _ in range(max(1, repeats)):
            Timer(gm).run(x)
    return {k: sorted(v)[len(v) // 2] for k, v in runs.items()}
