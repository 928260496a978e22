"""The fast receiver decodes what the reference receiver decodes: same frames, same numbers.

Tolerance (float rounding only: sums in another order, FFTs of another length, the CFO de-rotation
in float32): payload and channel estimates within 1e-5 of their RMS; the tracked phase within
1e-5 rad (the same bound: a phase error of e rad moves the payload by e of its RMS); noise and CFO
within 1e-6 relative; timing within 1e-6 samples; the SNR within 1e-5 dB; the detection statistic
within 1e-5 relative; header, clipping counts and sub-carrier maps equal. Captures are drawn from
fixed seeds through the simulated channel (Rayleigh, AWGN, CFO, fractional delay, sampling-clock
offset), so the test is deterministic.
"""

import dataclasses

import numpy as np
import pytest

from hil.channel.config import build_channel
from hil.errors import SyncError
from hil.phy import FrameReceiver, FrameTransmitter, PhyConfig, PhyLink
from hil.phy.fast import FastReceiver
from hil.radio.loopback import LoopbackRadio

from .conftest import gauss_symbols

_REL = 1e-5


def _same(a, b) -> None:
    """Assert two RxResults agree within the module's stated tolerance."""
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name in ("header", "tx_clipped", "rx_clipped", "subcarrier"):
            assert np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y, f.name
        elif f.name == "phase_track":  # radians: an absolute tolerance
            assert x.shape == y.shape and np.max(np.abs(x - y), initial=0.0) <= _REL, (f.name, np.max(np.abs(x - y)))
        elif isinstance(x, np.ndarray):
            assert x.shape == y.shape, f.name
            scale = max(float(np.sqrt(np.mean(np.abs(x) ** 2))), 1e-30) if x.size else 1.0
            assert np.max(np.abs(x - y), initial=0.0) <= _REL * scale, (f.name, np.max(np.abs(x - y)), scale)
        elif f.name == "snr_db":
            assert abs(x - y) <= 1e-5, (f.name, x, y)
        elif f.name in ("timing", "fft_backoff"):
            assert abs(x - y) <= 1e-6, (f.name, x, y)
        else:
            tol = _REL if f.name == "detection_metric" else 1e-6
            assert abs(x - y) <= tol * max(abs(x), 1e-12), (f.name, x, y)


CASES = [  # mode, antennas, (B, K), snr_db, cfo_hz, delay, sco_ppm
    ("single", 1, (4, 32), 20.0, 5e4, 1.4, 0.0),
    ("single", 1, (8, 40), 3.0, -9e4, 0.3, 40.0),
    ("flat", 1, (4, 24), 10.0, 0.0, 0.0, 0.0),
    ("flat", 2, (32, 64), 20.0, 5e4, 1.4, 0.0),
    ("flat", 2, (16, 64), 0.0, 1.1e5, 2.7, 60.0),
    ("flat", 2, (8, 48), 40.0, -3e4, 0.5, 25.0),
    ("flat", 4, (8, 32), 15.0, 7e4, 1.1, 0.0),
    ("ofdm", 2, (16, 64), 20.0, 5e4, 1.4, 0.0),
    ("ofdm", 1, (4, 30), 5.0, -6e4, 0.7, 0.0),
    ("ofdm", 4, (8, 40), 25.0, 2e4, 2.2, 0.0),
]


@pytest.mark.parametrize("mode,n,shape,snr,cfo,delay,sco", CASES)
def test_fast_equals_reference(mode, n, shape, snr, cfo, delay, sco):
    cfg = PhyConfig(n_tx=n, n_rx=n, mode=mode)
    ref, fast = FrameReceiver(cfg), FastReceiver(cfg)
    tx = FrameTransmitter(cfg)
    for seed in range(3):
        rng = np.random.default_rng(1000 * seed + n)
        spec = {"n_tx": n, "n_rx": n, "fading": "rayleigh", "snr_db": snr, "cfo_hz": cfo,
                "delay_samples": delay}
        if sco:
            spec["sco_ppm"] = sco
        radio = LoopbackRadio(build_channel(spec, rng))
        burst, _ = tx.build(gauss_symbols(rng, shape[0], n, shape[1]), seq=seed)
        caps = [radio.transceive(burst) for _ in range(2)]
        for cap in caps:
            try:
                a = ref.receive(cap, expect_seq=seed)
            except SyncError as e:  # at 0 dB a frame may be lost: then both must lose it
                with pytest.raises(SyncError, match=str(e).split(":")[0]):
                    fast.receive(cap, expect_seq=seed)
                continue
            _same(a, fast.receive(cap, expect_seq=seed))
        one_by_one = [fast.receive(c, expect_seq=seed) for c in caps]
        for a, b in zip(fast.receive_batch(caps, [seed] * 2, workers=1 + seed % 2), one_by_one):
            assert type(a) is type(b)
            if isinstance(a, SyncError):
                assert str(a) == str(b)
            else:
                _same(a, b)


