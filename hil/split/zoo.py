"""Model definitions for placement studies (torchvision is not a dependency).

``vgg16`` and ``resnet18`` follow Simonyan & Zisserman (2015, configuration D) and He et al. (2016)
as torchvision builds them (ImageNet heads, 224x224 input); ``digits_cnn`` is JMSNAS's search family
for 8x8 sklearn digits. ``build(name)`` returns ``(model, example_input_shape)``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

VGG16_CFG: tuple = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16(nn.Module):
    """VGG-16 (configuration D), 3x224x224 -> ``num_classes`` logits."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for v in VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, int(v), 3, padding=1), nn.ReLU(inplace=False)]
                c = int(v)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + idt)


class ResNet18(nn.Module):
    """ResNet-18, 3x224x224 -> ``num_classes`` logits."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        blocks = []
        c = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [BasicBlock(c, cout, stride), BasicBlock(cout, cout, 1)]
            c = cout
        self.layer = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.avgpool(self.layer(x))
        return self.fc(torch.flatten(x, 1))


class DigitsCNN(nn.Module):
    """JMSNAS family for 1x8x8 digits: blocks of (conv k x k, BN, ReLU) x depth, then a linear head.

    Args:
        widths: output channels of each block; the width at a cut sets the OTA channel uses.
        depths: convs per block.
        kernels: kernel size of each block (odd).
        pool_after: block indices after which a 2x2 max-pool halves the map.
    """

    def __init__(self, widths: Sequence[int], depths: Sequence[int], kernels: Sequence[int],
                 pool_after: Sequence[int] = (1,), num_classes: int = 10) -> None:
        super().__init__()
        if not (len(widths) == len(depths) == len(kernels)):
            raise ValueError(f"widths {widths}, depths {depths}, kernels {kernels} must have equal lengths")
        mods: list[nn.Module] = []
        c, hw = 1, 8
        for b, (w, d, k) in enumerate(zip(widths, depths, kernels)):
            for _ in range(int(d)):
                mods += [nn.Conv2d(c, int(w), int(k), padding=int(k) // 2), nn.BatchNorm2d(int(w)), nn.ReLU()]
                c = int(w)
            if b in pool_after:
                mods.append(nn.MaxPool2d(2))
                hw //= 2
        self.features = nn.Sequential(*mods)
        self.head = nn.Linear(c * hw * hw, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))


MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "vgg16": (VGG16, (1, 3, 224, 224)),
    "resnet18": (ResNet18, (1, 3, 224, 224)),
    "digits_cnn": (lambda: DigitsCNN((16, 32, 32), (1, 1, 1), (3, 3, 3)), (1, 1, 8, 8)),
}


def build(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    """``(model in eval mode, example input shape)`` for a model in :data:`MODELS`."""
    try:
        ctor, shape = MODELS[name]
    except KeyError as e:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}") from e
    return ctor().eval(), shape
