"""Opening the over-the-air link of a training run: the transport and, for "zmq", the channel server.

- "ideal": :class:`hil.ota.IdealTransport` over the same ``hil.channel`` spec and Generator as the others
  (:func:`channel_spec`, :func:`hil.channel.link_generator`), in process, no PHY; the only one for
  gradient_mode "exact".
- "loopback": :class:`hil.radio.loopback.LoopbackRadio` over the reciprocal channel pair of
  ``hil.channel.build_reciprocal_link``, through the PHY.
- "zmq": the ZMQ channel server (started here as ``python -m sim_fallback --config FILE`` unless
  ``endpoint`` names a running one), :class:`hil.radio.zmq.ZmqRadio` edge -> server, through the PHY.
- "pluto": :mod:`hil.radio.pluto` (a real board or the virtual Pluto at ``uri``), through the PHY.
"""

from __future__ import annotations

import logging

import numpy as np

from hil.errors import CaptureError, ConfigError
from hil.ota.transport import IdealTransport, PhyTransport, Transport
from hil.train.config import OTAConfig

log = logging.getLogger(__name__)

#: activation vectors per burst assumed when the caller does not say (the default [train] batch_size)
DEFAULT_VECTORS_PER_BURST = 64


def burst_samples(cfg: OTAConfig, vectors_per_burst: int = DEFAULT_VECTORS_PER_BURST) -> int:
    """Samples per antenna of one forward training burst: ``PhyLink.burst_samples(B, K)`` of the
    link's PHY (flat mode) for ``B = vectors_per_burst`` and ``K = channel_uses``."""
    from hil.phy.config import PhyConfig
    from hil.phy.frame import FrameLayout

    if vectors_per_burst < 1:
        raise ValueError(f"vectors_per_burst must be >= 1, got {vectors_per_burst}")
    phy = PhyConfig(n_tx=cfg.n_tx, n_rx=cfg.n_rx, mode="flat", sample_rate_hz=float(cfg.sample_rate_hz))
    return int(FrameLayout(phy, int(vectors_per_burst), int(cfg.channel_uses)).n_samples)


def channel_spec(cfg: OTAConfig, vectors_per_burst: int = DEFAULT_VECTORS_PER_BURST) -> dict:
    """The ``hil.channel`` spec of the link (see hil/channel/config.py).

    ``[ota] channel`` set: that spec ("replay:DIR[?opts]" as a dict, or a JSON object), as given.
    Otherwise flat Rayleigh, AWGN at ``snr_db`` (average over the fading), static or Gauss-Markov with
    ``rho`` *per training burst* (``block_samples`` = :func:`burst_samples`, the same meaning as on
    the ``ideal`` transport), optional random unequal TX/RX chain gains (an uncalibrated TDD pair).
    """
    if cfg.channel:
        return parse_channel_option(cfg.channel)
    spec: dict = {"fading": "rayleigh", "snr_db": float(cfg.snr_db), "sample_rate_hz": float(cfg.sample_rate_hz)}
    if cfg.cfo_hz:
        spec["cfo_hz"] = float(cfg.cfo_hz)
    if cfg.rho < 1.0:
        spec.update(time="gauss_markov", rho=float(cfg.rho), block_samples=burst_samples(cfg, vectors_per_burst))
    if cfg.chain_gain_std_db > 0 or cfg.chain_phase:
        spec["chain_gains"] = {"amplitude_db_std": float(cfg.chain_gain_std_db),
                               "phase_deg_max": 180.0 if cfg.chain_phase else 0.0}
    return spec


def parse_channel_option(text: str) -> dict:
    """``[ota] channel`` / ``hil train --channel``: "replay:DIR[?opts]" (a recording of ``hil capture``,
    see docs/capture.md) or a JSON object with ``hil.channel`` keys. Returns the spec as a dict."""
    text = str(text).strip()
    if text.startswith("replay:"):
        from hil.channel.replay import parse_replay_spec

        try:
            return parse_replay_spec(text)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"[ota] channel={text!r}: {e}") from e
    if text.startswith("{"):
        import json

        try:
            spec = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"[ota] channel={text!r} is not a valid JSON object: {e}") from e
        if isinstance(spec, dict):
            return spec
    raise ConfigError(f"[ota] channel={text!r}: expected 'replay:DIR' (hil capture --out DIR) or a JSON "
                      'object of hil.channel keys, e.g. \'{"fading": "rayleigh", "snr_db": 10}\'')


def server_topology(cfg: OTAConfig, vectors_per_burst: int = DEFAULT_VECTORS_PER_BURST) -> dict:
    """A two-node topology (``edge`` with n_tx antennas, ``server`` with n_rx) for the channel server."""
    return {
        "server": {"seed": int(cfg.channel_seed), "sample_rate_hz": float(cfg.sample_rate_hz)},
        "nodes": [{"name": "edge", "antennas": int(cfg.n_tx)}, {"name": "server", "antennas": int(cfg.n_rx)}],
        "links": [{"a": "edge", "b": "server", "channel": channel_spec(cfg, vectors_per_burst)}],
    }


def _close_quietly(*things) -> None:
    """Close what was opened before a failure; the failure is what the caller sees."""
    for t in things:
        if t is None:
            continue
        try:
            t.close()
        except Exception:  # noqa: BLE001
            log.exception("closing %r after a failed open", t)


class _Stopper:
    """Stops a :class:`sim_fallback.launch.ServerProcess` on ``close()``."""

    def __init__(self, server):
        self.server = server

    def close(self) -> None:
        self.server.stop()


