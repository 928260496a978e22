"""FLOP counting: one definition for the whole package, torch's ``torch.utils.flop_counter``.

Placement profiles (``hil.split.trace.profile_model``, per layer of one forward pass), the BAIM task
profiles (``hil.baim.deploy``) and BAIM's training cost (forward + backward of an epoch) all count
with :func:`count_flops`.

[Note: FLOP counts]
``FlopCounterMode`` counts the operations torch has formulas for: matrix products (``mm``,
``addmm``, ``bmm``), convolutions, attention, and their backward passes, a multiply-add counting 2
FLOPs, as in most split-DNN papers. Bias additions, element-wise ops (ReLU, residual adds), normalisation
and pooling count 0: they are a small part of a network's work, and counting them by hand rules
would give a second definition. So a conv layer ``Conv2d(cin, cout, k)`` with an output of ``n``
elements costs ``2 * n * cin / groups * k * k``, a ``Linear(i, o)`` on a batch of ``B`` costs
``2 * B * i * o``, a ReLU costs 0. Placement of hand-written profile JSON (torch-free) takes the
``flops`` given there as they are.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Sequence


@dataclass
class FlopCount:
    """The total of a :func:`count_flops` block, set when the block exits."""

    total: int = 0


@contextlib.contextmanager
def count_flops(enabled: bool = True) -> Iterator[FlopCount]:
    """Count the FLOPs of the torch operations run inside the block (see [Note: FLOP counts]).

    ``with count_flops() as c: ...`` then ``c.total``; the total is also set when the block raises.
    With ``enabled=False`` nothing is counted (``c.total`` stays 0) and nothing slows down.
    """
    count = FlopCount()
    if not enabled:
        yield count
        return
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    try:
        with counter:
            yield count
    finally:
        count.total = int(counter.get_total_flops())


def module_flops(module, input_shape: Sequence[int]) -> int:
    """FLOPs of one forward pass of ``module`` on a zero input of ``input_shape`` (no gradients)."""
    import torch

    x = torch.zeros(tuple(int(s) for s in input_shape))
    with torch.no_grad(), count_flops() as c:
        module(x)
    return c.total
