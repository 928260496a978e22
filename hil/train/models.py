"""Split models: an edge part, the cut (over the air or its digital twin) and a server part.

- ``mlp``: Flatten-Linear(hidden)-ReLU | cut: OTALinear(hidden -> cut_out) + BN | ReLU-Linear(classes)
- ``cnn``: Conv3x3(hidden)-ReLU-MaxPool2 | cut: OTAConv2d(hidden -> cut_out, kernel k) + BN |
  ReLU-MaxPool2-Flatten-Linear(classes)

The digital baseline is the same architecture with ``nn.Linear``/``nn.Conv2d`` + BatchNorm at the cut.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from hil.ota.layers import OTAConv2d, OTALinear
from hil.ota.link import OTALink


class CutModel(nn.Module):
    """``server(cut(edge(x)))``; ``cut`` is the over-the-air layer or its digital twin."""

    def __init__(self, edge: nn.Module, cut: nn.Module, server: nn.Module):
        super().__init__()
        self.edge, self.cut, self.server = edge, cut, server

    def forward(self, x):
        return self.server(self.cut(self.edge(x)))

    @torch.no_grad()
    def forward_many(self, batches) -> list[torch.Tensor]:
        """``[self(x) for x in batches]`` without gradients. With an over-the-air :class:`OTALinear`
        cut (gradient mode reciprocity or estimated) the bursts of all batches go out as one
        double-buffered stream (:meth:`OTALink.transmit_many`): burst i + 1 is on its way while
        burst i decodes. The outputs equal the one-by-one ones (no frame lost)."""
        cut = self.cut
        link = getattr(cut, "link", None)
        if not isinstance(cut, OTALinear) or link is None or link.gradient_mode == "exact":
            return [self(x) for x in batches]
        syms = [cut.precode(self.edge(x)) for x in batches]
        for s in syms:
            link.check_symbols(s)
        recs = link.transmit_many([s.detach().cpu().numpy() for s in syms])
        return [self.server(cut.combine(torch.from_numpy(r.payload))) for r in recs]


def build_model(
    kind: str,
    image_shape: tuple[int, int, int],
    classes: int,
    hidden: int = 32,
    cut_out: int = 32,
    kernel_size: int = 1,
    ota: bool = True,
    link: OTALink | None = None,
    n_tx: int = 2,
    n_rx: int = 2,
    channel_uses: int = 16,
    normalize: bool = True,
    power: str = "batch",
) -> CutModel:
    """Build a split model. ``ota=False`` gives the digital baseline; ``ota=True`` with ``link=None``
    computes the cut in process over the identity channel (the noiseless twin)."""
    c, h, w = image_shape
    if kind == "mlp":
        edge = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU())
        if ota:
            cut: nn.Module = OTALinear(hidden, cut_out, n_tx, n_rx, channel_uses, link=link, normalize=normalize,
                                     power=power)
        else:
            cut = nn.Sequential(nn.Linear(hidden, cut_out), nn.BatchNorm1d(cut_out) if normalize else nn.Identity())
        server = nn.Sequential(nn.ReLU(), nn.Linear(cut_out, classes))
    elif kind == "cnn":
        edge = nn.Sequential(nn.Conv2d(c, hidden, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        pad = kernel_size // 2
        if ota:
            cut = OTAConv2d(hidden, cut_out, kernel_size, n_tx, n_rx, channel_uses, link=link, padding=pad, normalize=normalize,
                            power=power)
        else:
            cut = nn.Sequential(
                nn.Conv2d(hidden, cut_out, kernel_size, padding=pad),
                nn.BatchNorm2d(cut_out) if normalize else nn.Identity(),
            )
        h2, w2 = h // 2, w // 2
        pool = h2 >= 2 and w2 >= 2
        h3, w3 = (h2 // 2, w2 // 2) if pool else (h2, w2)
        server = nn.Sequential(
            nn.ReLU(), nn.MaxPool2d(2) if pool else nn.Identity(), nn.Flatten(), nn.Linear(cut_out * h3 * w3, classes)
        )
    else:
        raise ValueError(f"unknown model kind {kind!r}; known: mlp, cnn")
    return CutModel(edge, cut, server)


def unsplit(model: CutModel, channel: np.ndarray) -> nn.Module:
    """The same network with the over-the-air cut folded into an ordinary layer computed over ``channel``
    (eval mode, no noise): what the split model must equal over a noiseless ``channel``."""
    if isinstance(model.cut, OTALinear):
        cut = model.cut.to_linear(channel)
    elif isinstance(model.cut, OTAConv2d):
        cut = model.cut.to_conv(channel)
    else:
        raise TypeError(f"model.cut is {type(model.cut).__name__}, not an over-the-air layer")
    return nn.Sequential(copy.deepcopy(model.edge), cut, copy.deepcopy(model.server)).eval()