class _OwnedTransport:
    """Closes the extra resources (the server process) with the transport."""

    def __init__(self, transport: Transport, *others):
        self.transport = transport
        self.others = others

    def close(self) -> None:
        try:
            self.transport.close()
        finally:
            for o in self.others:
                o.close()


def _phy_transport(radio, name: str, phy: dict, cfg: OTAConfig, *others) -> tuple[Transport, _OwnedTransport]:
    """A :class:`PhyTransport` over ``radio``; if it cannot be built, close the radio, then ``others``."""
    try:
        t = PhyTransport(radio, name, phy, track_phase=cfg.track_phase)
    except BaseException:
        _close_quietly(radio, *others)  # the radio first: it may talk to the server in ``others``
        raise
    return t, _OwnedTransport(t, *others)


def open_transport(
    cfg: OTAConfig, seed: int | None = None, vectors_per_burst: int = DEFAULT_VECTORS_PER_BURST
) -> tuple[Transport, _OwnedTransport]:
    """Open the link described by ``cfg``. Returns ``(transport, closer)``; call ``closer.close()``.

    ``vectors_per_burst``: activation vectors in one training burst (the batch size for an MLP);
    it sets the Gauss-Markov block of simulated radio channels to one burst (see :func:`channel_spec`).
    If the transport cannot be built, everything opened so far (radio, server) is closed before the
    error propagates.
    """
    from hil.channel import link_generator

    # link 0 of the seed, as on the channel server: the same channel on every transport
    rng = link_generator(cfg.channel_seed if seed is None else seed)
    phy = {"sample_rate_hz": float(cfg.sample_rate_hz)}
    if cfg.transport == "ideal":
        spec = {"n_tx": cfg.n_tx, "n_rx": cfg.n_rx, **channel_spec(cfg, vectors_per_burst)}
        spec.pop("cfo_hz", None)  # a CFO is the PHY's to correct; the ideal transport has none
        try:
            t = IdealTransport.from_spec(spec, rng, burst_samples=burst_samples(cfg, vectors_per_burst))
        except (ValueError, TypeError) as e:
            raise ConfigError(f"[ota] transport='ideal', channel spec {spec!r}: {e}") from e
        return t, _OwnedTransport(t)
    if cfg.transport == "loopback":
        try:
            from hil.channel import build_reciprocal_link
        except ImportError as e:
            raise ConfigError("transport 'loopback' needs hil.channel.build_reciprocal_link (not available)") from e
        from hil.radio.loopback import LoopbackRadio

        spec = {"n_tx": cfg.n_tx, "n_rx": cfg.n_rx, **channel_spec(cfg, vectors_per_burst)}
        try:
            pair = build_reciprocal_link(spec, rng)
        except (ValueError, TypeError, CaptureError) as e:  # CaptureError: replay:DIR is not a recording
            raise ConfigError(f"[ota] channel spec {spec!r}: {e}") from e
        radio = LoopbackRadio(pair.forward, pair.reverse, sample_rate_hz=cfg.sample_rate_hz)
        return _phy_transport(radio, "loopback", phy, cfg)
    if cfg.transport == "zmq":
        from hil.radio.zmq import ZmqRadio

        server = None
        if cfg.endpoint:
            control: str | dict = cfg.endpoint
        else:
            topo: dict | str = cfg.server_config or server_topology(cfg, vectors_per_burst)
            from sim_fallback.launch import start_server  # the server helper's launcher (issue 2)

            server = _Stopper(start_server(topo, log_level="WARNING"))
            control = server.server.info
        try:
            radio = ZmqRadio(control, "edge", "server")
        except BaseException:
            _close_quietly(server)
            raise
        return _phy_transport(radio, "zmq", phy, cfg, *([server] if server else []))
    if cfg.transport == "pluto":
        try:
            from hil.radio.pluto import PlutoRadio  # type: ignore[import-not-found]
        except ImportError as e:
            raise ConfigError("transport 'pluto' needs hil.radio.pluto (pyadi-iio); not available here") from e
        if not cfg.uri:
            raise ConfigError("[ota] transport='pluto' needs uri= (e.g. 'ip:192.168.2.1')")
        # one board, TX cabled to its own RX: the profile with the OTA layer's antenna count
        profiles = {1: "pluto_1r1t", 2: "pluto_2r2t"}
        if cfg.n_tx != cfg.n_rx or cfg.n_tx not in profiles:
            raise ConfigError(f"[ota] transport='pluto' needs n_tx = n_rx = 1 (pluto_1r1t) or 2 (pluto_2r2t), "
                              f"got n_tx={cfg.n_tx}, n_rx={cfg.n_rx}")
        from hil.radio.pluto import BoardMismatch

        name = profiles[cfg.n_tx]
        try:
            radio = PlutoRadio(cfg.uri, name)
        except BoardMismatch as e:  # say it in the config's terms: which n_tx/n_rx the board can run
            n = min(e.board.n_rx, e.board.n_tx, 2)
            use = f"train with [ota] n_tx = n_rx = {n} (profile {profiles[n]})" if n in profiles else None
            why = e.board.misfit(PlutoRadio._as_profile(name), name, use=use) or str(e)
            raise BoardMismatch(f"[ota] n_tx = n_rx = {cfg.n_tx}: {why}", e.board, name) from e
        return _phy_transport(radio, "pluto", phy, cfg)
    raise ConfigError(f"unknown transport {cfg.transport!r}; known: ideal, loopback, zmq, pluto")
