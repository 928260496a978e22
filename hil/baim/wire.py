"""Byte-exact wire format for model weights, and a meter of every transfer between cloud and edge.

[Note: measured bytes]
Traffic is not computed from parameter counts. Every transfer in a BAIM or FedAvg run goes through
:func:`pack_state`, which writes the tensors' raw little-endian bytes after a small JSON header, and the
receiver rebuilds the tensors with :func:`unpack_state` from those bytes only. :class:`TrafficMeter`
records ``len()`` of the byte strings that were actually handed over, so the accounting table counts
exactly what a socket would carry (header included).
"""

from __future__ import annotations

import json
import logging
import struct
from dataclasses import dataclass, field

import numpy as np
import torch

logger = logging.getLogger(__name__)

_MAGIC = b"BAIM1"
_DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64}


def pack_state(state: dict[str, torch.Tensor], meta: dict | None = None) -> bytes:
    """Serialise a state dict (and optional JSON metadata) to bytes.

    Layout: ``b"BAIM1"``, uint32 header length, UTF-8 JSON header ``{"meta", "tensors": [[name, dtype,
    shape], ...]}``, then each tensor's contiguous little-endian bytes in header order.

    Args:
        state: name -> tensor (float32, float64 or int64; any shape).
        meta: JSON-serialisable metadata (e.g. the architecture spec), or None.
    Returns:
        The byte string to transmit.
    """
    entries = []
    blobs = []
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"state[{name!r}] is {type(tensor).__name__}, expected a torch.Tensor")
        dtype = str(tensor.dtype).removeprefix("torch.")
        if dtype not in _DTYPES:
            raise TypeError(f"state[{name!r}] has dtype {tensor.dtype}; supported: {sorted(_DTYPES)}")
        arr = tensor.detach().cpu().contiguous().numpy()
        entries.append([name, dtype, list(arr.shape)])
        blobs.append(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
    header = json.dumps({"meta": meta, "tensors": entries}, separators=(",", ":")).encode()
    return _MAGIC + struct.pack("<I", len(header)) + header + b"".join(blobs)


def unpack_state(blob: bytes) -> tuple[dict[str, torch.Tensor], dict | None]:
    """Inverse of :func:`pack_state`: returns ``(state, meta)``; tensors are bit-identical copies."""
    if not isinstance(blob, (bytes, bytearray)) or blob[: len(_MAGIC)] != _MAGIC:
        raise ValueError("blob is not a BAIM weight message (bad magic); pass the bytes from pack_state")
    (hlen,) = struct.unpack_from("<I", blob, len(_MAGIC))
    start = len(_MAGIC) + 4
    header = json.loads(bytes(blob[start : start + hlen]).decode())
    offset = start + hlen
    state: dict[str, torch.Tensor] = {}
    for name, dtype, shape in header["tensors"]:
        np_dtype = np.dtype(dtype).newbyteorder("<")
        count = int(np.prod(shape, dtype=np.int64))
        arr = np.frombuffer(blob, dtype=np_dtype, count=count, offset=offset).reshape(shape)
        offset += count * np_dtype.itemsize
        state[name] = torch.from_numpy(arr.astype(np_dtype.newbyteorder("="), copy=True))
    if offset != len(blob):
        raise ValueError(f"blob has {len(blob) - offset} trailing bytes; it was truncated or corrupted")
    return state, header["meta"]


@dataclass(frozen=True)
class WireMessage:
    """One message: ``direction`` is ``"up"`` (edge -> cloud) or ``"down"`` (cloud -> edge)."""

    direction: str
    node: str
    what: str
    n_bytes: int
    seconds: float | None = None  # measured transfer time at the receiver (None: handed over in-process)


@dataclass
class TrafficMeter:
    """Records every byte string sent between cloud and edge nodes (see [Note: measured bytes])."""

    transfers: list[WireMessage] = field(default_factory=list)

    def send(self, direction: str, node: str, what: str, blob: bytes, seconds: float | None = None) -> bytes:
        """Record ``blob`` as sent (and its measured transfer time, if any); return it unchanged (the
        receiver gets exactly these bytes)."""
        self.record(direction, node, what, len(blob), seconds)
        return bytes(blob)

    def record(self, direction: str, node: str, what: str, n_bytes: int, seconds: float | None = None) -> None:
        """Record a message the receiver measured itself (``n_bytes = len()`` of what it got)."""
        if direction not in ("up", "down"):
            raise ValueError(f"direction={direction!r}; use 'up' (edge->cloud) or 'down' (cloud->edge)")
        self.transfers.append(WireMessage(direction, node, what, int(n_bytes), seconds))

    def total_bytes(self, direction: str) -> int:
        """Sum of the recorded message lengths in one direction, in bytes."""
        return sum(t.n_bytes for t in self.transfers if t.direction == direction)

    def total_seconds(self, direction: str) -> float | None:
        """Sum of the measured transfer times in one direction; None when none was measured."""
        times = [t.seconds for t in self.transfers if t.direction == direction and t.seconds is not None]
        return float(sum(times)) if times else None
