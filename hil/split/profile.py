"""A model's layer graph with its per-layer cost profile (no torch needed).

The JSON form (docs/architecture.md, "Placement input files")::

    {"layers": [{"name", "flops", "out_bytes", "params_bytes", "deps": [names]}], "input_bytes"}

Optional per-layer ``latency_s`` (measured on the profiling host) is kept when present.

[Note: the model input in deps]
The model input (held by the topology's source node) is named in ``deps`` by the reserved name
``"input"`` (:data:`INPUT`; no layer may be called so): ``{"name": "add", "deps": ["relu", "input"]}``
reads the layer ``relu`` and the model input (a residual connection from the input), and a layer with
``deps: []`` then reads neither (e.g. it reads only constants). Files written before this name existed
never list ``"input"``; for them (no layer of the profile lists it) the former rule holds: the layers
with an empty ``deps`` list read the model input. :meth:`Profile.input_consumers` applies this rule
and every solver and the execution use it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from hil.errors import ConfigError, PlacementError

log = logging.getLogger(__name__)

INPUT = "input"  # reserved dep name: the model input (see [Note: the model input in deps])


@dataclass(frozen=True)
class Layer:
    """One vertex of the model graph.

    Attributes:
        name: unique layer name (the torch.fx node name when traced).
        flops: floating point operations of one forward pass (a multiply-add counts 2).
        out_bytes: bytes of the output activation (what crosses a link if a consumer runs elsewhere).
        params_bytes: bytes of the parameters and buffers the layer holds.
        deps: names of the layers whose outputs this layer reads, ``"input"`` for the model input
            (see [Note: the model input in deps]).
        latency_s: forward latency measured on the profiling host, or None.
    """

    name: str
    flops: float
    out_bytes: float
    params_bytes: float = 0.0
    deps: tuple[str, ...] = ()
    latency_s: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"layer name must be a non-empty string, got {self.name!r}")
        for key in ("flops", "out_bytes", "params_bytes"):
            v = getattr(self, key)
            if not isinstance(v, (int, float)) or v < 0 or v != v:
                raise ValueError(f"layer {self.name!r}: {key} must be a number >= 0, got {v!r}")
        object.__setattr__(self, "deps", tuple(self.deps))

    @property
    def mem_bytes(self) -> float:
        """Memory the layer needs on its node: parameters plus its output activation."""
        return float(self.params_bytes + self.out_bytes)


@dataclass(frozen=True)
class Profile:
    """A DAG of layers in topological order plus the size of the model input.

    Attributes:
        layers: the layers, each after all of its ``deps``.
        input_bytes: bytes of the model input (held by the topology's source node).
        name: optional model name.
    """

    layers: tuple[Layer, ...]
    input_bytes: float
    name: str = ""
    _index: Mapping[str, int] = field(init=False, repr=False, compare=False)
    _explicit_input: bool = field(init=False, repr=False, compare=False, default=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise ConfigError("profile has no layers; give at least one entry in 'layers'")
        if self.input_bytes < 0:
            raise ValueError(f"input_bytes must be >= 0, got {self.input_bytes!r}")
        index: dict[str, int] = {}
        for i, layer in enumerate(self.layers):
            if layer.name == INPUT:
                raise ConfigError(f"layer #{i} is named {INPUT!r}, the reserved dep name of the model input; rename it")
            if layer.name in index:
                raise ConfigError(f"layer name {layer.name!r} appears twice; names must be unique")
            for d in layer.deps:
                if d != INPUT and d not in index:
                    raise ConfigError(
                        f"layer {layer.name!r} depends on {d!r}, which is not an earlier layer; "
                        "list layers in topological order and check the names in 'deps'"
                    )
            index[layer.name] = i
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_explicit_input", any(INPUT in layer.deps for layer in self.layers))

    # ------------------------------------------------------------------ structure
    def __len__(self) -> int:
        return len(self.layers)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.layers)

    def index(self, name: str) -> int:
        """Position of layer ``name``; PlacementError naming the valid layers when there is none."""
        try:
            return self._index[name]
        except KeyError as e:
            names = list(self._index)
            shown = names if len(names) <= 20 else names[:20] + [f"... ({len(names)} in all)"]
            raise PlacementError(f"no layer named {name!r} in the profile {self.name!r}; layers are {shown}") from e

    @property
    def explicit_input(self) -> bool:
        """True when some layer lists ``"input"`` in its deps (else the empty-deps rule applies)."""
        return self._explicit_input

    def reads_input(self, j: int) -> bool:
        """Whether layer ``j`` reads the model input ([Note: the model input in deps])."""
        deps = self.layers[j].deps
        return INPUT in deps if self.explicit_input else not deps

    def layer_deps(self, j: int) -> tuple[str, ...]:
        """The layers (not the model input) that layer ``j`` reads."""
        return tuple(d for d in self.layers[j].deps if d != INPUT)

    def consumers(self) -> list[list[int]]:
        """For each layer index, the indices of the layers that read its output."""
        out: list[list[int]] = [[] for _ in self.layers]
        for j in range(len(self.layers)):
            for d in dict.fromkeys(self.layer_deps(j)):
                out[self._index[d]].append(j)
        return out

    def input_consumers(self) -> list[int]:
        """Indices of the layers that read the model input ([Note: the model input in deps])."""
        return [j for j in range(len(self.layers)) if self.reads_input(j)]

    def is_chain(self) -> bool:
        """True when only layer 0 reads the input and every later layer reads exactly the previous one."""
        if self.layer_deps(0) or self.input_consumers() != [0]:
            return False
        return all(self.layer_deps(i + 1) == (self.layers[i].name,) for i in range(len(self.layers) - 1))

    @property
    def total_flops(self) -> float:
        return float(sum(layer.flops for layer in self.layers))

    @property
    def total_params_bytes(self) -> float:
        return float(sum(layer.params_bytes for layer in self.layers))

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        layers = []
        for layer in self.layers:
            d: dict[str, Any] = {
                "name": layer.name,
                "flops": layer.flops,
                "out_bytes": layer.out_bytes,
                "params_bytes": layer.params_bytes,
                "deps": list(layer.deps),
            }
            if layer.latency_s is not None:
                d["latency_s"] = layer.latency_s
            layers.append(d)
        out: dict[str, Any] = {"layers": layers, "input_bytes": self.input_bytes}
        if self.name:
            out["name"] = self.name
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Profile":
        if not isinstance(data, Mapping) or "layers" not in data:
            raise ConfigError("a profile is a JSON object with 'layers' and 'input_bytes'")
        layers = []
        for i, raw in enumerate(data["layers"]):
            try:
                layers.append(
                    Layer(
                        name=str(raw["name"]),
                        flops=float(raw["flops"]),
                        out_bytes=float(raw["out_bytes"]),
                        params_bytes=float(raw.get("params_bytes", 0.0)),
                        deps=tuple(raw.get("deps", ())),
                        latency_s=None if raw.get("latency_s") is None else float(raw["latency_s"]),
                    )
                )
            except KeyError as e:
                raise ConfigError(f"profile layer #{i} lacks the key {e.args[0]!r}") from e
        if "input_bytes" not in data:
            raise ConfigError("profile lacks 'input_bytes' (bytes of the model input)")
        return cls(tuple(layers), float(data["input_bytes"]), str(data.get("name", "")))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "Profile":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from e


def chain_profile(flops: Sequence[float], out_bytes: Sequence[float], input_bytes: float,
                  params_bytes: Sequence[float] | None = None, name: str = "chain") -> Profile:
    """A chain profile (layer i reads layer i-1) from per-layer numbers; layers are named ``l0..``."""
    if len(flops) != len(out_bytes):
        raise ValueError(f"flops has {len(flops)} entries but out_bytes has {len(out_bytes)}")
    pb = params_bytes if params_bytes is not None else [0.0] * len(flops)
    layers = [
        Layer(f"l{i}", float(f), float(o), float(p), (INPUT,) if i == 0 else (f"l{i-1}",))
        for i, (f, o, p) in enumerate(zip(flops, out_bytes, pb))
    ]
    return Profile(tuple(layers), float(input_bytes), name)
