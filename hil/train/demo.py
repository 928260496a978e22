"""``hil demo``: the packaged demo config and its quick variant."""

from __future__ import annotations

import logging

from hil.train.config import RunConfig

log = logging.getLogger(__name__)

#: the transports ``hil demo`` offers (``exact`` gradients need "ideal")
DEMO_TRANSPORTS = ("zmq", "loopback", "ideal")


def check_transport(transport: str) -> str:
    """``transport`` if ``hil demo`` offers it; ValueError naming the choices otherwise."""
    if transport not in DEMO_TRANSPORTS:
        raise ValueError(f"demo transport must be one of {list(DEMO_TRANSPORTS)}, got {transport!r}")
    return transport


def demo_seeds(quick: bool) -> int:
    """Seeds of ``hil demo``: 5 (a mean and an interval worth reading), 2 with ``--quick``."""
    return 2 if quick else 5


def demo_config(cfg: RunConfig, quick: bool, transport: str, gradient_mode: str, snr_db: float) -> RunConfig:
    """The demo config with the user's choices; ``quick`` shortens training and the sweeps (< 30 s)."""
    cfg = cfg.replace(ota={"transport": transport, "gradient_mode": gradient_mode, "snr_db": float(snr_db)})
    if quick:
        cfg = cfg.replace(
            train={"epochs": 5},
            sweep={"snr_db": (0.0, 20.0), "rho": (1.0, 0.9), "channel_uses": (2, 16), "epochs": 2},
        )
    return cfg
