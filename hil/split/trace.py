"""Trace a torch ``nn.Module`` with torch.fx into a placement :class:`~hil.split.profile.Profile`.

Every fx node other than placeholders, constants (``get_attr``) and the output becomes a layer;
its ``deps`` are the fx nodes it reads, the model input (the placeholder) as ``"input"`` and
constants left out (see hil.split.profile [Note: the model input in deps]). Shapes come from ``ShapeProp`` on an example input.

[Note: FLOP counts] (a multiply-add counts 2 FLOPs, as in most split-DNN papers)
- Conv: 2 * out_numel * (cin / groups) * kh * kw (+ out_numel with a bias).
- Linear: 2 * out_numel * in_features (+ out_numel with a bias).
- BatchNorm / LayerNorm (inference): 2 * numel. Add/mul/sub/div, ReLU-like: numel.
- Max/avg pooling: out_numel * window size (adaptive: input numel). Reshapes, dropout, flatten: 0.
Others: numel of the output (a modest, documented default).
"""

from __future__ import annotations

import logging
import math
import operator
import time
from typing import Any, Sequence

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from hil.split.profile import INPUT, Layer, Profile

log = logging.getLogger(__name__)

_ELEMENTWISE_FN = {operator.add, operator.mul, operator.sub, operator.truediv, torch.add, torch.mul,
                   torch.relu, torch.sigmoid, torch.tanh, nn.functional.relu, torch.cat}
_FREE_FN = {torch.flatten, torch.reshape, operator.getitem, torch.squeeze, torch.unsqueeze}
_FREE_METHODS = {"view", "reshape", "flatten", "size", "squeeze", "unsqueeze", "permute", "transpose",
                 "contiguous", "dim"}


def _numel(meta: Any) -> int:
    if meta is None:
        return 0
    if hasattr(meta, "shape"):
        return int(math.prod(meta.shape))
    if isinstance(meta, (tuple, list)):
        return sum(_numel(m) for m in meta)
    return 0


def _nbytes(meta: Any) -> int:
    if meta is None:
        return 0
    if hasattr(meta, "shape") and hasattr(meta, "dtype"):
        return int(math.prod(meta.shape)) * torch.empty((), dtype=meta.dtype).element_size()
    if isinstance(meta, (tuple, list)):
        return sum(_nbytes(m) for m in meta)
    return 0


def _node_flops(gm: fx.GraphModule, node: fx.Node) -> float:
    out = _numel(node.meta.get("tensor_meta"))
    if node.op == "call_module":
        mod = gm.get_submodule(str(node.target))
        if isinstance(mod, nn.modules.conv._ConvNd):
            k = math.prod(mod.kernel_size) * mod.in_channels // mod.groups
            return 2.0 * out * k + (out if mod.bias is not None else 0)
        if isinstance(mod, nn.Linear):
            return 2.0 * out * mod.in_features + (out if mod.bias is not None else 0)
        if isinstance(mod, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)):
            return 2.0 * out
        if isinstance(mod, (nn.MaxPool2d, nn.AvgPool2d, nn.MaxPool1d, nn.AvgPool1d)):
            ks = mod.kernel_size if isinstance(mod.kernel_size, tuple) else (mod.kernel_size,) * 2
            return float(out * math.prod(ks))
        if isinstance(mod, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool1d)):
            src = node.args[0]
            return float(_numel(src.meta.get("tensor_meta")) if isinstance(src, fx.Node) else out)
        if isinstance(mod, (nn.Dropout, nn.Flatten, nn.Identity)):
            return 0.0
        return float(out)
    if node.op == "call_function":
        if node.target in _FREE_FN:
            return 0.0
        return float(out)
    if node.op == "call_method":
        return 0.0 if node.target in _FREE_METHODS else float(out)
    return 0.0


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
    with torch.no_grad():
        ShapeProp(gm).propagate(x)
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
            flops=_node_flops(gm, node),
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
