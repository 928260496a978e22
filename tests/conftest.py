"""Suite-wide test settings. Parts add their own fixtures in their folders' conftest.py."""

import os

# Two shared cores: one thread per test process keeps timings sane and avoids oversubscription.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # torch is a dependency, but keep collection working without it
    pass


def pytest_addoption(parser):
    """``--radio-uri``: run tests/hardware on a real board at this libiio URI."""
    parser.addoption(
        "--radio-uri",
        default=None,
        help="libiio URI of a real Pluto/AD9361 board (e.g. ip:192.168.2.1); tests/hardware is skipped without it",
    )
