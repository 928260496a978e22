"""Wire format and traffic meter: bytes are real and the round trip is bit-exact."""

import pytest
import torch

from hil.baim.wire import TrafficMeter, pack_state, unpack_state


def test_round_trip_is_bit_identical_and_length_is_header_plus_raw_bytes():
    g = torch.Generator().manual_seed(3)
    state = {"w": torch.randn(5, 7, generator=g), "b": torch.randn(7, generator=g), "n": torch.arange(4)}
    blob = pack_state(state, meta={"arch": [5, 7]})
    back, meta = unpack_state(blob)
    assert meta == {"arch": [5, 7]}
    assert set(back) == set(state)
    for k in state:
        assert back[k].dtype == state[k].dtype and torch.equal(back[k], state[k])
    raw = sum(t.numel() * t.element_size() for t in state.values())
    assert raw < len(blob) < raw + 200  # raw tensor bytes plus a small JSON header


def test_corrupt_messages_are_rejected_by_message():
    blob = pack_state({"w": torch.zeros(3)})
    with pytest.raises(ValueError, match="bad magic"):
        unpack_state(b"XXXXX" + blob[5:])
    with pytest.raises(ValueError, match="trailing"):
        unpack_state(blob + b"\0")
    with pytest.raises(TypeError, match="dtype"):
        pack_state({"w": torch.zeros(3, dtype=torch.float16)})


def test_meter_counts_exact_lengths_per_direction():
    m = TrafficMeter()
    m.send("up", "node0", "x", b"abc")
    m.send("up", "node1", "x", b"de")
    m.send("down", "node0", "y", b"fghij")
    assert (m.total_bytes("up"), m.total_bytes("down")) == (5, 5)
    with pytest.raises(ValueError, match="direction"):
        m.send("sideways", "n", "x", b"")


def test_meter_records_measured_seconds_and_receiver_lengths():
    m = TrafficMeter()
    assert m.total_seconds("up") is None
    m.send("up", "node0", "x", b"abc", seconds=0.25)
    m.record("up", "node1", "x", 7, 0.5)
    m.record("down", "node0", "y", 4)  # handed over in-process: no time measured
    assert m.total_bytes("up") == 10 and m.total_seconds("up") == 0.75
    assert m.total_bytes("down") == 4 and m.total_seconds("down") is None
    with pytest.raises(ValueError, match="direction"):
        m.record("sideways", "n", "x", 1)
