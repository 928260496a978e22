"""Dataset loaders on tiny files written by the tests in the standard formats."""

import gzip
import pickle
import struct

import numpy as np
import pytest

from hil.errors import ConfigError
from hil.data import load_cifar10, load_dataset, load_digits, load_mnist, read_idx


def _idx(arr: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


def _write_mnist(folder, rng, gz: bool, n_train=12, n_test=5):
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for name, arr in files.items():
        data = _idx(arr)
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return files


@pytest.mark.parametrize("gz,sub", [(False, ""), (True, "MNIST/raw")])
def test_mnist_idx_loader(tmp_path, gz, sub):
    files = _write_mnist(tmp_path / sub if sub else tmp_path, np.random.default_rng(0), gz)
    ds = load_mnist(tmp_path)
    assert ds.x_train.shape == (12, 1, 28, 28) and ds.x_test.shape == (5, 1, 28, 28)
    assert ds.y_train.tolist() == files["train-labels-idx1-ubyte"].tolist()
    # standardised with the training statistics: pixel order kept
    raw = files["train-images-idx3-ubyte"][3].astype(np.float32) / 255
    got = ds.x_train[3, 0].numpy()
    assert np.corrcoef(raw.ravel(), got.ravel())[0, 1] > 0.9999
    assert abs(float(ds.x_train.mean())) < 1e-4


def test_idx_rejects_truncated_and_foreign_files(tmp_path):
    good = _idx(np.zeros((2, 3, 3)))
    (tmp_path / "short").write_bytes(good[:-1])
    with pytest.raises(ConfigError, match="body has"):
        read_idx(tmp_path / "short")
    (tmp_path / "png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ConfigError, match="not an IDX file"):
        read_idx(tmp_path / "png")
    with pytest.raises(ConfigError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path)


def test_cifar_binary_and_python_versions_agree(tmp_path):
    rng = np.random.default_rng(1)
    batches = {}
    for name in ["data_batch_1", "data_batch_2", "test_batch"]:
        y = rng.integers(0, 10, 4)
        x = rng.integers(0, 256, (4, 3072))
        batches[name] = (x, y)
        rec = np.concatenate([y[:, None], x], axis=1).astype(np.uint8)
        (tmp_path / "bin").mkdir(exist_ok=True)
        (tmp_path / "bin" / f"{name}.bin").write_bytes(rec.tobytes())
        (tmp_path / "py" / "cifar-10-batches-py").mkdir(parents=True, exist_ok=True)
        d = {b"data": x.astype(np.uint8), b"labels": [int(v) for v in y], b"batch_label": b"x"}
        (tmp_path / "py" / "cifar-10-batches-py" / name).write_bytes(pickle.dumps(d, protocol=2))
    a = load_cifar10(tmp_path / "bin")
    b = load_cifar10(tmp_path / "py")
    assert a.x_train.shape == (8, 3, 32, 32) and a.x_test.shape == (4, 3, 32, 32)
    assert a.y_train.tolist() == list(batches["data_batch_1"][1]) + list(batches["data_batch_2"][1])
    np.testing.assert_allclose(a.x_train.numpy(), b.x_train.numpy(), rtol=1e-6)
    assert a.y_test.tolist() == b.y_test.tolist()


def test_cifar_python_batch_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}))
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(ConfigError, match="only numpy arrays"):
        load_cifar10(tmp_path)


def test_digits_split_and_unknown_dataset():
    ds = load_digits(test_fraction=0.2, seed=0)
    assert ds.x_train.shape[1:] == (1, 8, 8) and ds.classes == 10
    assert len(ds.x_train) + len(ds.x_test) == 1797 and len(ds.x_test) == 359
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_dataset("imagenet")