def test_fast_errors_match_reference():
    """Truncated captures, noise only and stale frames raise the same SyncError in both receivers."""
    cfg = PhyConfig(n_tx=2, n_rx=2, mode="flat")
    ref, fast = FrameReceiver(cfg), FastReceiver(cfg)
    rng = np.random.default_rng(5)
    burst, _ = FrameTransmitter(cfg).build(gauss_symbols(rng, 4, 2, 32), seq=7)
    noise = (rng.standard_normal((2, 4000)) + 1j * rng.standard_normal((2, 4000))).astype(np.complex64) * 1e-2
    cap = np.concatenate([noise[:, :300], burst + noise[:, : burst.shape[1]]], axis=1)
    captures = [cap[:, :100], cap[:, :700], cap[:, :-200], noise, cap]
    for c in captures:
        for kw in ({}, {"expect_seq": 8}):
            msgs = []
            for r in (ref, fast):
                try:
                    r.receive(c, **kw)
                    msgs.append("ok")
                except SyncError as e:
                    msgs.append(str(e).split(":")[0])
            assert msgs[0] == msgs[1], (c.shape, kw, msgs)
    out = fast.receive_batch(captures, expect_seqs=[7] * len(captures))
    assert [type(o).__name__ for o in out] == ["SyncError"] * 4 + ["RxResult"]
    assert [type(o).__name__ for o in fast.receive_batch(captures, workers=2)] == ["SyncError"] * 4 + ["RxResult"]
    with pytest.raises(ValueError, match="expect_seqs"):
        fast.receive_batch(captures, expect_seqs=[7])
    with pytest.raises(ValueError, match="workers"):
        fast.receive_batch(captures, workers=0)


def test_phylink_uses_the_fast_receiver():
    cfg = PhyConfig(n_tx=2, n_rx=2, mode="flat")
    rng = np.random.default_rng(3)
    radio = LoopbackRadio(build_channel({"n_tx": 2, "n_rx": 2, "fading": "rayleigh", "snr_db": 25.0}, rng))
    link = PhyLink(radio, cfg)
    assert isinstance(link.receiver, FastReceiver)
    assert type(PhyLink(radio, cfg, fast=False).receiver) is FrameReceiver


def _links(seed: int):
    """Two identical PhyLinks over identical loopback radios (same channel seed)."""
    cfg = PhyConfig(n_tx=2, n_rx=2, mode="flat")
    spec = {"n_tx": 2, "n_rx": 2, "fading": "rayleigh", "time": "gauss_markov", "rho": 0.9, "block_samples": 4096,
            "snr_db": 15.0, "cfo_hz": 3e4, "delay_samples": 0.6}
    return [PhyLink(LoopbackRadio(build_channel(spec, np.random.default_rng(seed))), cfg) for _ in range(2)]


def test_pipelined_stream_equals_sequential():
    """transceive_many (burst i+1 sent before burst i is decoded) gives bit-equal results to
    transceive on each batch in turn: same sequence numbers, same captures, same decoded numbers."""
    rng = np.random.default_rng(21)
    batches = [gauss_symbols(rng, 8, 2, 32) for _ in range(5)]
    seq_link, pipe_link = _links(4)
    seq_link.seq = pipe_link.seq = 65533  # the sequence number wraps inside the stream
    sequential = [seq_link.transceive(b) for b in batches]
    pipelined = pipe_link.transceive_many(batches)
    assert seq_link.seq == pipe_link.seq == 2
    for a, b in zip(sequential, pipelined):
        assert isinstance(b, type(a))
        for f in dataclasses.fields(a):
            x, y = getattr(a, f.name), getattr(b, f.name)
            assert np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y, f.name
    assert [r.header.seq for r in pipelined] == [65533, 65534, 65535, 0, 1]
    assert set(pipe_link.seconds) == {"build", "radio", "receive"} and pipe_link.seconds["receive"] > 0
    with pytest.raises(ValueError, match="NaN"):
        pipe_link.transceive_many([batches[0], np.full((1, 2, 4), np.nan, np.complex64)])
    assert pipe_link.seq == 2  # nothing was sent


def test_threaded_batch_equals_one_by_one():
    """receive_batch with 2 threads (two groups of 4 captures decoded concurrently) == receive in turn."""
    cfg = PhyConfig(n_tx=2, n_rx=2, mode="flat")
    fast = FastReceiver(cfg)
    rng = np.random.default_rng(9)
    radio = LoopbackRadio(build_channel({"n_tx": 2, "n_rx": 2, "fading": "rayleigh", "snr_db": 12.0,
                                         "cfo_hz": 4e4, "delay_samples": 0.8}, rng))
    tx = FrameTransmitter(cfg)
    caps = [radio.transceive(tx.build(gauss_symbols(rng, 4, 2, 32), seq=i)[0]) for i in range(8)]
    batch = fast.receive_batch(caps, expect_seqs=range(8), workers=2)
    for i, (a, c) in enumerate(zip(batch, caps)):
        _same(fast.receive(c, expect_seq=i), a)


@pytest.mark.parametrize("kw", [
    {"n_tx": 1, "n_rx": 2, "mode": "flat"},
    {"n_tx": 2, "n_rx": 4, "mode": "flat", "sps": 4},
    {"n_tx": 2, "n_rx": 2, "mode": "flat", "sps": 1},
    {"n_tx": 2, "n_rx": 2, "mode": "flat", "rrc_span": 8, "track_interval": 0},
    {"n_tx": 2, "n_rx": 3, "mode": "ofdm"},
    {"n_tx": 1, "n_rx": 1, "mode": "single", "sps": 3},
])
def test_fast_equals_reference_other_configs(kw):
    """Unequal antenna counts, 1/3/4 samples per symbol, a short pulse without tracking (seed 1, 15 dB,
    CFO 30 kHz, delay 0.7, 30 ppm): the same tolerances."""
    cfg = PhyConfig(**kw)
    ref, fast = FrameReceiver(cfg), FastReceiver(cfg)
    rng = np.random.default_rng(1)
    radio = LoopbackRadio(build_channel({"n_tx": cfg.n_tx, "n_rx": cfg.n_rx, "fading": "rayleigh", "snr_db": 15.0,
                                         "cfo_hz": 3e4, "delay_samples": 0.7, "sco_ppm": 30.0}, rng))
    burst, _ = FrameTransmitter(cfg).build(gauss_symbols(rng, 8, cfg.n_tx, 40))
    for _ in range(2):
        cap = radio.transceive(burst)
        _same(ref.receive(cap), fast.receive(cap))
