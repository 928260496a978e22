"""OTALinear and OTAConv2d: layers whose weights are precoder x channel x combiner.

[Note: OTA layer parameterisation]
An input vector ``a`` (real, ``in_features``) is mapped by a trainable complex precoder
``P_k`` (``[n_tx, in_features]``, k = 1..K channel uses) to the symbols ``s_k = P_k a`` sent from the
``n_tx`` antennas at channel use k, normalised to unit average power (see below). The receiver gets
``y_k = H s_k + n_k`` and a trainable complex combiner ``C_k`` (``[n_rx, out_features]``) gives
``z = Re(sum_k C_k^H y_k)``. Without noise the layer is linear with weight

    W = Re(sum_k C_k^H H P_k) / p,        W: [out_features, in_features]

so precoder, unknown channel and combiner together are one fully connected layer (arXiv 2210.04742).
Each term has complex rank <= min(n_tx, n_rx); the real part at most doubles it, so
``rank(W) <= 2 K min(n_tx, n_rx)``: choose ``K >= out_features / (2 min(n_tx, n_rx))`` for a full-rank
layer, more for noise robustness (power is per channel use, so more uses mean more energy per vector).

Power constraint: ``p = sqrt(mean |s|^2)`` over the batch, antennas and channel uses, i.e. unit average
power per symbol per antenna (the PHY then scales that to its DAC back-off). In training ``p`` is the
batch's value (differentiable, part of the transmitter's local autograd); a running average is kept
and used in eval mode, where the layer is exactly linear (so it folds into an ``nn.Linear``).

Normalisation after combining (``normalize=True``): a BatchNorm1d on ``z`` at the receiver, as in
the paper; it absorbs the unknown channel gain. Otherwise a bias is added.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from hil.ota.link import OTALink


#: training-time transmit-power normalisation of an OTA layer (see OTALinear)
POWER_MODES = ("batch", "sample")

class OTALinear(nn.Module):
    """A fully connected layer computed over the air (see [Note: OTA layer parameterisation]).

    Args:
        in_features: input size (real).
        out_features: output size (real).
        n_tx: transmit antennas.
        n_rx: receive antennas.
        channel_uses: K, channel uses per input vector.
        link: the :class:`OTALink`; None computes ``H s`` in process with ``channel`` (default the
            identity; needs n_tx == n_rx), no noise: the digital twin.
        normalize: BatchNorm1d after combining (else a bias).
        power: transmit-power normalisation in training, ``"batch"`` (the RMS of the whole batch's
            symbols) or ``"sample"`` (each vector's own RMS; no batch statistic, so a batch split in
            micro-batches gives the same symbols). Eval mode divides by the running power either way.
        power_momentum: momentum of the running transmit-power estimate used in eval mode.

    Shapes: input float32 ``[B, in_features]`` -> output float32 ``[B, out_features]``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        n_tx: int,
        n_rx: int,
        channel_uses: int,
        link: OTALink | None = None,
        normalize: bool = True,
        power_momentum: float = 0.1,
        channel: np.ndarray | None = None,
        power: str = "batch",
    ):
        super().__init__()
        if power not in POWER_MODES:
            raise ValueError(f"OTALinear: power must be one of {POWER_MODES}, got {power!r}")
        self.power = power
        for name, v in (("in_features", in_features), ("out_features", out_features), ("n_tx", n_tx), ("n_rx", n_rx), ("channel_uses", channel_uses)):
            if int(v) < 1:
                raise ValueError(f"OTALinear: {name} must be >= 1, got {v}")
        if link is not None and (link.n_tx != n_tx or link.n_rx != n_rx):
            raise ValueError(
                f"OTALinear: layer is {n_tx}x{n_rx} (n_tx x n_rx) but the link is {link.n_tx}x{link.n_rx}; "
                "make the layer's antennas match the radio's"
            )
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.n_tx, self.n_rx, self.channel_uses = int(n_tx), int(n_rx), int(channel_uses)
        self.link = link
        k = self.channel_uses
        # complex parameters stored as (re, im) in the last axis; init keeps E|s|^2 ~ |a|^2 / in
        self.precoder = nn.Parameter(torch.randn(k, n_tx, in_features, 2) / math.sqrt(2 * in_features))
        self.combiner = nn.Parameter(torch.randn(k, n_rx, out_features, 2) / math.sqrt(2 * n_rx * k))
        self.register_buffer("running_power", torch.ones(()))
        self.power_momentum = float(power_momentum)
        self.norm = nn.BatchNorm1d(out_features) if normalize else None
        self.bias = None if normalize else nn.Parameter(torch.zeros(out_features))
        if channel is None:
            if link is None and n_tx != n_rx:
                raise ValueError("OTALinear without a link needs channel= when n_tx != n_rx")
            channel = np.eye(n_rx, n_tx) if link is None else None
        self.register_buffer(
            "twin_channel", None if channel is None else torch.as_tensor(np.asarray(channel), dtype=torch.complex64)
        )

    # -- pieces -----------------------------------------------------------------------------
    def precoder_matrix(self) -> torch.Tensor:
        """complex64 ``[K, n_tx, in_features]``."""
        return torch.view_as_complex(self.precoder)

    def combiner_matrix(self) -> torch.Tensor:
        """complex64 ``[K, n_rx, out_features]``."""
        return torch.view_as_complex(self.combiner)

    def precode(self, a: torch.Tensor) -> torch.Tensor:
        """Transmitter: real ``[B, in]`` -> power-normalised complex symbols ``[B, n_tx, K]``."""
        if a.dim() != 2 or a.shape[1] != self.in_features:
            raise ValueError(f"OTALinear: expected input [B, {self.in_features}], got {tuple(a.shape)}")
        s = torch.einsum("ktj,bj->btk", self.precoder_matrix(), a.to(torch.complex64))
        if self.training:
            if self.power == "sample":
                p = torch.sqrt(torch.mean(s.real**2 + s.imag**2, dim=(1, 2), keepdim=True) + 1e-12)
            else:
                p = torch.sqrt(torch.mean(s.real**2 + s.imag**2) + 1e-12)
            with torch.no_grad():
                m = self.power_momentum
                self.running_power.mul_(1 - m).add_(m * p.detach().mean())
        else:
            p = self.running_power
        return s / p

    def combine(self, y: torch.Tensor) -> torch.Tensor:
        """Receiver: complex ``[B, n_rx, K]`` -> real ``[B, out]`` (combining, then normalisation)."""
        z = torch.einsum("kro,brk->bo", self.combiner_matrix().conj(), y).real
        if self.norm is not None:
            return self.norm(z)
        return z + self.bias

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        s = self.precode(a)
        if self.link is not None:
            y = self.link(s)
        else:
            y = torch.einsum("rt,btk->brk", self.twin_channel, s)
        return self.combine(y)

    # -- the equivalent digital layer ------------------------------------------------------
    def effective_weight(self, channel: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``W = Re(sum_k C_k^H H P_k) / p`` (eval-mode power), float32 ``[out, in]``."""
        h = torch.as_tensor(np.asarray(channel), dtype=torch.complex64)
        w = torch.einsum("kro,rt,ktj->oj", self.combiner_matrix().conj(), h, self.precoder_matrix()).real
        return (w / self.running_power).detach()

    def to_linear(self, channel: np.ndarray | torch.Tensor) -> nn.Module:
        """An ordinary module computing this layer (eval mode, no noise) over ``channel``."""
        lin = nn.Linear(self.in_features, self.out_features, bias=True)
        with torch.no_grad():
            lin.weight.copy_(self.effective_weight(channel))
            if self.bias is None:
                lin.bias.zero_()
            else:
                lin.bias.copy_(self.bias)
        if self.norm is None:
            return lin
        bn = nn.BatchNorm1d(self.out_features)
        bn.load_state_dict(self.norm.state_dict())
        return nn.Sequential(lin, bn).eval()

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, n_tx={self.n_tx}, "
            f"n_rx={self.n_rx}, channel_uses={self.channel_uses}, "
            f"gradient_mode={None if self.link is None else self.link.gradient_mode}"
        )


class OTAConv2d(nn.Module):
    """A 2-D convolution whose channel mixing runs over the air.

    Every receptive field (``in_channels x kernel x kernel`` values at one output position) is one
    activation vector through an :class:`OTALinear` to ``out_channels``: all positions of all images of
    the batch travel in one burst. ``kernel_size=1`` is pure channel mixing; larger kernels send the
    whole convolution over the air. Normalisation after combining is a BatchNorm over output channels.

    Shapes: float32 ``[B, in_channels, H, W]`` -> ``[B, out_channels, H', W']``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        n_tx: int,
        n_rx: int,
        channel_uses: int,
        link: OTALink | None = None,
        stride: int = 1,
        padding: int = 0,
        normalize: bool = True,
        channel: np.ndarray | None = None,
        power: str = "batch",
    ):
        super().__init__()
        if kernel_size < 1 or stride < 1 or padding < 0:
            raise ValueError(f"OTAConv2d: bad kernel_size={kernel_size}, stride={stride}, padding={padding}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)
        self.ota = OTALinear(
            in_channels * kernel_size * kernel_size, out_channels, n_tx, n_rx, channel_uses,
            link=link, normalize=normalize, channel=channel, power=power,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"OTAConv2d: expected [B, {self.in_channels}, H, W], got {tuple(x.shape)}")
        b, _, h, w = x.shape
        k, st, pd = self.kernel_size, self.stride, self.padding
        ho, wo = (h + 2 * pd - k) // st + 1, (w + 2 * pd - k) // st + 1
        cols = nn.functional.unfold(x, k, padding=pd, stride=st)  # [B, C*k*k, L]
        v = cols.transpose(1, 2).reshape(b * ho * wo, -1)  # [B*L, C*k*k]
        z = self.ota(v)  # [B*L, out]
        return z.reshape(b, ho * wo, self.out_channels).transpose(1, 2).reshape(b, self.out_channels, ho, wo)

    def to_conv(self, channel: np.ndarray | torch.Tensor) -> nn.Module:
        """An ordinary Conv2d (+ BatchNorm2d) computing this layer (eval mode, no noise) over ``channel``."""
        k = self.kernel_size
        conv = nn.Conv2d(self.in_channels, self.out_channels, k, stride=self.stride, padding=self.padding)
        with torch.no_grad():
            conv.weight.copy_(self.ota.effective_weight(channel).reshape(self.out_channels, self.in_channels, k, k))
            if self.ota.bias is None:
                conv.bias.zero_()
            else:
                conv.bias.copy_(self.ota.bias)
        if self.ota.norm is None:
            return conv
        bn = nn.BatchNorm2d(self.out_channels)
        bn.load_state_dict(self.ota.norm.state_dict())
        return nn.Sequential(conv, bn).eval()
