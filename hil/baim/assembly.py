"""Cloud assembly of edge learners into a big model (BAIM): task squads, hierarchical gate, projections.

Structure (arXiv 2401.01666, bottom-up big AI model), for the VAE case:

- M task squads; squad t holds the learners of the nodes that serve task t.
- Task-specific gate (TSGate): an MLP on the image that routes it to one squad (hard, argmax).
- Learner-selected gate (LSGate) per squad: scores the squad's learners from the image, keeps the top K,
  and weights them with a softmax over those K (the others get weight exactly 0). The squad is a
  mixture of VAE experts: the weights are the posterior over components, a learned prior over
  components is used for sampling.
- Projections: a bias-free linear map from stage i of learner a to stage j of learner b (a != b) of the
  same squad, for 0 <= j - i <= h, added to b's stage-j output and scaled by a learned gate
  ``sigmoid(score_logit)``. Usefulness = ``sigmoid(score_logit) * ||W||_F``; a group-lasso penalty on it
  pushes useless projections to zero and :meth:`ProjectionSet.prune` removes all but the most useful.

[Note: stage order]
All learners of a squad run stage by stage. At step s every learner first computes its own stage
output ``z_b[s]`` from its previous (augmented) output, then adds the projections from ``z_a[i]``
with ``i <= s``. Since a projection reads a source's own stage output, never an augmented one of the
same step, there is no cycle, and learners of different depths align by stage index from the input.
Projection weights start at zero, so an assembled model with edge weights computes exactly what the
edge learners compute until training moves the projections.

[Note: exact dispatch]
The big model evaluates squad t on ``x[tasks == t]`` (a gather, as mixture-of-experts layers do) and
scatters the results back. A per-task model is the squad alone, so on the same rows it runs the same
kernels on a bit-identical input tensor of the same shape: outputs are equal bit for bit (torch.equal),
not merely close.
"""

from __future__ import annotations

import logging
import re

import torch
import torch.nn.functional as F
from torch import nn

from hil.baim.data import DATA_DIM
from hil.baim.learners import LearnerSpec, StageStack, VaeLearner, reparameterize

logger = logging.getLogger(__name__)

_KEY = re.compile(r"^a(\d+)s(\d+)_b(\d+)s(\d+)$")


def projection_key(a: int, i: int, b: int, j: int) -> str:
    """Name of the projection from stage i of learner a to stage j of learner b."""
    return f"a{a}s{i}_b{b}s{j}"


def parse_projection_key(key: str) -> tuple[int, int, int, int]:
    m = _KEY.match(key)
    if m is None:
        raise ValueError(f"projection key {key!r} is not of the form 'a<A>s<I>_b<B>s<J>'")
    return tuple(int(g) for g in m.groups())  # type: ignore[return-value]


def candidate_projection_keys(stage_widths: list[tuple[int, ...]], max_hop: int) -> list[str]:
    """All projections stage i of a -> stage j of b, a != b, 0 <= j - i <= max_hop."""
    keys = []
    for a, wa in enumerate(stage_widths):
        for b, wb in enumerate(stage_widths):
            if a == b:
                continue
            for i in range(len(wa)):
                for j in range(i, min(i + max_hop, len(wb) - 1) + 1):
                    keys.append(projection_key(a, i, b, j))
    return keys


