"""Datasets, offline: scikit-learn's digits (ships with scikit-learn), and MNIST, Fashion-MNIST and
CIFAR-10 from a local folder in their standard file formats.

- MNIST / Fashion-MNIST: the IDX files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally ``.gz``; looked for in
  ``path``, ``path/raw``, ``path/MNIST/raw`` and ``path/FashionMNIST/raw`` (torchvision's layout).
- CIFAR-10: the binary version (``data_batch_1.bin`` .. ``data_batch_5.bin``, ``test_batch.bin``:
  records of 1 label byte + 3072 pixel bytes) or the python version (``data_batch_1`` .. ``test_batch``,
  read with an unpickler that admits only numpy arrays and builtins), in ``path`` or its
  ``cifar-10-batches-bin`` / ``cifar-10-batches-py`` subfolder.

Every loader returns a :class:`Dataset`: float32 images ``[N, C, H, W]`` standardised with the training
split's per-channel mean and std, int64 labels ``[N]``.

[Note: a low-level data module]
Training (``hil.train``), placement and JMSNAS (``hil.split``) and the cloud-edge model (``hil.baim``)
all read their images here, so none of them imports another for its data. Importing this module does
not import torch: :func:`digits_arrays` (plain numpy, what placement and BAIM use) works without it;
only building a :class:`Dataset` (torch tensors) imports torch.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hil.errors import ConfigError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Dataset:
    """x_train float32 [N, C, H, W], y_train int64 [N], x_test, y_test likewise; classes: count."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]


def _standardise(name: str, xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, limit_train: int, limit_test: int) -> Dataset:
    import torch

    if limit_train:
        xtr, ytr = xtr[:limit_train], ytr[:limit_train]
    if limit_test:
        xte, yte = xte[:limit_test], yte[:limit_test]
    xtr = xtr.astype(np.float32)
    xte = xte.astype(np.float32)
    mean = xtr.mean(axis=(0, 2, 3), keepdims=True)
    std = xtr.std(axis=(0, 2, 3), keepdims=True) + 1e-6
    classes = int(max(ytr.max(initial=0), yte.max(initial=0))) + 1
    return Dataset(
        name,
        torch.from_numpy((xtr - mean) / std),
        torch.from_numpy(ytr.astype(np.int64)),
        torch.from_numpy((xte - mean) / std),
        torch.from_numpy(yte.astype(np.int64)),
        classes,
    )


