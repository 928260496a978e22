"""Opening the over-the-air link of a training run: the transport and, for "zmq", the channel server.

- "ideal": :class:`hil.ota.IdealTransport` over the same ``hil.channel`` spec and Generator as the others
  (:func:`channel_spec`, :func:`hil.channel.link_generator`), in process, no PHY; the only one for
  gradient_mode "exact".
- "loopback", "zmq", "pluto": the radio opened by :func:`hil.radio.open.open_radio` from
  :func:`radio_spec` (for "zmq" it starts the channel server unless ``endpoint`` names a running one),
  through the PHY (:class:`hil.ota.transport.PhyTransport`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging


from hil.errors import ConfigError
from hil.ota.transport import IdealTransport, PhyTransport, Transport
from hil.radio.open import RadioSpec, open_radio
from hil.radio.pluto import BoardMismatch
from hil.train.config import OTAConfig

log = logging.getLogger(__name__)

#: activation vectors per burst assumed when the caller does not say (the default [train] batch_size)
DEFAULT_VECTORS_PER_BURST = 64
#: seconds one end of a split link waits for an armed burst: the other node is asked to send it at the same
#: time as this one to receive it, so the wait includes that node's work before it sends (on a loaded
#: machine, seconds); a node that fails is reported by the driver, which does not wait for this
SPLIT_WAIT_S = 60.0


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


def radio_spec(cfg: OTAConfig, seed: int | None = None,
               vectors_per_burst: int = DEFAULT_VECTORS_PER_BURST) -> RadioSpec:
    """The :class:`hil.radio.open.RadioSpec` of a radio transport (loopback, zmq, pluto).

    zmq: the server at ``endpoint``, or one started on ``server_config`` or on :func:`server_topology`;
    the wiring is the opener's default (the first link, ``edge -> server`` on the training topology).
    pluto: one board, TX cabled to its own RX, with the profile of the OTA layer's antenna count.
    """
    if cfg.transport == "loopback":
        return RadioSpec("loopback", channel={"n_tx": cfg.n_tx, "n_rx": cfg.n_rx, **channel_spec(cfg, vectors_per_burst)},
                         seed=int(cfg.channel_seed if seed is None else seed), sample_rate_hz=float(cfg.sample_rate_hz))
    if cfg.transport == "zmq":
        if cfg.endpoint:
            return RadioSpec("zmq", endpoint=cfg.endpoint)
        return RadioSpec("zmq", server_config=cfg.server_config or server_topology(cfg, vectors_per_burst))
    if cfg.transport == "pluto":
        if not cfg.uri:
            raise ConfigError("[ota] transport='pluto' needs uri= (e.g. 'ip:192.168.2.1')")
        profiles = {1: "pluto_1r1t", 2: "pluto_2r2t"}
        if cfg.n_tx != cfg.n_rx or cfg.n_tx not in profiles:
            raise ConfigError(f"[ota] transport='pluto' needs n_tx = n_rx = 1 (pluto_1r1t) or 2 (pluto_2r2t), "
                              f"got n_tx={cfg.n_tx}, n_rx={cfg.n_rx}")
        return RadioSpec("pluto", uri=cfg.uri, profile=profiles[cfg.n_tx])
    raise ConfigError(f"unknown transport {cfg.transport!r}; known: ideal, loopback, zmq, pluto")


def _in_config_terms(e: BoardMismatch, cfg: OTAConfig) -> BoardMismatch:
    """A board/profile mismatch restated as the [ota] antenna counts the board can run."""
    from hil.radio.pluto import PlutoRadio

    profiles = {1: "pluto_1r1t", 2: "pluto_2r2t"}
    name = profiles.get(cfg.n_tx, e.profile_name)
    n = min(e.board.n_rx, e.board.n_tx, 2)
    use = f"train with [ota] n_tx = n_rx = {n} (profile {profiles[n]})" if n in profiles else None
    why = e.board.misfit(PlutoRadio._as_profile(name), name, use=use) or str(e)
    return BoardMismatch(f"[ota] n_tx = n_rx = {cfg.n_tx}: {why}", e.board, name)


def open_transport(
    cfg: OTAConfig, seed: int | None = None, vectors_per_burst: int = DEFAULT_VECTORS_PER_BURST,
    halves: str = "both",
) -> tuple[Transport, contextlib.ExitStack]:
    """Open the link described by ``cfg``. Returns ``(transport, closer)``; call ``closer.close()``.

    ``vectors_per_burst``: activation vectors in one training burst (the batch size for an MLP);
    it sets the Gauss-Markov block of simulated radio channels to one burst (see :func:`channel_spec`).
    ``halves``: ``"tx"`` or ``"rx"`` opens one node's end of a ``zmq`` link (the transmit half of the
    forward wiring and the receive half of the reverse one, or the other way; see [Note: a link split
    between two nodes] in hil.ota.transport); its peer opens the other, on the running server ``endpoint``.
    Radio transports are opened by :func:`hil.radio.open.open_radio`; the closer closes the transport,
    the radio and what was started for it (the channel server). If the transport cannot be built,
    everything opened so far is closed before the error propagates.
    """
    with contextlib.ExitStack() as stack:
        if cfg.transport == "ideal":
            from hil.channel import link_generator

            # link 0 of the seed, as on the channel server: the same channel on every transport
            rng = link_generator(cfg.channel_seed if seed is None else seed)
            spec = {"n_tx": cfg.n_tx, "n_rx": cfg.n_rx, **channel_spec(cfg, vectors_per_burst)}
            spec.pop("cfo_hz", None)  # a CFO is the PHY's to correct; the ideal transport has none
            try:
                t: Transport = IdealTransport.from_spec(spec, rng, burst_samples=burst_samples(cfg, vectors_per_burst))
            except (ValueError, TypeError) as e:
                raise ConfigError(f"[ota] transport='ideal', channel spec {spec!r}: {e}") from e
        else:
            spec = radio_spec(cfg, seed, vectors_per_burst)
            if halves != "both":
                if spec.kind != "zmq" or spec.endpoint is None:
                    raise ConfigError(f"[ota] transport={cfg.transport!r}: only a zmq link on a running channel "
                                      "server (endpoint=) is opened in halves, one per node")
                spec = dataclasses.replace(spec, halves=halves, wait_s=SPLIT_WAIT_S)
            try:
                opened = stack.enter_context(open_radio(spec))
            except BoardMismatch as e:  # say it in the config's terms: which n_tx/n_rx the board can run
                raise _in_config_terms(e, cfg) from e
            t = PhyTransport(opened.radio, cfg.transport, {"sample_rate_hz": float(cfg.sample_rate_hz)},
                             track_phase=cfg.track_phase)
        stack.callback(t.close)
        return t, stack.pop_all()
