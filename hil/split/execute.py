"""Execute a placement plan: cut the traced graph into stage modules and run them across links.

[Note: stages]
Layers are taken in the traced graph's (topological) order and grouped into maximal runs on the
same node; each run is a stage, an ``fx.GraphModule`` whose placeholders are the values it reads
from other stages (or the model input) and whose output is the tuple of its values read later.
Running stages in order is always valid: a stage only reads values of earlier stages. A value
crosses to each destination node once (the cost model's "sent once to each node that needs
it"), hop by hop along the route the plan recorded for that transfer (the cost model's least-cost
route, ``Transfer.route``), each hop through a link callable ``link(tensor, a, b) -> tensor`` for two
adjacent nodes: digital links pass the tensor through in process; over-the-air links go through the
OTA layer. A transfer the plan has no route for (plans written before routes were recorded) is
sent directly, src -> dst, and :func:`topology_links` raises LinkError when there is no direct link.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import fx, nn

from hil.errors import LinkError, PlacementError
from hil.split.plan import INPUT, Plan
from hil.split.topology import Link, Topology

log = logging.getLogger(__name__)

LinkFn = Callable[[torch.Tensor, str, str], torch.Tensor]


def ideal_link(x: torch.Tensor, src: str, dst: str) -> torch.Tensor:
    """A lossless link: the tensor arrives unchanged."""
    return x


@dataclass(frozen=True)
class Stage:
    """One stage of a split model.

    Attributes:
        index: position in execution order.
        node: the node that runs it.
        module: the stage's GraphModule; call it with the values named by ``inputs``, it returns a
            tuple of the values named by ``outputs``.
        inputs: names of the values it reads (fx node names; the model input by its placeholder name).
        outputs: names of the values it produces that later stages or the model output read.
        layers: names of the layers it runs.
    """

    index: int
    node: str
    module: fx.GraphModule
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    layers: tuple[str, ...]


def build_stages(gm: fx.GraphModule, plan: Plan) -> list[Stage]:
    """Cut ``gm`` (from :func:`hil.split.trace.profile_model`) into stages by ``plan`` (see [Note: stages])."""
    nodes = [n for n in gm.graph.nodes if n.op not in ("placeholder", "output", "get_attr")]
    missing = [n.name for n in nodes if n.name not in plan.assignment]
    if missing:
        raise PlacementError(f"the plan does not assign layers {missing[:5]}...; was it made for this model's profile?")
    groups: list[tuple[str, list[fx.Node]]] = []
    for n in nodes:
        where = plan.assignment[n.name]
        if groups and groups[-1][0] == where:
            groups[-1][1].append(n)
        else:
            groups.append((where, [n]))
    stage_of = {n.name: k for k, (_, members) in enumerate(groups) for n in members}
    stages = []
    for k, (where, members) in enumerate(groups):
        g = fx.Graph()
        env: dict[fx.Node, fx.Node] = {}
        inputs: list[str] = []
        member_set = set(members)

        def lookup(a: fx.Node) -> fx.Node:
            if a in env:
                return env[a]
            if a.op == "get_attr":
                env[a] = g.get_attr(str(a.target))
                return env[a]
            env[a] = g.placeholder(a.name)
            inputs.append(a.name)
            return env[a]

        for n in members:
            env[n] = g.node_copy(n, lookup)
        outputs = [
            n.name for n in members
            if any(u not in member_set and (u.op == "output" or stage_of.get(u.name, -1) > k) for u in n.users)
        ]
        by_name = {n.name: n for n in members}
        g.output(tuple(env[by_name[o]] for o in outputs))
        stages.append(Stage(k, where, fx.GraphModule(gm, g), tuple(inputs), tuple(outputs),
                            tuple(n.name for n in members)))
    return stages


class SplitModel(nn.Module):
    """A model run as stages over links, equal to the unsplit model over ideal links.

    Args:
        gm: the traced model (from :func:`hil.split.trace.profile_model`).
        plan: the placement plan for ``gm``'s profile.
        source: the node that holds the model input.
        link: ``link(tensor, src, dst) -> tensor`` for every crossing, or a mapping from
            ``(src, dst)`` to such a callable (a missing pair raises LinkError).

    After a forward, ``self.transfers`` lists ``(value_name, src, dst, nbytes)`` of what crossed
    (end to end, as ``plan.transfers``; the model input as ``"input"``) and ``self.hops`` lists
    ``(value_name, a, b)`` for each link call along the routes.
    """

    def __init__(self, gm: fx.GraphModule, plan: Plan, source: str,
                 link: LinkFn | Mapping[tuple[str, str], LinkFn] = ideal_link) -> None:
        super().__init__()
        self.stages = build_stages(gm, plan)
        self.stage_modules = nn.ModuleList([s.module for s in self.stages])
        self.source = source
        self.link = link
        self.input_name = next(n.name for n in gm.graph.nodes if n.op == "placeholder")
        out = next(n for n in gm.graph.nodes if n.op == "output")
        self._out_arg = out.args[0]
        self.transfers: list[tuple[str, str, str, int]] = []
        self.hops: list[tuple[str, str, str]] = []
        self.routes = {(t.layer, t.src, t.dst): t.route for t in plan.transfers if len(t.route) >= 2}

    def _send(self, x: torch.Tensor, src: str, dst: str) -> torch.Tensor:
        fn = self.link
        if isinstance(fn, Mapping):
            try:
                fn = fn[(src, dst)]
            except KeyError as e:
                raise LinkError(f"no link callable for {src} -> {dst}; add it to the mapping") from e
        return fn(x, src, dst)

    def forward(self, x: torch.Tensor) -> Any:
        self.transfers = []
        self.hops = []
        # value name -> {node: tensor}; the model input starts on the source
        held: dict[str, dict[str, torch.Tensor]] = {self.input_name: {self.source: x}}
        for st in self.stages:
            args = []
            for name in st.inputs:
                copies = held[name]
                if st.node not in copies:
                    src, t = next(iter(copies.items()))
                    label = INPUT if name == self.input_name else name
                    route = self.routes.get((label, src, st.node), (src, st.node))
                    y = t
                    for a, b in zip(route[:-1], route[1:]):
                        y = self._send(y, a, b)
                        self.hops.append((label, a, b))
                    copies[st.node] = y
                    self.transfers.append((label, src, st.node, t.numel() * t.element_size()))
                args.append(copies[st.node])
            outs = st.module(*args)
            for name, t in zip(st.outputs, outs):
                held[name] = {st.node: t}
        return fx.node.map_arg(self._out_arg, lambda n: next(iter(held[n.name].values())))


def split_model(gm: fx.GraphModule, plan: Plan, topology: Topology,
                link: LinkFn | Mapping[tuple[str, str], LinkFn] = ideal_link) -> SplitModel:
    """:class:`SplitModel` with the topology's source node."""
    return SplitModel(gm, plan, topology.names[topology.source_index], link)


