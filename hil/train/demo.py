"""``hil demo``: the packaged demo config, its quick variant, and the transport fallback."""

from __future__ import annotations

import importlib
import logging

from hil.train.config import RunConfig

log = logging.getLogger(__name__)

#: what each transport needs importable
_NEEDS = {
    "zmq": ("hil.phy", "hil.radio.zmq", "sim_fallback.channel_server", "hil.channel"),
    "loopback": ("hil.phy", "hil.channel"),
    "ideal": (),
}
_FALLBACK = {"zmq": "loopback", "loopback": "ideal", "ideal": None}


def _missing(transport: str) -> str | None:
    for mod in _NEEDS.get(transport, ()):
        try:
            m = importlib.import_module(mod)
        except ImportError as e:
            return f"cannot import {mod}: {e}"
        if mod == "hil.phy" and not hasattr(m, "PhyLink"):
            return "hil.phy has no PhyLink yet"
        if mod == "hil.channel" and not hasattr(m, "build_reciprocal_link"):
            return "hil.channel has no build_reciprocal_link yet"
    return None


def resolve_transport(transport: str) -> tuple[str, str]:
    """The transport to use: ``transport`` if what it needs is importable, else the next fallback
    (zmq -> loopback -> ideal). Returns ``(transport, reason for falling back or "")``."""
    if transport not in _NEEDS:
        raise ValueError(f"demo transport must be one of {sorted(_NEEDS)}, got {transport!r}")
    reasons = []
    t: str | None = transport
    while t is not None:
        why = _missing(t)
        if why is None:
            return t, "; ".join(reasons)
        reasons.append(f"{t}: {why}")
        t = _FALLBACK[t]
    raise RuntimeError("unreachable: the ideal transport needs nothing")  # pragma: no cover


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
