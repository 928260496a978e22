"""Build channel models from plain dicts (as parsed from TOML).

Keys (all optional; units in the names; see docs/channels.md for the full table):

``n_tx``, ``n_rx`` (default 1; ``n_a``/``n_b`` for a reciprocal link), ``sample_rate_hz`` (1e6);
fading: ``fading`` ("none", "rayleigh", "rician"), ``k_factor_db``, ``los_aod_deg``, ``los_aoa_deg``,
``corr_tx``, ``corr_rx`` (coefficient or matrix; a complex matrix as ``{real=[[..]], imag=[[..]]}``);
multipath: ``tdl`` (profile name such as "TDL-A", or ``{delays_s=[..], powers_db=[..]}``),
``delay_spread_s``; time: ``time`` ("static", "block", "gauss_markov", "doppler"; inferred when
absent), ``block_samples``, ``rho``, ``doppler_hz``, ``n_sinusoids``, ``hold_samples``;
noise: ``snr_db`` or ``noise_power``, ``signal_power``, ``snr_reference`` ("auto", "rx", "tx"),
``noise`` ("pool", "exact"), ``active_threshold_db``; impairments: ``delay_samples``, ``sco_ppm``,
``cfo_hz``, ``cfo_phase_rad``, ``phase_noise`` ({linewidth_hz} or {psd_dbc_hz, psd_offset_hz}),
``iq_imbalance`` ({amplitude_db, phase_deg}), ``dc_offset`` (number, [re, im] or {real, imag}),
``clip`` (level or {level, mode}), ``quantization`` (bits or {bits, full_scale});
reciprocal link only: ``t_a``, ``r_a``, ``t_b``, ``r_b`` (chain gains) or ``chain_gains``
({amplitude_db_std, phase_deg_max}: random gains drawn from the generator).

Time inference when ``time`` is absent: ``rho`` -> gauss_markov (needs ``block_samples``);
``doppler_hz`` with ``block_samples`` -> gauss_markov with ``rho = J0(2 pi f_d block_samples / f_s)``;
``doppler_hz`` alone -> continuous doppler; ``block_samples`` alone -> independent blocks; else static.

Stage order: fading or TDL -> fractional delay -> sampling clock offset -> CFO -> phase noise ->
AWGN -> IQ imbalance -> DC offset -> clipping -> quantization (the receiver chain after the air).
``snr_reference="auto"`` means "tx" (average SNR over the fading) when a fading or TDL stage is
present and "rx" (SNR measured at the noise stage's input) otherwise; see [Note: SNR reference]
in ``hil.channel.awgn``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hil.channel.awgn import AWGN, Chain
from hil.channel.base import ChannelModel
from hil.channel.fading import FixedMatrix, FlatFading
from hil.channel.impairments import (
    CarrierFrequencyOffset,
    Clipper,
    DCOffset,
    FractionalDelay,
    IQImbalance,
    Passthrough,
    PhaseNoise,
    Quantizer,
    SamplingClockOffset,
)
from hil.channel.memory import KINDS, TimeBehaviour
from hil.channel.reciprocity import ReciprocalLink
from hil.channel.tdl import TDL

CHANNEL_KEYS = (
    "n_tx", "n_rx", "sample_rate_hz",
    "fading", "k_factor_db", "los_aod_deg", "los_aoa_deg", "corr_tx", "corr_rx",
    "tdl", "delay_spread_s",
    "time", "block_samples", "rho", "doppler_hz", "n_sinusoids", "hold_samples",
    "snr_db", "noise_power", "signal_power", "snr_reference", "noise", "active_threshold_db",
    "delay_samples", "sco_ppm", "cfo_hz", "cfo_phase_rad", "phase_noise", "iq_imbalance",
    "dc_offset", "clip", "quantization",
)
LINK_KEYS = ("n_a", "n_b", "t_a", "r_a", "t_b", "r_b", "chain_gains")
FADING_KINDS = ("none", "rayleigh", "rician")
_SUBKEYS = {
    "phase_noise": ("linewidth_hz", "psd_dbc_hz", "psd_offset_hz"),
    "iq_imbalance": ("amplitude_db", "phase_deg"),
    "clip": ("level", "mode"),
    "quantization": ("bits", "full_scale"),
    "tdl": ("delays_s", "powers_db"),
    "chain_gains": ("amplitude_db_std", "phase_deg_max"),
}


def _check_keys(spec: dict, valid: tuple[str, ...], where: str) -> None:
    if not isinstance(spec, dict):
        raise TypeError(f"{where} must be a dict (a TOML table), got {type(spec).__name__}")
    bad = [k for k in spec if k not in valid]
    if bad:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(map(repr, bad))}; valid keys: {', '.join(valid)}"
        )


def _sub(spec: dict, key: str, scalar_key: str | None = None) -> dict | None:
    v = spec.get(key)
    if v is None:
        return None
    if not isinstance(v, dict):
        if scalar_key is None:
            raise TypeError(f"channel key {key!r} must be a table with keys {_SUBKEYS[key]}")
        v = {scalar_key: v}
    _check_keys(v, _SUBKEYS[key], f"channel key {key!r}")
    return v


def _num(spec: dict, key: str, default=None, *, lo=None, positive=False):
    v = spec.get(key, default)
    if v is None:
        return None
    try:
        v = float(v)
    except (TypeError, ValueError) as e:
        raise TypeError(f"channel key {key!r} must be a number, got {spec.get(key)!r}") from e
    if not math.isfinite(v):
        raise ValueError(f"channel key {key!r} must be finite, got {v}")
    if positive and not v > 0:
        raise ValueError(f"channel key {key!r} must be > 0, got {v}")
    if lo is not None and v < lo:
        raise ValueError(f"channel key {key!r} must be >= {lo}, got {v}")
    return v


def _int(spec: dict, key: str, default=None, lo: int = 1):
    v = spec.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not float(v).is_integer():
        raise TypeError(f"channel key {key!r} must be an integer, got {v!r}")
    v = int(v)
    if v < lo:
        raise ValueError(f"channel key {key!r} must be >= {lo}, got {v}")
    return v


def _complex(v, key: str):
    if isinstance(v, dict):
        _check_keys(v, ("real", "imag"), f"channel key {key!r}")
        return np.asarray(v.get("real", 0.0), float) + 1j * np.asarray(v.get("imag", 0.0), float)
    if isinstance(v, (list, tuple)) and len(v) == 2 and key == "dc_offset":
        return complex(float(v[0]), float(v[1]))
    return np.asarray(v, dtype=np.complex128)


def time_behaviour(spec: dict) -> TimeBehaviour:
    """The :class:`TimeBehaviour` of a spec (see the inference rules in the module docstring)."""
    fs = _num(spec, "sample_rate_hz", 1e6, positive=True)
    kind = spec.get("time")
    block = _int(spec, "block_samples")
    rho = _num(spec, "rho")
    fd = _num(spec, "doppler_hz", lo=0.0)
    extra = {}
    if spec.get("n_sinusoids") is not None:
        extra["n_sinusoids"] = _int(spec, "n_sinusoids", lo=4)
    if spec.get("hold_samples") is not None:
        extra["hold_samples"] = _int(spec, "hold_samples")
    if kind is not None and kind not in KINDS:
        raise ValueError(f"channel key 'time' is {kind!r}; valid values: {', '.join(KINDS)}")
    if kind is None:
        if rho is not None:
            kind = "gauss_markov"
        elif fd is not None and block is not None:
            kind = "gauss_markov"
        elif fd is not None:
            kind = "doppler"
        elif block is not None:
            kind = "block"
        else:
            kind = "static"
    if kind == "gauss_markov":
        if block is None:
            raise ValueError("gauss_markov fading needs 'block_samples' (the block length)")
        if rho is None:
            if fd is None:
                raise ValueError("gauss_markov fading needs 'rho' or 'doppler_hz'")
            return TimeBehaviour.gauss_markov_from_doppler(fd, fs, block)
        return TimeBehaviour("gauss_markov", block_samples=block, rho=rho)
    if kind == "block":
        return TimeBehaviour("block", block_samples=block)
    if kind == "doppler":
        return TimeBehaviour("doppler", doppler_hz=fd, sample_rate_hz=fs, **extra)
    return TimeBehaviour("static")


def _fading_stage(spec: dict, n_tx: int, n_rx: int, rng) -> ChannelModel | None:
    fading = spec.get("fading", "none" if spec.get("tdl") is None else "rayleigh")
    if fading not in FADING_KINDS:
        raise ValueError(f"channel key 'fading' is {fading!r}; valid values: {', '.join(FADING_KINDS)}")
    k_db = _num(spec, "k_factor_db")
    if fading == "rician" and k_db is None and not isinstance(spec.get("tdl"), str):
        raise ValueError("fading = 'rician' needs 'k_factor_db'")
    if fading == "rayleigh" and k_db is not None:
        raise ValueError("'k_factor_db' is for fading = 'rician'; remove it or set fading = 'rician'")
    tb = time_behaviour(spec)
    common = dict(
        time=tb, corr_tx=spec.get("corr_tx"), corr_rx=spec.get("corr_rx"), k_factor_db=k_db
    )
    if spec.get("corr_tx") is not None and isinstance(spec["corr_tx"], dict):
        common["corr_tx"] = _complex(spec["corr_tx"], "corr_tx")
    if spec.get("corr_rx") is not None and isinstance(spec["corr_rx"], dict):
        common["corr_rx"] = _complex(spec["corr_rx"], "corr_rx")
    tdl = spec.get("tdl")
    fs = _num(spec, "sample_rate_hz", 1e6, positive=True)
    if tdl is not None:
        if fading == "none":
            raise ValueError("a 'tdl' channel fades; set fading = 'rayleigh' or 'rician' (or omit it)")
        if isinstance(tdl, str):
            return TDL(n_tx, n_rx, rng, fs, profile=tdl,
                       delay_spread_s=_num(spec, "delay_spread_s", positive=True), **common)
        t = _sub(spec, "tdl")
        if "delays_s" not in t or "powers_db" not in t:
            raise ValueError("channel key 'tdl' as a table needs 'delays_s' and 'powers_db'")
        return TDL(n_tx, n_rx, rng, fs, delays_s=t["delays_s"], powers_db=t["powers_db"], **common)
    if fading == "none":
        for k in ("k_factor_db", "corr_tx", "corr_rx", "rho", "doppler_hz", "block_samples"):
            if spec.get(k) is not None:
                raise ValueError(f"channel key {k!r} needs fading = 'rayleigh' or 'rician'")
        return None
    return FlatFading(
        n_tx, n_rx, rng,
        los_aod_deg=_num(spec, "los_aod_deg", 0.0), los_aoa_deg=_num(spec, "los_aoa_deg", 0.0),
        **common,
    )


def _rx_stages(spec: dict, n: int, rng, has_fading: bool, reverse: bool = False) -> list:
    """The impairment stages after the channel, ``n`` antennas. ``reverse`` negates CFO and SCO."""
    fs = _num(spec, "sample_rate_hz", 1e6, positive=True)
    sgn = -1.0 if reverse else 1.0
    st: list[ChannelModel] = []
    d = _num(spec, "delay_samples", lo=0.0)
    if d is not None and d > 0:
        st.append(FractionalDelay(n, d))
    sco = _num(spec, "sco_ppm")
    if sco:
        st.append(SamplingClockOffset(n, sgn * sco))
    cfo = _num(spec, "cfo_hz")
    if cfo:
        st.append(CarrierFrequencyOffset(n, sgn * cfo, fs, _num(spec, "cfo_phase_rad", 0.0)))
    pn = _sub(spec, "phase_noise", "linewidth_hz")
    if pn is not None:
        st.append(PhaseNoise(n, fs, rng, **{k: float(v) for k, v in pn.items()}))
    snr, n0 = _num(spec, "snr_db"), _num(spec, "noise_power", lo=0.0)
    if snr is not None and n0 is not None:
        raise ValueError("give 'snr_db' or 'noise_power', not both")
    if snr is not None or n0 is not None:
        ref = spec.get("snr_reference", "auto")
        if ref not in ("auto", "rx", "tx"):
            raise ValueError(f"channel key 'snr_reference' is {ref!r}; valid values: auto, rx, tx")
        if ref == "auto":
            ref = "tx" if has_fading else "rx"
        noise = spec.get("noise", "pool")
        if noise not in ("pool", "exact"):
            raise ValueError(f"channel key 'noise' is {noise!r}; valid values: pool, exact")
        st.append(AWGN(
            n, rng, snr_db=snr, noise_power=n0,
            signal_power=_num(spec, "signal_power", positive=True), reference=ref, noise=noise,
            active_threshold_db=_num(spec, "active_threshold_db", -30.0),
        ))
    iq = _sub(spec, "iq_imbalance")
    if iq is not None:
        st.append(IQImbalance(n, float(iq.get("amplitude_db", 0.0)), float(iq.get("phase_deg", 0.0))))
    if spec.get("dc_offset") is not None:
        st.append(DCOffset(n, _complex(spec["dc_offset"], "dc_offset")))
    cl = _sub(spec, "clip", "level")
    if cl is not None:
        st.append(Clipper(n, float(cl.get("level", 1.0)), cl.get("mode", "iq")))
    q = _sub(spec, "quantization", "bits")
    if q is not None:
        if "bits" not in q:
            raise ValueError("channel key 'quantization' needs 'bits'")
        st.append(Quantizer(n, _int(q, "bits"), float(q.get("full_scale", 1.0))))
    return st


def build_channel(spec: dict[str, Any], rng: np.random.Generator) -> ChannelModel:
    """A channel model (a :class:`Chain`) from a plain dict.

    Args:
        spec: keys of :data:`CHANNEL_KEYS` (module docstring, docs/channels.md).
        rng: the numpy Generator every stage draws from.

    Returns:
        A ChannelModel ``n_tx -> n_rx`` (complex64 ``[n_tx, n] -> [n_rx, n]``).

    Raises:
        ValueError / TypeError naming the bad key and listing the valid ones.
    """
    if (isinstance(spec, str) and spec.startswith("replay:")) or (isinstance(spec, dict) and "replay" in spec):
        from hil.channel.replay import build_replay  # a recorded channel: "replay:DIR" (hil capture --out DIR)

        return build_replay(spec, rng)
    _check_keys(spec, CHANNEL_KEYS, "channel spec")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    n_tx, n_rx = _int(spec, "n_tx", 1), _int(spec, "n_rx", 1)
    fade = _fading_stage(spec, n_tx, n_rx, rng)
    if fade is None and n_tx != n_rx:
        raise ValueError(
            f"n_tx = {n_tx} differs from n_rx = {n_rx} but there is no fading; "
            "set fading = 'rayleigh' (or 'rician', or a 'tdl')"
        )
    stages = ([fade] if fade is not None else []) + _rx_stages(spec, n_rx, rng, fade is not None)
    return Chain(stages or [Passthrough(n_rx)])


def _random_gains(n: int, cg: dict, rng) -> np.ndarray:
    a = float(cg.get("amplitude_db_std", 1.0))
    p = float(cg.get("phase_deg_max", 180.0))
    amp = 10 ** (rng.normal(0.0, a, n) / 20)
    ph = np.deg2rad(rng.uniform(-p, p, n))
    return amp * np.exp(1j * ph)


#: keys that describe the shared channel itself (replaced by ``model=`` in :func:`build_reciprocal_link`)
FADING_KEYS = ("fading", "k_factor_db", "los_aod_deg", "los_aoa_deg", "corr_tx", "corr_rx", "tdl",
               "delay_spread_s", "time", "block_samples", "rho", "doppler_hz", "n_sinusoids", "hold_samples")


def link_generator(seed: int, index: int = 0) -> np.random.Generator:
    """The Generator of link ``index`` of a simulation seeded with ``seed``.

    [Note: one seed, one channel]
    Every place that simulates a link from a seed derives the link's Generator this way, so the same
    seed and spec give the same channel on every transport: the channel server gives link ``i`` of its
    topology ``default_rng(seed).spawn(n_links + 1)[i]`` (the last child drives its timing jitter),
    which is this Generator (a child depends only on the seed and its index); the in-process
    ``ideal`` transport and the ``loopback`` radio of ``hil train`` use link 0.
    """
    if int(index) < 0:
        raise ValueError(f"link index must be >= 0, got {index}")
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(index),)))


def build_reciprocal_link(spec: dict[str, Any], rng: np.random.Generator,
                          model: ChannelModel | None = None) -> ReciprocalLink:
    """A :class:`ReciprocalLink` from a plain dict.

    ``n_a``/``n_b`` (or ``n_tx``/``n_rx``) set the antennas of node A and B; the fading keys
    describe the shared channel (``fading`` defaults to "none", as in :func:`build_channel`: then
    the shared channel is the identity, which needs ``n_a == n_b``); the impairment keys build the
    same receiver chain in each direction (CFO and SCO negated for B -> A); chain gains from
    ``t_a``, ``r_a``, ``t_b``, ``r_b`` (complex per antenna: numbers or {real=[..], imag=[..]}) or
    random ones from ``chain_gains``. ``link.forward`` / ``link.reverse`` are ChannelModels.
    ``model``: a shared channel built by the caller (e.g. a :class:`FixedMatrix`) instead of the
    spec's fading keys (:data:`FADING_KEYS`, which must then be absent); the noise then refers to the
    transmit power times its mean power gain (``snr_reference = "auto"`` means "tx").
    """
    if (isinstance(spec, str) and spec.startswith("replay:")) or (isinstance(spec, dict) and "replay" in spec):
        from hil.channel.replay import build_replay_link  # a recorded channel, reverse = transpose

        return build_replay_link(spec, rng)
    _check_keys(spec, CHANNEL_KEYS + LINK_KEYS, "reciprocal link spec")
    s = dict(spec)
    for k, alias in (("n_a", "n_tx"), ("n_b", "n_rx")):
        if k in s:
            if alias in s and s[alias] != s[k]:
                raise ValueError(f"give {k!r} or {alias!r}, not both with different values")
            s[alias] = s.pop(k)
    gains = {k: s.pop(k) for k in ("t_a", "r_a", "t_b", "r_b") if k in s}
    cg = _sub(s, "chain_gains")
    s.pop("chain_gains", None)
    n_a, n_b = _int(s, "n_tx", 1), _int(s, "n_rx", 1)
    if model is not None:
        given = [k for k in FADING_KEYS if s.get(k) is not None]
        if given:
            raise ValueError(f"a link built on a given model takes no fading keys; remove {', '.join(given)}")
        if (model.n_in, model.n_out) != (n_a, n_b):
            raise ValueError(f"the given model maps {model.n_in} -> {model.n_out} antennas, the spec "
                             f"{n_a} -> {n_b}; make n_a/n_b match the model")
    else:
        model = _fading_stage(s, n_a, n_b, rng)
    has_fading = model is not None
    if model is None:  # fading "none": an ideal wire, still with chain gains and impairments
        if n_a != n_b:
            raise ValueError(
                f"n_a = {n_a} differs from n_b = {n_b} but there is no fading; "
                "set fading = 'rayleigh' (or 'rician', or a 'tdl')"
            )
        model = FixedMatrix(np.eye(n_a))
    g = {k: _complex(v, k) for k, v in gains.items()}
    if cg is not None:
        if g:
            raise ValueError("give 'chain_gains' or explicit t_a/r_a/t_b/r_b, not both")
        g = {
            "t_a": _random_gains(n_a, cg, rng), "r_a": _random_gains(n_a, cg, rng),
            "t_b": _random_gains(n_b, cg, rng), "r_b": _random_gains(n_b, cg, rng),
        }
    return ReciprocalLink(
        model, **g,
        forward_post=_rx_stages(s, n_b, rng, has_fading),
        reverse_post=_rx_stages(s, n_a, rng, has_fading, True),
    )
