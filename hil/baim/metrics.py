"""Image quality: a Frechet distance on the features of a digits classifier trained here.

[Note: not Inception FID]
The Frechet distance is computed exactly like FID (Gaussian fit to features, closed-form distance) but
on the 32-dimensional penultimate layer of a small MLP digits classifier trained in this run, not on
Inception-v3 features (those weights cannot be downloaded here). Numbers are comparable between
models of one run (same classifier, same reference set, same sample count), not with published FIDs.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn

from hil.baim.data import DATA_DIM, N_CLASSES, batches


class DigitsClassifier(nn.Module):
    """MLP 64 -> 128 -> 32 -> 10; ``features`` is the 32-d penultimate layer (after ReLU)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(DATA_DIM, 128), nn.ReLU(), nn.Linear(128, 32), nn.ReLU())
        self.head = nn.Linear(32, N_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def train_classifier(x: torch.Tensor, y: torch.Tensor, epochs: int, gen: torch.Generator,
                     lr: float = 1e-3, batch_size: int = 64) -> DigitsClassifier:
    """Train the feature classifier with Adam + cross-entropy; light pixel noise for robustness."""
    model = DigitsClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        for idx in batches(len(x), batch_size, gen):
            xb = (x[idx] + 0.05 * torch.randn(x[idx].shape, generator=gen)).clamp(0, 1)
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model


def accuracy(model: DigitsClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def feature_stats(model: DigitsClassifier, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean [f] and covariance [f, f] (float64) of the classifier features of images x [n, 64]."""
    with torch.no_grad():
        f = model.features(x).double().numpy()
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """``||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1 C2)^{1/2})`` (see [Note: not Inception FID])."""
    # tr (C1 C2)^{1/2} = tr (S1 C2 S1)^{1/2} with S1 = C1^{1/2}: symmetric PSD, so eigh is stable even when
    # a covariance is singular (dead ReLU features).
    w1, v1 = scipy.linalg.eigh(cov1)
    s1 = (v1 * np.sqrt(np.clip(w1, 0.0, None))) @ v1.T
    w = scipy.linalg.eigvalsh(s1 @ cov2 @ s1)
    tr_covmean = float(np.sum(np.sqrt(np.clip(w, 0.0, None))))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2.0 * tr_covmean)


class FrechetEvaluator:
    """Frechet distance of generated images to a fixed reference set (the test split)."""

    def __init__(self, classifier: DigitsClassifier, x_ref: torch.Tensor):
        self.classifier = classifier
        self.mu_ref, self.cov_ref = feature_stats(classifier, x_ref)

    def __call__(self, images: torch.Tensor) -> float:
        mu, cov = feature_stats(self.classifier, images)
        return frechet_distance(mu, cov, self.mu_ref, self.cov_ref)
