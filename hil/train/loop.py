"""The training loop: epochs of Adam with cosine decay, evaluation, and a checkpoint after every epoch.

[Note: checkpoints and resume]
After each epoch the model, optimiser, scheduler, torch RNG states, the history so far and the
caller's ``extra_state()`` (the link's state, see hil.train.run) are written to ``<dir>/<tag>.pt``
with :func:`hil._io.atomic_write` (temporary file, fsync, rename, folder fsync), so a crash or Ctrl-C
at any moment leaves either the previous or the new checkpoint, never half of one. Checkpoints hold
only tensors and plain Python values and are read with ``torch.load(weights_only=True)``: nothing is
unpickled. ``train_model`` with ``resume=True`` continues from the last completed epoch: an
interrupted epoch is redone, a completed one is never lost nor counted twice. The in-process
``ideal`` channel (its Generator and current draw) is checkpointed through ``extra_state``, so a
resumed run is the uninterrupted one exactly; a channel behind a radio (loopback, zmq, pluto) is not:
a static one is the same after a restart (same seed), a memory channel continues from a fresh draw.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from hil._io import atomic_write
from hil.data import Dataset
from hil.errors import CheckpointError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochRecord:
    """One epoch: 1-based ``epoch``, mean training ``loss``, ``train_accuracy`` and ``test_accuracy`` in
    percent, wall ``seconds`` and ``frames`` (transceives of the link so far, 0 for digital)."""

    epoch: int
    loss: float
    train_accuracy: float
    test_accuracy: float
    seconds: float
    frames: int


def atomic_save(obj, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically (see [Note: checkpoints and resume])."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(path, lambda f: f.write(buf.getbuffer()))


def load_checkpoint(path: str | Path) -> dict | None:
    """The checkpoint at ``path`` or None when there is none (tensors and plain values only).

    Raises:
        CheckpointError: the file exists but cannot be read; the message names it and how to recover.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises OSError, RuntimeError, UnpicklingError, EOFError, ...
        raise CheckpointError(
            f"checkpoint {str(path)!r} is unreadable ({type(e).__name__}: {e}); it is truncated or corrupt: "
            "delete it to start that run afresh, or put back a copy of an earlier checkpoint"
        ) from e
    if not isinstance(ck, dict):
        raise CheckpointError(f"checkpoint {str(path)!r} holds a {type(ck).__name__}, not a checkpoint of this "
                              "package; delete it to start that run afresh")
    return ck


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    """Test accuracy in percent, in eval mode, one batch (= one frame over the air) per forward pass;
    a model with ``forward_many`` (:class:`hil.train.models.CutModel`) sends the frames of all
    batches as one double-buffered stream (the same outputs)."""
    model.eval()
    starts = range(0, len(x), batch_size)
    many = getattr(model, "forward_many", None)
    batches = [x[i : i + batch_size] for i in starts]
    outs = many(batches) if many is not None else [model(b) for b in batches]
    correct = sum(int((o.argmax(1) == y[i : i + batch_size]).sum()) for o, i in zip(outs, starts))
    return 100.0 * correct / max(len(x), 1)


def train_model(
    model: nn.Module,
    data: Dataset,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    checkpoint: str | Path | None = None,
    resume: bool = True,
    frames: Callable[[], int] = lambda: 0,
    on_step: Callable[[int, int, int], None] | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    extra_state: Callable[[], dict] | None = None,
) -> list[EpochRecord]:
    """Train ``model`` on ``data`` for ``epochs`` epochs (cross-entropy, Adam, cosine LR decay).

    Args:
        checkpoint: the checkpoint file; written after every epoch and read when ``resume``.
        frames: returns the link's training-frame counter of this process (recorded per epoch, added
            to the count before a resume).
        extra_state: returns more state to checkpoint after every epoch (key ``"extra"``; tensors and
            plain values only), e.g. the link's; the caller restores it before calling again.
        on_step: called as ``on_step(epoch, step, steps_per_epoch)`` after each step (progress bars).
        on_epoch: called with each finished :class:`EpochRecord`.

    Returns:
        the history, one :class:`EpochRecord` per epoch (including those done before a resume).
    """
    if epochs < 1 or batch_size < 2:
        raise ValueError(f"need epochs >= 1 and batch_size >= 2, got {epochs}, {batch_size}")
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    gen = torch.Generator().manual_seed(seed)
    history: list[EpochRecord] = []
    start = 0
    if checkpoint is not None and resume:
        ck = load_checkpoint(checkpoint)
        if ck is not None:
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            gen.set_state(ck["generator"])
            torch.set_rng_state(ck["torch_rng"])
            history = [EpochRecord(**r) for r in ck["history"]]
            start = int(ck["epoch"])
            log.info("resumed %s at epoch %d of %d", checkpoint, start, epochs)
    frame_base = history[-1].frames if history else 0  # frames of the runs before a resume
    n = len(data.x_train)
    steps = (n + batch_size - 1) // batch_size
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=gen)
        total_loss, correct, seen = 0.0, 0, 0
        for step in range(steps):
            idx = perm[step * batch_size : (step + 1) * batch_size]
            if len(idx) < 2:  # batch normalisation needs two samples
                continue
            xb, yb = data.x_train[idx], data.y_train[idx]
            out = model(xb)
            loss = nn.functional.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total_loss += float(loss.detach()) * len(idx)
            correct += int((out.argmax(1) == yb).sum())
            seen += len(idx)
            if on_step is not None:
                on_step(epoch + 1, step + 1, steps)
        sched.step()
        test_acc = evaluate(model, data.x_test, data.y_test, batch_size)
        rec = EpochRecord(
            epoch + 1, total_loss / max(seen, 1), 100.0 * correct / max(seen, 1), test_acc,
            time.perf_counter() - t0, frame_base + int(frames()),
        )
        history.append(rec)
        if checkpoint is not None:
            atomic_save(
                {
                    "epoch": epoch + 1,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "generator": gen.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "history": [asdict(r) for r in history],
                    "extra": extra_state() if extra_state is not None else {},
                },
                checkpoint,
            )
        if on_epoch is not None:
            on_epoch(rec)
    return history