def topology_links(topology: Topology, ota_link: LinkFn | None = None, digital_link: LinkFn = ideal_link,
                   energy: bool = False) -> LinkFn:
    """A link callable for one hop between adjacent nodes: OTA links through ``ota_link``, digital ones
    through ``digital_link`` (in process by default).

    :class:`SplitModel` calls it once per hop of each transfer's route, so a route through an OTA hop
    goes through ``ota_link`` on that hop. With parallel links between two nodes the one the cost
    model picks for the tensor's per-sample size (``Topology.best_link``, ``energy`` as the
    objective) is used. Raises LinkError for two nodes without a direct link (a plan without
    routes: re-solve it) and for an OTA hop when ``ota_link`` is None.
    """

    def send(x: torch.Tensor, src: str, dst: str) -> torch.Tensor:
        per_sample = (x[0].numel() if x.dim() > 0 and x.shape[0] > 0 else x.numel()) * x.element_size()
        link = topology.best_link(src, dst, float(per_sample), energy)
        if link is None:
            raise LinkError(f"no direct link {src}-{dst} in the topology; transfers go hop by hop along the "
                            "plan's routes (Transfer.route): re-solve the plan so that it records them")
        if link.ota:
            if ota_link is None:
                raise LinkError(f"link {src}-{dst} is over the air but no ota_link was given; pass one "
                                "(e.g. OTAActivationLink(hil.ota.OTALink(...))) or mark the link digital")
            return ota_link(x, src, dst)
        return digital_link(x, src, dst)

    return send


class OTAActivationLink:
    """Carry an activation over an :class:`hil.ota.OTALink` as analog symbols, as the cost model counts it.

    Each sample's activation (``d`` real values) is padded to ``2 * n_tx * K`` values with
    ``K = ceil(d / (2 * n_tx))`` channel uses, paired into complex symbols ``[B, n_tx, K]``, sent
    through ``link`` (differentiable: the link's gradient mode carries the backward), and equalised
    at the receiver by zero forcing with the receiver's own pilot estimate of the channel
    (``pinv(H_hat) y``; needs n_rx >= n_tx). No trained precoder: this is the plain analog cut of a
    placement plan; the trained precoder/combiner layer is :class:`hil.ota.OTALinear`.

    Attributes:
        channel_uses: K of each call, appended per transfer.
    """

    def __init__(self, link: Any) -> None:
        if link.n_rx < link.n_tx:
            raise ValueError(f"zero-forcing needs n_rx >= n_tx; the link is {link.n_tx}x{link.n_rx}")
        self.link = link
        self.channel_uses: list[int] = []

    def __call__(self, x: torch.Tensor, src: str, dst: str) -> torch.Tensor:
        b = x.shape[0]
        flat = x.reshape(b, -1).to(torch.float32)
        d = flat.shape[1]
        n_tx = self.link.n_tx
        k = Link.uses_for_values(d, n_tx)  # the cost model's K (hil.split.topology [Note: link cost model])
        pad = 2 * n_tx * k - d
        if pad:
            flat = torch.cat([flat, flat.new_zeros(b, pad)], dim=1)
        pairs = flat.reshape(b, n_tx * k, 2)
        s = torch.complex(pairs[..., 0], pairs[..., 1]).reshape(b, n_tx, k)  # [B, n_tx, K]
        y = self.link(s)  # [B, n_rx, K]
        h_hat = self.link.last.channel_estimate if self.link.last is not None else None
        if h_hat is None:
            raise LinkError(f"OTA link {src}->{dst}: the receiver has no channel estimate to equalise with")
        w = torch.linalg.pinv(torch.from_numpy(h_hat))  # [n_tx, n_rx]
        s_hat = torch.einsum("tr,brk->btk", w, y).reshape(b, n_tx * k)
        out = torch.stack([s_hat.real, s_hat.imag], dim=-1).reshape(b, 2 * n_tx * k)[:, :d]
        self.channel_uses.append(k)
        return out.reshape(x.shape).to(x.dtype)
