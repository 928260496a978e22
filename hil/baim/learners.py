"""Heterogeneous small edge learners: MLP VAEs on 8x8 digits, built from stages.

A learner's encoder and decoder are each a :class:`StageStack` (stage s = Linear + ReLU); the cloud's
projections (hil.baim.assembly) connect stage outputs of different learners.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hil.baim.data import DATA_DIM, batches
from hil.flops import count_flops

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LearnerSpec:
    """Architecture of one learner: encoder hidden widths (the decoder mirrors them)."""

    widths: tuple[int, ...]
    latent_dim: int
    data_dim: int = DATA_DIM

    def to_json(self) -> dict:
        return {"widths": list(self.widths), "latent_dim": self.latent_dim, "data_dim": self.data_dim}

    @staticmethod
    def from_json(d: dict) -> "LearnerSpec":
        return LearnerSpec(tuple(int(w) for w in d["widths"]), int(d["latent_dim"]), int(d["data_dim"]))


def draw_learner_specs(n: int, widths, depths, latent_dim: int, rng: np.random.Generator) -> list[LearnerSpec]:
    """N heterogeneous specs: depth and width drawn per node; stage s has width ``w // 2**s`` (>= 8)."""
    specs = []
    for _ in range(n):
        w = int(rng.choice(widths))
        d = int(rng.choice(depths))
        specs.append(LearnerSpec(tuple(max(8, w // 2**s) for s in range(d)), latent_dim))
    return specs


class StageStack(nn.Module):
    """Stages ``h_s = relu(W_s h_{s-1} + b_s)``; ``widths[s]`` is the output width of stage s."""

    def __init__(self, in_dim: int, widths: tuple[int, ...]):
        super().__init__()
        dims = (in_dim, *widths)
        self.widths = tuple(widths)
        self.stages = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def stage(self, s: int, h: torch.Tensor) -> torch.Tensor:
        """Output of stage s for input h [B, in_s] -> [B, widths[s]]."""
        return F.relu(self.stages[s](h))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        for s in range(len(self.stages)):
            u = self.stage(s, u)
        return u


class VaeLearner(nn.Module):
    """A small VAE: encoder stages -> (mu, logvar) [B, d]; decoder stages (mirrored) -> pixel logits [B, 64]."""

    def __init__(self, spec: LearnerSpec):
        super().__init__()
        self.spec = spec
        self.enc = StageStack(spec.data_dim, spec.widths)
        self.enc_head = nn.Linear(spec.widths[-1], 2 * spec.latent_dim)
        self.dec = StageStack(spec.latent_dim, tuple(reversed(spec.widths)))
        self.dec_head = nn.Linear(spec.widths[0], spec.data_dim)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.enc_head(self.enc(x)).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel logits [B, 64]; ``sigmoid`` of them is the image in [0, 1]."""
        return self.dec_head(self.dec(z))

    def loss(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """Negative ELBO per sample [B] (Bernoulli likelihood on intensities, standard normal prior)."""
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, gen)
        return neg_elbo(self.decode(z), x, mu, logvar)

    def sample(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decode(z))


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    eps = torch.randn(mu.shape, generator=gen, dtype=mu.dtype)
    return mu + eps * torch.exp(0.5 * logvar)


def neg_elbo(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-sample negative ELBO in nats [B]: BCE summed over pixels + KL(q(z|x) || N(0, I))."""
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)
    return rec + kl


def train_vae(model: VaeLearner, x: torch.Tensor, epochs: int, batch_size: int, lr: float,
              gen: torch.Generator, flops_epoch: list | None = None,
              opt: torch.optim.Optimizer | None = None) -> list[float]:
    """Adam on the negative ELBO. Returns the mean loss per epoch.

    If ``flops_epoch`` is a list, the first epoch's FLOPs (forward + backward, ``hil.flops.count_flops``)
    are appended to it. ``opt``: an optimizer over ``model``'s parameters to continue (its state is
    kept, e.g. across FedAvg rounds); None: a fresh Adam with ``lr``.
    """
    if opt is None:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for epoch in range(epochs):
        total = 0.0
        counting = flops_epoch is not None and epoch == 0
        with count_flops(enabled=counting) as counted:
            for idx in batches(len(x), batch_size, gen):
                loss = model.loss(x[idx], gen).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
        if counting:
            flops_epoch.append(counted.total)
        history.append(total / len(x))
    return history