def load_digits(test_fraction: float = 0.2, seed: int = 0, limit_train: int = 0, limit_test: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits (1797 images, 10 classes), split at random with ``seed``."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    pixels, y = digits_arrays()
    x = pixels.reshape(-1, 1, 8, 8)
    idx = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    te, tr = idx[:n_test], idx[n_test:]
    return _standardise("digits", x[tr], y[tr], x[te], y[te], limit_train, limit_test)


# ----------------------------------------------------------------------------- IDX (MNIST)
def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a numpy array of its declared shape."""
    p = Path(path)
    raw = p.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ConfigError(f"{p}: not an IDX file (bad magic {raw[:4]!r})")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    code, ndim = raw[2], raw[3]
    if code not in dtypes:
        raise ConfigError(f"{p}: unknown IDX data type 0x{code:02x}")
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dt = np.dtype(dtypes[code])
    n = int(np.prod(dims)) if dims else 0
    body = raw[4 + 4 * ndim :]
    if len(body) != n * dt.itemsize:
        raise ConfigError(f"{p}: IDX header says {dims} ({n * dt.itemsize} bytes) but the body has {len(body)} bytes")
    return np.frombuffer(body, dt).reshape(dims)


def _find(folder: Path, names: list[str], subdirs: list[str]) -> Path:
    for sub in subdirs:
        for name in names:
            for cand in (folder / sub / name, folder / sub / (name + ".gz")):
                if cand.is_file():
                    return cand
    raise ConfigError(f"{folder}: none of {names} (or .gz) found in {[str(folder / s) for s in subdirs]}")


def load_mnist(path: str | Path, limit_train: int = 0, limit_test: int = 0, name: str = "mnist") -> Dataset:
    """MNIST or Fashion-MNIST (same format) from IDX files under ``path``."""
    folder = Path(path)
    subs = ["", "raw", "MNIST/raw", "FashionMNIST/raw"]
    xtr = read_idx(_find(folder, ["train-images-idx3-ubyte", "train-images.idx3-ubyte"], subs))
    ytr = read_idx(_find(folder, ["train-labels-idx1-ubyte", "train-labels.idx1-ubyte"], subs))
    xte = read_idx(_find(folder, ["t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"], subs))
    yte = read_idx(_find(folder, ["t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"], subs))
    for x, y, split in ((xtr, ytr, "train"), (xte, yte, "t10k")):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ConfigError(f"{folder}: {split} images {x.shape} and labels {y.shape} do not match")
    return _standardise(name, xtr[:, None] / 255.0, ytr, xte[:, None] / 255.0, yte, limit_train, limit_test)


# ----------------------------------------------------------------------------- CIFAR-10
class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits numpy arrays and plain containers only: a CIFAR batch file cannot run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("builtins", "bytes"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise ConfigError(f"CIFAR batch file refers to {module}.{name}; only numpy arrays are accepted")


def _cifar_py(p: Path) -> tuple[np.ndarray, np.ndarray]:
    d = _NumpyOnlyUnpickler(io.BytesIO(p.read_bytes()), encoding="bytes").load()
    if not isinstance(d, dict):
        raise ConfigError(f"{p}: expected a dict, got {type(d).__name__}")
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    x = np.asarray(d["data"], np.uint8).reshape(-1, 3, 32, 32)
    y = np.asarray(d["labels"], np.int64)
    return x, y


def _cifar_bin(p: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.frombuffer(p.read_bytes(), np.uint8)
    if raw.size % 3073:
        raise ConfigError(f"{p}: size {raw.size} is not a multiple of 3073 (1 label + 3072 pixel bytes)")
    rec = raw.reshape(-1, 3073)
    return rec[:, 1:].reshape(-1, 3, 32, 32), rec[:, 0].astype(np.int64)


def load_cifar10(path: str | Path, limit_train: int = 0, limit_test: int = 0) -> Dataset:
    """CIFAR-10 from its binary or python batch files under ``path``."""
    folder = Path(path)
    for sub in ("", "cifar-10-batches-bin", "cifar-10-batches-py"):
        d = folder / sub
        if (d / "test_batch.bin").is_file():
            reader, suffix = _cifar_bin, ".bin"
        elif (d / "test_batch").is_file():
            reader, suffix = _cifar_py, ""
        else:
            continue
        train = [d / f"data_batch_{i}{suffix}" for i in range(1, 6) if (d / f"data_batch_{i}{suffix}").is_file()]
        if not train:
            raise ConfigError(f"{d}: test_batch found but no data_batch_N{suffix}")
        parts = [reader(p) for p in train]
        xtr = np.concatenate([p[0] for p in parts])
        ytr = np.concatenate([p[1] for p in parts])
        xte, yte = reader(d / f"test_batch{suffix}")
        return _standardise("cifar10", xtr / 255.0, ytr, xte / 255.0, yte, limit_train, limit_test)
    raise ConfigError(f"{folder}: no CIFAR-10 files (test_batch.bin or test_batch) in it or its cifar-10-batches-* folder")


def load_dataset(name: str, path: str = "", test_fraction: float = 0.2, seed: int = 0, limit_train: int = 0, limit_test: int = 0) -> Dataset:
    """Load a dataset by name ("digits", "mnist", "fashion_mnist", "cifar10")."""
    if name == "digits":
        return load_digits(test_fraction, seed, limit_train, limit_test)
    if name in ("mnist", "fashion_mnist"):
        return load_mnist(path, limit_train, limit_test, name=name)
    if name == "cifar10":
        return load_cifar10(path, limit_train, limit_test)
    raise ConfigError(f"unknown dataset {name!r}; known: digits, mnist, fashion_mnist, cifar10")


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as plain arrays, unsplit and unstandardised (the one digits reader).

    Returns:
        ``x`` float32 ``[1797, 64]`` with pixels in [0, 1] (raw 0..16 divided by 16, exact), and
        ``y`` int64 ``[1797]`` labels 0..9, in scikit-learn's order. Fresh copies on every call.
    """
    from sklearn.datasets import load_digits as _sk

    d = _sk()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)
