"""hil.flops: the one FLOP definition (torch's FlopCounterMode) for placement and BAIM."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hil.flops import count_flops, module_flops


def test_a_linear_layer_is_two_flops_per_multiply_add():
    assert module_flops(nn.Linear(64, 10), (3, 64)) == 2 * 3 * 64 * 10  # the bias is not counted
    assert module_flops(nn.Linear(64, 10, bias=False), (1, 64)) == 2 * 64 * 10


def test_a_conv_layer_and_free_element_wise_ops():
    conv = nn.Conv2d(2, 4, 3, padding=1)
    assert module_flops(conv, (1, 2, 8, 8)) == 2 * (4 * 8 * 8) * 2 * 9
    assert module_flops(nn.ReLU(), (1, 2, 8, 8)) == 0


def test_forward_and_backward_are_both_counted():
    lin = nn.Linear(8, 5, bias=False)
    x = torch.randn(4, 8)
    with count_flops() as c:
        lin(x).sum().backward()
    # forward 2*4*8*5; backward: the weight gradient only (x needs none), same size
    assert c.total == 2 * (2 * 4 * 8 * 5)


def test_disabled_counts_nothing_and_the_total_survives_an_exception():
    with count_flops(enabled=False) as c:
        torch.ones(3, 3) @ torch.ones(3, 3)
    assert c.total == 0
    with pytest.raises(RuntimeError, match="stop"):
        with count_flops() as c:
            torch.ones(2, 3) @ torch.ones(3, 4)
            raise RuntimeError("stop")
    assert c.total == 2 * 2 * 3 * 4
