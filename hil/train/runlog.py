"""Run logging for ML tools: TensorBoard event files written through ``torch.utils.tensorboard``.

[Note: run logging]
``hil train --log-dir DIR`` writes one TensorBoard run per trained model, ``DIR/ota`` and
``DIR/digital`` (view with ``tensorboard --logdir DIR``). Scalars, by global step (``(epoch - 1) *
steps_per_epoch + step``, so a resumed run continues the curves where they stopped):

- per step: ``link/snr_db`` (the receiver's measured SNR of the step's forward burst),
  ``link/cfo_hz`` (its CFO estimate; PHY transports only), ``link/grad_cosine`` (cosine between the
  echoed reciprocity gradient and the exact ``H^H g``, only where the true channel is known: the
  in-process ``ideal`` transport, see :func:`hil.ota.link.watch_echo_cosine`), ``time/step_s``
  (wall time of the step, including the radio);
- per epoch (at the epoch's last step): ``train/loss``, ``train/accuracy``, ``test/accuracy`` (%),
  ``link/frames`` (training frames so far), ``time/epoch_s``.

The writer is optional (the ``log`` extra): without tensorboard, ``--log-dir`` is refused with a
ConfigError saying what to install, and without ``--log-dir`` nothing is imported.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from hil.errors import ConfigError


class RunLog:
    """One TensorBoard run (a folder of event files). ``None``-safe helpers: NaN values are skipped."""

    def __init__(self, log_dir: str | Path, run: str):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ConfigError("--log-dir needs tensorboard: pip install 'hil-ota[log]' (or pip install "
                              "tensorboard)") from e
        self.path = Path(log_dir) / run
        self._w = SummaryWriter(log_dir=str(self.path))
        self._t = time.perf_counter()

    def scalars(self, step: int, values: dict) -> None:
        """Log ``{tag: value}`` at ``step``; None and non-finite values are left out."""
        for tag, v in values.items():
            if v is not None and math.isfinite(float(v)):
                self._w.add_scalar(tag, float(v), int(step))

    def step_time(self) -> float:
        """Seconds since the previous call (or since the log was opened)."""
        now = time.perf_counter()
        dt, self._t = now - self._t, now
        return dt

    def epoch(self, step: int, rec) -> None:
        """Log an :class:`hil.train.loop.EpochRecord` at ``step``."""
        self.scalars(step, {"train/loss": rec.loss, "train/accuracy": rec.train_accuracy,
                            "test/accuracy": rec.test_accuracy, "link/frames": rec.frames,
                            "time/epoch_s": rec.seconds})
        self._w.flush()

    def close(self) -> None:
        self._w.close()