class ProjectionSet(nn.Module):
    """Cross-learner projections of one squad's stacks (see [Note: stage order])."""

    def __init__(self, stage_widths: list[tuple[int, ...]], max_hop: int, keys: list[str] | None = None,
                 score_init: float = 0.0):
        super().__init__()
        self.stage_widths = [tuple(w) for w in stage_widths]
        self.max_hop = max_hop
        keys = candidate_projection_keys(self.stage_widths, max_hop) if keys is None else list(keys)
        self.proj = nn.ModuleDict()
        self.score_logit = nn.ParameterDict()
        for k in keys:
            a, i, b, j = parse_projection_key(k)
            if not (a != b and 0 <= j - i <= max_hop and i < len(self.stage_widths[a]) and j < len(self.stage_widths[b])):
                raise ValueError(f"projection {k} violates a != b, 0 <= j - i <= h={max_hop} or the stage counts")
            lin = nn.Linear(self.stage_widths[a][i], self.stage_widths[b][j], bias=False)
            nn.init.zeros_(lin.weight)
            self.proj[k] = lin
            self.score_logit[k] = nn.Parameter(torch.full((), float(score_init)))
        self._index()

    def _index(self) -> None:
        self._into: dict[tuple[int, int], list[tuple[int, int, str]]] = {}
        for k in sorted(self.proj.keys()):
            a, i, b, j = parse_projection_key(k)
            self._into.setdefault((b, j), []).append((a, i, k))

    def keys_list(self) -> list[str]:
        return sorted(self.proj.keys())

    def run(self, u: torch.Tensor, stacks: list[StageStack]) -> list[torch.Tensor]:
        """Run all stacks on the same input u [B, in] with projections; returns each last stage [B, w_l]."""
        depth = [len(st.stages) for st in stacks]
        z: list[list[torch.Tensor]] = [[] for _ in stacks]
        h = [u] * len(stacks)
        for s in range(max(depth)):
            for b, st in enumerate(stacks):
                if s < depth[b]:
                    z[b].append(st.stage(s, h[b]))
            for b in range(len(stacks)):
                if s < depth[b]:
                    acc = z[b][s]
                    for a, i, k in self._into.get((b, s), ()):
                        acc = acc + torch.sigmoid(self.score_logit[k]) * self.proj[k](z[a][i])
                    h[b] = acc
        return h

    def usefulness(self) -> dict[str, float]:
        """Learned usefulness ``sigmoid(score_logit) * ||W||_F`` of each projection."""
        with torch.no_grad():
            return {k: float(torch.sigmoid(self.score_logit[k]) * self.proj[k].weight.norm()) for k in self.keys_list()}

    def penalty(self) -> torch.Tensor:
        """Group-lasso penalty: sum of usefulness (differentiable)."""
        terms = [torch.sigmoid(self.score_logit[k]) * self.proj[k].weight.norm() for k in self.proj]
        return torch.stack(terms).sum() if terms else torch.zeros(())

    def prune(self, keep_fraction: float) -> list[str]:
        """Keep the ``ceil(keep_fraction * n)`` most useful projections with nonzero usefulness; remove the
        rest (structurally: modules and parameters are deleted). Returns the removed keys."""
        scores = self.usefulness()
        ranked = sorted(scores, key=lambda k: (-scores[k], k))
        n_keep = int(-(-keep_fraction * len(ranked) // 1))
        keep = {k for k in ranked[:n_keep] if scores[k] > 0.0}
        removed = [k for k in ranked if k not in keep]
        for k in removed:
            del self.proj[k]
            del self.score_logit[k]
        self._index()
        return removed


class VaeSquad(nn.Module):
    """One task squad: a mixture of VAE experts with an LSGate and cross-learner projections.

    Shapes: x [B, 64] in [0, 1]; z [B, d]; images [B, 64] in [0, 1].
    """

    def __init__(self, specs: list[LearnerSpec], top_k: int, max_hop: int,
                 enc_keys: list[str] | None = None, dec_keys: list[str] | None = None, score_init: float = 0.0):
        super().__init__()
        if not specs:
            raise ValueError("a squad needs at least one learner spec")
        self.specs = list(specs)
        self.latent_dim = specs[0].latent_dim
        if any(s.latent_dim != self.latent_dim for s in specs):
            raise ValueError(f"learners of one squad need one latent_dim; got {[s.latent_dim for s in specs]}")
        self.top_k = min(top_k, len(specs))
        self.max_hop = max_hop
        self.learners = nn.ModuleList(VaeLearner(s) for s in specs)
        self.enc_proj = ProjectionSet([s.widths for s in specs], max_hop, enc_keys, score_init)
        self.dec_proj = ProjectionSet([tuple(reversed(s.widths)) for s in specs], max_hop, dec_keys, score_init)
        self.ls_gate = nn.Linear(DATA_DIM, len(specs))
        self.prior_logits = nn.Parameter(torch.zeros(len(specs)))

    # -- architecture as JSON (what is shipped with the weights)
    def spec_json(self) -> dict:
        return {"learners": [s.to_json() for s in self.specs], "top_k": self.top_k, "max_hop": self.max_hop,
                "enc_keys": self.enc_proj.keys_list(), "dec_keys": self.dec_proj.keys_list()}

    @classmethod
    def from_spec_json(cls, d: dict) -> "VaeSquad":
        return cls([LearnerSpec.from_json(s) for s in d["learners"]], int(d["top_k"]), int(d["max_hop"]),
                   list(d["enc_keys"]), list(d["dec_keys"]))

    @property
    def n(self) -> int:
        return len(self.learners)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """LSGate weights [B, n]: softmax over the top-K learner scores, exactly 0 elsewhere."""
        return torch.softmax(self._masked_gate_logits(x), dim=1)

    def _masked_gate_logits(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.ls_gate(x)
        top = logits.topk(self.top_k, dim=1).indices
        return torch.full_like(logits, float("-inf")).scatter(1, top, logits.gather(1, top))

    def encode_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every learner's posterior: mu, logvar [n, B, d]."""
        hs = self.enc_proj.run(x, [m.enc for m in self.learners])
        stats = torch.stack([m.enc_head(h) for m, h in zip(self.learners, hs)])
        mu, logvar = stats.chunk(2, dim=2)
        return mu, logvar

    def decode_all(self, z: torch.Tensor) -> torch.Tensor:
        """Every learner's pixel logits for the same z [B, d] -> [n, B, 64]."""
        hs = self.dec_proj.run(z, [m.dec for m in self.learners])
        return torch.stack([m.dec_head(h) for m, h in zip(self.learners, hs)])

    def _decode_own(self, z: torch.Tensor) -> torch.Tensor:
        """z [n, B, d] (one latent per component) -> logits of component l on z[l]: [n, B, 64]."""
        n, b, d = z.shape
        logits = self.decode_all(z.reshape(n * b, d)).reshape(n, n, b, -1)
        ar = torch.arange(n)
        return logits[ar, ar]

    def loss(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """Per-sample loss [B]: sum_l q_l(x) * negELBO_l(x) + KL(q(.|x) || prior over components)."""
        terms = self.loss_terms(x, gen)
        return terms["rec"] + terms["kl_z"] + terms["kl_comp"]

    def loss_terms(self, x: torch.Tensor, gen: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The loss split per sample [B] (nats): ``rec`` = sum_l q_l BCE_l, ``kl_z`` = sum_l q_l
        KL(q_l(z|x) || N(0, I)) (the rate), ``kl_comp`` = KL(q(.|x) || prior over components)."""
        masked = self._masked_gate_logits(x)
        q = torch.softmax(masked, dim=1)  # [B, n], exactly 0 outside the top K
        # log q is -inf outside the top K; replace it by 0 there so that neither the value nor the gradient
        # sees 0 * inf (xlogy's gradient is NaN at q = 0)
        log_q = torch.where(q > 0, torch.log_softmax(masked, dim=1), torch.zeros_like(q))
        mu, logvar = self.encode_all(x)  # [n, B, d]
        z = reparameterize(mu, logvar, gen)
        logits = self._decode_own(z)  # [n, B, 64]
        rec = F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(dim=2)
        kl_z = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=2)  # [n, B]
        log_prior = F.log_softmax(self.prior_logits, dim=0)
        return {"rec": (q.T * rec).sum(dim=0), "kl_z": (q.T * kl_z).sum(dim=0),
                "kl_comp": (q * (log_q - log_prior)).sum(dim=1)}

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic reconstruction [B, 64]: gate-weighted sum of the components' decoded posterior means."""
        q = self.gate(x)
        mu, _ = self.encode_all(x)
        images = torch.sigmoid(self._decode_own(mu))  # [n, B, 64]
        return (q.T.unsqueeze(2) * images).sum(dim=0)

    def generate(self, z: torch.Tensor, comps: torch.Tensor) -> torch.Tensor:
        """Images [B, 64] of component ``comps[b]`` (int64 [B]) decoded from z [B, d]."""
        logits = self.decode_all(z)
        return torch.sigmoid(logits[comps, torch.arange(z.shape[0])])

    def draw_components(self, n: int, gen: torch.Generator | None) -> torch.Tensor:
        return torch.multinomial(torch.softmax(self.prior_logits.detach(), 0), n, replacement=True, generator=gen)

    def penalty(self) -> torch.Tensor:
        return self.enc_proj.penalty() + self.dec_proj.penalty()

    def learner_parameters(self):
        return [p for m in self.learners for p in m.parameters()]


class TSGate(nn.Module):
    """Task-specific gate: image [B, 64] -> task logits [B, M]."""

    def __init__(self, n_tasks: int, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(DATA_DIM, hidden), nn.ReLU(), nn.Linear(hidden, n_tasks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BigModel(nn.Module):
    """The assembled big model: TSGate + M squads (see [Note: exact dispatch])."""

    def __init__(self, squads: list[VaeSquad], task_prior: torch.Tensor):
        super().__init__()
        self.squads = nn.ModuleList(squads)
        self.ts_gate = TSGate(len(squads))
        self.register_buffer("task_prior", task_prior.to(torch.float32))

    @property
    def n_tasks(self) -> int:
        return len(self.squads)

    def route(self, x: torch.Tensor) -> torch.Tensor:
        """Task index per image, int64 [B] (hard TSGate routing)."""
        return self.ts_gate(x).argmax(dim=1)

    def _dispatch(self, tasks: torch.Tensor, fn, *args: torch.Tensor) -> torch.Tensor:
        out = None
        for t in range(self.n_tasks):
            idx = torch.nonzero(tasks == t).squeeze(1)
            if len(idx) == 0:
                continue
            part = fn(self.squads[t], *(a[idx] for a in args))
            if out is None:
                out = part.new_zeros((len(tasks), *part.shape[1:]))
            out[idx] = part
        return out

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Route each image by the TSGate and reconstruct it with its squad: (images [B, 64], tasks [B])."""
        tasks = self.route(x)
        return self._dispatch(tasks, VaeSquad.reconstruct, x), tasks

    def generate(self, z: torch.Tensor, tasks: torch.Tensor, comps: torch.Tensor) -> torch.Tensor:
        """Images [B, 64] from latents z [B, d] for given tasks and components (int64 [B])."""
        return self._dispatch(tasks, VaeSquad.generate, z, comps)

    def draw(self, n: int, gen: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw (z [n, d], tasks [n], comps [n]) from the model's priors."""
        tasks = torch.multinomial(self.task_prior, n, replacement=True, generator=gen)
        comps = torch.zeros(n, dtype=torch.int64)
        for t in range(self.n_tasks):
            idx = torch.nonzero(tasks == t).squeeze(1)
            if len(idx):
                comps[idx] = self.squads[t].draw_components(len(idx), gen)
        z = torch.randn(n, self.squads[0].latent_dim, generator=gen)
        return z, tasks, comps

    def sample(self, n: int, gen: torch.Generator | None) -> torch.Tensor:
        """n images [n, 64] drawn from the big model."""
        with torch.no_grad():
            return self.generate(*self.draw(n, gen))

    def loss(self, x: torch.Tensor, task_labels: torch.Tensor, gen: torch.Generator | None,
             proj_penalty: float = 0.0) -> torch.Tensor:
        """Scalar training loss: mean squad loss (routed by the true task, teacher forcing)
        + TSGate cross-entropy + ``proj_penalty`` * projection usefulness."""
        total = torch.zeros(())
        for t in range(self.n_tasks):
            idx = torch.nonzero(task_labels == t).squeeze(1)
            if len(idx):
                total = total + self.squads[t].loss(x[idx], gen).sum()
        total = total / len(x) + F.cross_entropy(self.ts_gate(x), task_labels)
        if proj_penalty:
            total = total + proj_penalty * sum(s.penalty() for s in self.squads)
        return total

    def n_projections(self) -> int:
        return sum(len(s.enc_proj.proj) + len(s.dec_proj.proj) for s in self.squads)

    def prune(self, keep_fraction: float) -> int:
        """Prune every squad's projections; returns how many were removed."""
        return sum(len(s.enc_proj.prune(keep_fraction)) + len(s.dec_proj.prune(keep_fraction)) for s in self.squads)


def assemble(specs: list[LearnerSpec], states: list[dict | None], node_task: tuple[int, ...], n_tasks: int,
             top_k: int, max_hop: int, task_prior: torch.Tensor,
             score_init: float = 0.0) -> tuple[BigModel, list[list[int]]]:
    """Build the big model from the nodes' specs and (optionally) their uploaded weights.

    Args:
        specs, states: per node; ``states[n] is None`` keeps a fresh random init (the scratch strategy).
        node_task: squad of each node.
    Returns:
        (model, members) where ``members[t]`` lists the node indices of squad t in learner order.
    """
    members = [[n for n in range(len(specs)) if node_task[n] == t] for t in range(n_tasks)]
    if any(not m for m in members):
        raise ValueError(f"some task has no node: members={members}; use n_nodes >= n_tasks")
    squads = []
    for t in range(n_tasks):
        squad = VaeSquad([specs[n] for n in members[t]], top_k, max_hop, score_init=score_init)
        for li, n in enumerate(members[t]):
            if states[n] is not None:
                squad.learners[li].load_state_dict(states[n])
        squads.append(squad)
    return BigModel(squads, task_prior), members
