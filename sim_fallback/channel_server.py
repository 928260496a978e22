"""The ZMQ MIMO channel server: one process, a topology of nodes and links, cf32 streams per antenna.

Run it with ``python -m sim_fallback --config FILE`` or ``hil sim serve --config FILE``; the wire
format, the sockets and the patterns are documented in docs/zmq.md.

[Note: the server loop]
One thread polls every socket. A sample message that arrives on a node's tx stream is validated
(length a multiple of 8 bytes, at most ``max_message_bytes``, finite values, a header naming a known
and linked node); a bad one is counted under its reason, logged, and the server carries on. In burst
mode the messages of one burst (one per antenna, matched by the header's ``seq`` or by arrival order)
are stacked to ``(n_tx, n)``, padded with ``lead`` (+ random jitter) and ``trail`` zero samples, and the
whole padded block goes through each link's channel model (``generate`` then ``apply``), so noise fills
the margins and the receiver has to find the burst. In stream mode each complete column of samples
goes through the channel as it arrives, with no padding. Outputs wait in a per-node queue and are
written when the receiver's socket can take them (POLLOUT); an output nobody takes within ``hold_s``
is dropped and counted. ZMQ's own I/O thread moves the bytes, so socket I/O overlaps the channel math.
Nothing that crosses a socket is pickled: samples are raw cf32, metadata is JSON. Every input is
bounded before it is used: JSON by size and nesting depth, pending bursts, queued outputs and ZMQ
queues in bytes (see [Note: resource limits], [Note: pending bursts], [Note: per-message guard]).

[Note: saturation]
A finite input sample as large as 3e38 would overflow float32 inside a channel model and come out
as Inf/NaN. Like a DAC that clips at its full scale, the server saturates each real and imaginary
part at +-INPUT_FULL_SCALE_LIMIT (1024, i.e. 60 dB above the full scale 1.0, so no sane signal is
touched) and counts the message as ``saturated``. One pass answers both checks: the largest
``|value|``, taken as an integer maximum of the float32 bit patterns (see [Note: screen in the input
pass] in ``hil.channel.fast``); on the shared-memory path the fused kernel takes it while it copies
the chunk into its own buffer, so the chunk is read once for the screen and the channel.

[Note: pacing]
With ``[server] pace = true`` a stream-mode node's input is read no faster than ``sample_rate_hz``:
after a column block of ``m`` samples, the node's sockets are not read until ``m / sample_rate_hz``
seconds later (its ``pace_next``), so ZMQ back-pressures the sender (a GNU Radio flowgraph without a
throttle block then runs at the radio's rate). The clock is the input's, not the output's, so held
outputs never meet ``hold_s``. A stream idle for more than 50 ms restarts the clock instead of
catching up; the loop wakes at the next ``pace_next`` (1 ms poll resolution, not accumulated).

[Note: pipelining]
With ``[server] apply_threads = 2`` (default 1: measured slower on 2 cores) a worker also splits blocks of >= 2^16 samples in two
halves: it draws the coefficients of both halves in order (``generate`` stays sequential) and
applies them on two threads, which the generate/apply contract allows (apply touches no state). It
does so only for a model that passes :func:`apply_is_pure` (checked once on deep copies): models that
carry an input history between calls (TDL, fractional delay) are never split.

With ``[server] pipeline = true`` (default), each link direction runs its channel model on a worker
thread of its own for large blocks (>= 2^15 samples): the loop keeps receiving, validating and
sending while numpy (which releases the GIL) computes. One worker per direction keeps the order of
that direction's outputs and never runs a model on two threads at once; small blocks (training
bursts) are computed inline for latency, unless the worker still has blocks queued (order again).
A worker hands results back through a queue and wakes the loop on an inproc socket; it holds at
most a few blocks, so a slow model back-pressures the senders through the ZMQ high-water marks.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import queue
import secrets
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import zmq

from hil.errors import ConfigError
from sim_fallback.topology import LinkConfig, NodeConfig, Bench, endpoint_slots

if TYPE_CHECKING:  # hil.channel (and scipy) load only when a link needs a channel model
    from hil.channel.base import ChannelModel

log = logging.getLogger(__name__)

#: Largest accepted JSON header / control request, bytes.
MAX_JSON_BYTES = 65536
#: Deepest nesting of arrays/objects accepted in a JSON header / control request (checked before parsing).
MAX_JSON_DEPTH = 32
#: Incomplete bursts one sender may have pending (per sender: a ``sender`` name, or all headerless messages).
MAX_PENDING_PER_SENDER = 64
#: Incomplete bursts pending in the whole server.
MAX_PENDING_TOTAL = 1024
#: An incomplete burst older than this (seconds) is dropped and counted (its other antennas never came).
PENDING_TIMEOUT_S = 2.0
#: Input samples are saturated to this magnitude per real/imaginary part (see [Note: saturation]).
INPUT_FULL_SCALE_LIMIT = 1024.0
#: A capture (``rx_samples``) may be this many samples longer than the default capture of its burst.
MAX_EXTRA_RX_SAMPLES = 1 << 16
#: Bytes of output ZMQ may queue per receive socket (its SNDHWM in messages is derived from this).
OUT_QUEUE_BYTES = 1 << 25
#: Samples below which a message is sent with a copy (zero-copy has a fixed cost).
_ZERO_COPY_MIN_BYTES = 65536
#: Messages drained from one socket per loop turn (fairness between sockets).
_DRAIN_PER_TURN = 8
#: Longest poll wait; bounds how long a stop request waits (the server stops within this).
_POLL_MS = 100
#: Blocks of at least this many samples go to the link direction's worker thread (when pipelining);
#: smaller ones are computed inline (lower latency) unless the worker still has blocks queued.
_PIPELINE_MIN_SAMPLES = 1 << 15
#: Blocks queued per worker before the loop waits (back-pressure through the ZMQ high-water marks).
_PIPELINE_DEPTH = 3
#: Pacing: a stream idle this long or longer restarts its clock (it may not catch up more than this).
_PACE_SLACK_S = 0.05
#: Blocks of at least this many samples are split in two halves applied on two threads (pure models only).
_SPLIT_MIN_SAMPLES = 1 << 16


def apply_is_pure(model: Any, n: int = 2048) -> bool:
    """Whether ``model.apply`` depends only on its arguments (the base.py contract), checked on copies.

    Two deep copies draw the same coefficients for two consecutive blocks; one applies them in
    order, the other in reverse order. A model that carries state between apply calls (a FIR input
    history, a filter memory) gives different outputs and is never split (see [Note: pipelining]).
    """
    try:
        a, b = copy.deepcopy(model), copy.deepcopy(model)
        k = np.arange(2 * n)
        x = np.stack([0.5 * np.exp(1j * (0.01 * (i + 1) * k + i)) for i in range(model.n_in)]).astype(np.complex64)
        ca = [a.generate(n), a.generate(n)]
        cb = [b.generate(n), b.generate(n)]
        ya = [np.asarray(a.apply(x[:, :n], ca[0])), np.asarray(a.apply(x[:, n:], ca[1]))]
        yb1 = np.asarray(b.apply(x[:, n:], cb[1]))
        yb0 = np.asarray(b.apply(x[:, :n], cb[0]))
        return bool(np.array_equal(ya[0], yb0) and np.array_equal(ya[1], yb1))
    except Exception:  # noqa: BLE001 - anything unusual: do not split
        return False

# Rejection reasons: the keys of stats()["rejected_by_reason"].
R_LENGTH = "length_not_multiple_of_8"
R_EMPTY = "empty_message"
R_TOO_LARGE = "too_large"
R_NON_FINITE = "non_finite"
R_UNKNOWN_NODE = "unknown_node"
R_NO_LINK = "no_link"
R_BAD_HEADER = "bad_header"
R_BAD_REQUEST = "bad_request"
R_ANTENNA_MISMATCH = "antenna_length_mismatch"
R_INTERNAL = "internal_error"
REASONS = (R_LENGTH, R_EMPTY, R_TOO_LARGE, R_NON_FINITE, R_UNKNOWN_NODE, R_NO_LINK, R_BAD_HEADER,
           R_BAD_REQUEST, R_ANTENNA_MISMATCH, R_INTERNAL)


class BadMessage(ValueError):
    """A control request or data header the parsers refuse; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def json_depth_exceeds(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the arrays/objects in ``raw`` nest deeper than ``limit`` (brackets inside strings ignored).

    Linear in ``len(raw)``; free for the usual header (fewer brackets than ``limit`` in all).
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth, in_str, esc = 0, False, False
    for c in raw:
        if in_str:
            if esc:
                esc = False
            elif c == 0x5C:  # backslash
                esc = True
            elif c == 0x22:  # quote
                in_str = False
        elif c == 0x22:
            in_str = True
        elif c in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        elif c in (0x5D, 0x7D):
            depth -= 1
    return False


def _load_json(raw: bytes, what: str, reason: str) -> Any:
    """``json.loads`` of at most MAX_JSON_BYTES bytes nested at most MAX_JSON_DEPTH deep, or BadMessage."""
    if len(raw) > MAX_JSON_BYTES:
        raise BadMessage(reason, f"{what} of {len(raw)} bytes > {MAX_JSON_BYTES}")
    if json_depth_exceeds(raw):
        raise BadMessage(reason, f"{what} nests arrays/objects deeper than {MAX_JSON_DEPTH}")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise BadMessage(reason, f"{what} is not JSON: {e}") from e


def parse_request(frames: list[bytes]) -> dict:
    """A control request (one frame of JSON) -> a dict with a string ``cmd``; BadMessage if malformed.

    ``node`` and ``src``, when present, must be strings (or null). Pure: fuzzed in tests.
    """
    if len(frames) != 1:
        raise BadMessage(R_BAD_REQUEST, f"control request has {len(frames)} frames; send one frame of JSON")
    req = _load_json(bytes(frames[0]), "control request", R_BAD_REQUEST)
    if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
        raise BadMessage(R_BAD_REQUEST, f"control request must be a JSON object with a string 'cmd', "
                                        f"got {req!r:.200}")
    for k in ("node", "src"):
        if req.get(k) is not None and not isinstance(req[k], str):
            raise BadMessage(R_BAD_REQUEST, f"control {req['cmd']!r:.64}: {k!r} must be a node name (string), "
                                            f"got {req[k]!r:.200}")
    return req


def parse_header(raw: bytes) -> dict:
    """A data header (JSON object) -> dict with valid ``seq``, ``rx_samples``, ``sender``, ``dst``; BadMessage.

    Checks types and ranges only; whether ``dst`` exists and ``rx_samples`` fits is the server's
    business. Pure: fuzzed in tests.
    """
    h = _load_json(raw, "header", R_BAD_HEADER)
    if not isinstance(h, dict):
        raise BadMessage(R_BAD_HEADER, f"header must be a JSON object, got {type(h).__name__}")
    for k in ("seq", "rx_samples"):
        if k in h and (isinstance(h[k], bool) or not isinstance(h[k], int) or h[k] < 0):
            raise BadMessage(R_BAD_HEADER, f"header {k!r} must be an integer >= 0, got {h[k]!r:.64}")
    if "sender" in h and (not isinstance(h["sender"], str) or len(h["sender"]) > 64):
        raise BadMessage(R_BAD_HEADER, "header 'sender' must be a string of <= 64 characters")
    if h.get("dst") is not None and not isinstance(h["dst"], str):
        raise BadMessage(R_UNKNOWN_NODE, f"header 'dst' must be a node name (string), got {h['dst']!r:.64}")
    return h


def screen_samples_reference(f: np.ndarray) -> tuple[int, bool]:
    """The input guard in numpy (the specification of :func:`screen_samples`, and its path without numba).

    One BLAS pass: the sum of squares is non-finite if any value is (then counted exactly, as a huge
    finite value may overflow the sum too), and it bounds every value, so only a sum above
    ``INPUT_FULL_SCALE_LIMIT ** 2`` needs a second pass for the maximum (see [Note: saturation]).
    """
    with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN here is the answer, checked next
        ss = np.dot(f, f)
    if not np.isfinite(ss) and not np.isfinite(f).all():
        return int(np.count_nonzero(~np.isfinite(f))), False
    if not ss <= INPUT_FULL_SCALE_LIMIT ** 2:
        return 0, bool(np.abs(f).max() > np.float32(INPUT_FULL_SCALE_LIMIT))
    return 0, False


#: float32 bit patterns (sign cleared) of +Inf (NaNs are above it) and of INPUT_FULL_SCALE_LIMIT.
_INF_BITS = 0x7F800000
_LIMIT_BITS = int(np.float32(INPUT_FULL_SCALE_LIMIT).view(np.uint32))
_screen_bits: Any = None  # hil.channel.fast.screen_bits once the kernels are loaded (False: numpy reference)


def screen_samples(f: np.ndarray, bits: int | None = None) -> tuple[int, bool]:
    """The input guard of one message's float32 values (I and Q): (NaN/Inf count, needs saturating).

    ``bits``: the bit pattern of the largest ``|value|`` when the fused channel kernel already took
    it while copying the input (``Chain.load_input``); else one pass of ``hil.channel.fast.screen_bits``
    (integer maximum, no temporaries) when the channel kernels are loaded (a link with a channel
    model loads them), or :func:`screen_samples_reference` (without numba, or wires only). The
    answer is the reference's (see [Note: screen in the input pass] in ``hil.channel.fast``); the
    exact NaN/Inf count costs a second pass only for a refused message.
    """
    if bits is None:
        global _screen_bits
        if _screen_bits is None:
            fast = sys.modules.get("hil.channel.fast")  # loaded with the first link's channel model
            if fast is None:
                return screen_samples_reference(f)
            _screen_bits = fast.screen_bits if fast.available() else False
        if _screen_bits is False:
            return screen_samples_reference(f)
        bits = _screen_bits(f)
    if bits <= _LIMIT_BITS:
        return 0, False
    if bits >= _INF_BITS:
        return int(np.count_nonzero(~np.isfinite(f))), False
    return 0, True


def max_capture_samples(n: int, lead: int, jitter: int, trail: int) -> int:
    """Longest capture (``rx_samples``) the server makes of an ``n``-sample burst on a link with these margins.

    The default capture ``lead + jitter + n + trail`` plus at most :data:`MAX_EXTRA_RX_SAMPLES`, so a
    tiny burst cannot ask for a huge output (and the CPU and memory to compute it).
    """
    return lead + jitter + n + trail + MAX_EXTRA_RX_SAMPLES


class PendingBursts:
    """Incomplete bursts (some antennas' messages arrived, not all), bounded in count, bytes and time.

    [Note: pending bursts]
    A burst is keyed by ``(node, sender, number)``: ``sender`` is the header's ``sender`` (or ""), or
    ``None`` for headerless messages (GNU Radio), which are paired by arrival order: a message joins
    the oldest pending burst still missing its antenna (so pairing recovers once a lost message's
    burst has expired).
    Limits: ``per_sender`` bursts and ``per_sender_bytes`` per (node, sender); ``total`` bursts and
    ``total_bytes`` in all; a burst older than ``timeout_s`` expires. A sender over its own limit loses
    its own oldest burst. Over a total limit, the victim is the oldest burst of the sender holding the
    most (bursts, then bytes), so a flood from one sender name evicts that sender, never the one
    burst another client has in flight. A client that rotates sender names is limited by the totals
    and the timeout; its messages then compete with everyone's (the server cannot tell them apart).
    Completing a burst drops the same sender's older incomplete ones (it sends in order; they lost
    an antenna message).
    """

    def __init__(self, per_sender: int, per_sender_bytes: int, total: int, total_bytes: int, timeout_s: float):
        self.per_sender, self.per_sender_bytes = per_sender, per_sender_bytes
        self.total, self.total_bytes, self.timeout_s = total, total_bytes, timeout_s
        self._b: dict[tuple, list] = {}  # key -> [t0, nbytes, slots]; insertion order = age
        self._by_sender: dict[tuple, dict[tuple, None]] = {}  # (node, sender) -> its keys, oldest first
        self._bytes: dict[tuple, int] = {}
        self.nbytes = 0
        self.evicted = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self._b)

    def count(self, node: str) -> int:
        return sum(1 for k in self._b if k[0] == node)

    def _drop(self, key: tuple) -> None:
        _, nb, _ = self._b.pop(key)
        s = key[:2]
        del self._by_sender[s][key]
        if not self._by_sender[s]:
            del self._by_sender[s], self._bytes[s]
        else:
            self._bytes[s] -= nb
        self.nbytes -= nb

    def add(self, key: tuple, n_ant: int, ant: int, item: Any, nbytes: int, now: float) -> tuple[list | None, int]:
        """Put ``item`` (``nbytes``) in slot ``ant`` of burst ``key`` = (node, sender, number).

        Returns (the burst's slots if now complete, else None; how many bursts were dropped: replaced
        slot, evicted, or older of the same sender on completion).
        """
        dropped = 0
        s = key[:2]
        entry = self._b.get(key)
        if entry is not None and entry[2][ant] is not None:  # a second message for the same slot
            dropped += 1
            self._drop(key)
            entry = None
        new = entry is None
        if new and n_ant == 1:  # complete at once: never pending (the limits below concern pending bursts)
            return [item], dropped + self._drop_older(s, key[2])
        while True:  # the sender's own limits: it loses its own oldest burst
            keys = self._by_sender.get(s)
            n_own = len(keys) - (key in keys) if keys else 0
            if not n_own or not ((new and n_own >= self.per_sender)
                                 or self._bytes.get(s, 0) + nbytes > self.per_sender_bytes):
                break
            self._drop(next(k for k in keys if k != key))
            self.evicted += 1
            dropped += 1
        while (new and len(self._b) >= self.total) or self.nbytes + nbytes > self.total_bytes:
            # the totals: the heaviest sender (bursts, then bytes) loses its oldest burst
            victim = None
            for q in sorted(self._by_sender, key=lambda q: (len(self._by_sender[q]), self._bytes[q]), reverse=True):
                victim = next((k for k in self._by_sender[q] if k != key), None)
                if victim is not None:
                    break
            if victim is None:
                break
            self._drop(victim)
            self.evicted += 1
            dropped += 1
        if entry is None:
            entry = self._b[key] = [now, 0, [None] * n_ant]
            self._by_sender.setdefault(s, {})[key] = None
            self._bytes.setdefault(s, 0)
        entry[2][ant] = item
        entry[1] += nbytes
        self._bytes[s] += nbytes
        self.nbytes += nbytes
        if None in entry[2]:
            return None, dropped
        self._drop(key)
        return entry[2], dropped + self._drop_older(s, key[2])

    def _drop_older(self, s: tuple, number: Any) -> int:
        """Drop sender ``s``'s pending bursts numbered below ``number`` (older, never completed: one
        antenna's message was lost); returns how many."""
        keys = self._by_sender.get(s)
        if not keys:
            return 0
        old = [k for k in keys if k[2] < number]
        for k in old:
            self._drop(k)
        return len(old)

    def oldest_open(self, sender: tuple, ant: int) -> tuple | None:
        """The key of ``sender``'s (= (node, sender)) oldest pending burst whose slot ``ant`` is empty."""
        return next((k for k in self._by_sender.get(sender, ()) if self._b[k][2][ant] is None), None)

    def expire(self, now: float) -> int:
        """Drop bursts older than ``timeout_s``; returns how many."""
        n = 0
        while self._b:
            key, (t0, _, _) = next(iter(self._b.items()))
            if now - t0 <= self.timeout_s:
                break
            self._drop(key)
            n += 1
        self.expired += n
        return n


def server_limits(topology: Bench) -> dict:
    """The server's resource limits in bytes and messages, derived from its ``[server]`` settings.

    [Note: resource limits]
    With ``M = max_message_bytes`` and ``A`` the most antennas of a node: pending (incomplete) bursts
    hold at most ``P = 2 max(8, data_hwm) A M`` bytes per sender and ``2 P`` in all
    (:class:`PendingBursts`; the loop reads up to 8 messages of one antenna in a row and ZMQ queues
    ``data_hwm`` per socket, so one antenna's messages may run that far ahead of another's); the queue of
    outputs waiting for a node's receiver holds at most ``max(OUT_QUEUE_BYTES, A M)`` bytes (a new
    output beyond it is dropped and counted as ``dropped_queue_full``); ZMQ queues at most
    ``data_hwm`` messages per data socket, ``data_hwm = clamp(OUT_QUEUE_BYTES // M, 2, hwm)``, as its
    high-water mark counts messages, not bytes. A stream-mode sender is not read while a receiver it
    feeds has a full queue (lossless back-pressure; its outputs still in flight may overshoot the
    queue by the worker's blocks and one drain turn). ``buffered_bytes_bound`` adds these up with the
    stream buffers and the worker queues: what the server's resident memory may grow by (plus
    allocator slack) whatever the clients send. docs/security.md lists the values.
    """
    cfg = topology.server
    m = cfg.max_message_bytes
    ants = [n.antennas for n in topology.nodes]
    a = max(ants)
    pads = max([cfg.lead_samples + cfg.lead_jitter + cfg.trail_samples]
               + [(lk.lead_samples or 0) + (lk.lead_jitter or 0) + (lk.trail_samples or 0) for lk in topology.links])
    m_out = m + 8 * (pads + MAX_EXTRA_RX_SAMPLES)  # one output row at most
    hwm = max(2, min(cfg.hwm, OUT_QUEUE_BYTES // m))
    queue_bytes = max(OUT_QUEUE_BYTES, a * m_out)
    per_sender = 2 * max(_DRAIN_PER_TURN, hwm) * a * m  # antennas' messages may arrive this far apart
    bound = 2 * per_sender  # pending bursts
    for n_ant in ants:
        bound += n_ant * (hwm * m + 4 * m)  # ZMQ receive queues, stream buffers
        bound += queue_bytes + n_ant * hwm * m_out  # output queue, ZMQ send queues
        bound += _DRAIN_PER_TURN * n_ant * m_out  # stream outputs past a full queue within one turn
    bound += 2 * len(topology.links) * (_PIPELINE_DEPTH + 2) * 2 * a * m_out  # blocks in and out of workers
    return {"max_message_bytes": m, "max_json_bytes": MAX_JSON_BYTES, "max_json_depth": MAX_JSON_DEPTH,
            "pending_bursts_per_sender": MAX_PENDING_PER_SENDER, "pending_bursts_total": MAX_PENDING_TOTAL,
            "pending_bytes_per_sender": per_sender, "pending_bytes_total": 2 * per_sender,
            "pending_timeout_s": PENDING_TIMEOUT_S, "max_extra_rx_samples": MAX_EXTRA_RX_SAMPLES,
            "queued_out_bytes_per_node": queue_bytes, "data_hwm": hwm, "hold_s": cfg.hold_s,
            "input_saturation": INPUT_FULL_SCALE_LIMIT, "buffered_bytes_bound": bound}


def _channel_api():
    """``(build_channel, build_reciprocal_link)`` of hil.channel (imported when a server starts)."""
    import hil.channel as hch

    bc, brl = getattr(hch, "build_channel", None), getattr(hch, "build_reciprocal_link", None)
    if bc is None or brl is None:
        from hil.channel import config as hcc

        bc, brl = hcc.build_channel, hcc.build_reciprocal_link
    return bc, brl


class _Wire:
    """An ideal wire (output = input), for a link whose spec is only ``fading = "none"`` (or empty).

    Served without importing hil.channel, so such servers start fast (tests, interop checks).
    """

    def __init__(self, n: int):
        self.n_in = self.n_out = n

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x

    def generate(self, n_samples: int) -> None:
        return None

    def apply(self, x: np.ndarray, coeffs: Any) -> np.ndarray:
        return x

    def state(self) -> dict:
        return {"model": "wire"}


def _is_wire(spec: Any) -> bool:
    return spec is None or dict(spec) in ({}, {"fading": "none"})


def build_link_models(link: LinkConfig, n_a: int, n_b: int, rng: np.random.Generator,
                      sample_rate_hz: float = 1e6) -> tuple[ChannelModel, ChannelModel]:
    """The channel models of both directions of a link: (a -> b, b -> a).

    A spec of only ``fading = "none"`` (or empty) between equal antenna counts is an ideal wire.
    A reciprocal link is built by ``hil.channel.build_reciprocal_link`` (the reverse is the transposed
    forward channel, CFO negated). A link whose spec says ``fading = "none"`` (an ideal wire, or
    only impairments such as AWGN and CFO) has nothing to transpose: each direction is built by
    ``hil.channel.build_channel``, the reverse with ``cfo_hz``/``sco_ppm`` negated. With
    ``reciprocal = false`` each direction is built on its own (``reverse_channel`` or the same spec).
    The node antenna counts and the server's ``sample_rate_hz`` are added to the spec unless given.

    Raises:
        ConfigError: the spec is invalid or the models' antenna counts do not match the nodes.
    """
    if n_a == n_b and _is_wire(link.channel) and (link.reciprocal or _is_wire(link.reverse_channel)):
        return _Wire(n_a), _Wire(n_b)
    build_channel, build_reciprocal_link = _channel_api()
    spec = {"sample_rate_hz": float(sample_rate_hz), **dict(link.channel)}
    try:
        if link.reciprocal and spec.get("fading") != "none":
            pair = build_reciprocal_link({"n_tx": n_a, "n_rx": n_b, **spec}, rng)
            fwd, rev = pair.forward, pair.reverse
        else:
            fwd = build_channel({"n_tx": n_a, "n_rx": n_b, **spec}, rng)
            if link.reverse_channel is not None:
                rspec = {"sample_rate_hz": float(sample_rate_hz), **dict(link.reverse_channel)}
            else:
                rspec = dict(spec)
                if link.reciprocal:  # fading "none": the same impairments, offsets seen from the other end
                    for k in ("cfo_hz", "sco_ppm"):
                        if rspec.get(k):
                            rspec[k] = -float(rspec[k])
            rev = build_channel({"n_tx": n_b, "n_rx": n_a, **rspec}, rng)
    except (ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"link {link.name}: invalid channel spec {dict(link.channel)!r}: {e}") from e
    for name, m, nin, nout in ((f"{link.a}->{link.b}", fwd, n_a, n_b), (f"{link.b}->{link.a}", rev, n_b, n_a)):
        if (m.n_in, m.n_out) != (nin, nout):
            raise ConfigError(
                f"link {name}: channel model maps {m.n_in} -> {m.n_out} antennas but the nodes have "
                f"{nin} -> {nout}; fix the antenna counts or the spec"
            )
    return fwd, rev


@dataclass
class _Direction:
    """One direction of a link: src -> dst through ``model``."""

    name: str
    src: str
    dst: str
    model: ChannelModel
    lead: int
    jitter: int
    trail: int
    spec: dict = field(default_factory=dict)  # the channel spec as configured (shown in the info reply)
    bursts: int = 0
    model_s: float = 0.0  # time spent in generate + apply (wall)
    model_cpu_s: float = 0.0  # CPU time of the calling thread in generate + apply (wall minus waits)
    last_event: dict | None = None
    last_state: dict | None = None
    worker: "_Worker | None" = None
    outstanding: int = 0  # blocks handed to the worker whose output has not come back
    splitter: ThreadPoolExecutor | None = None  # second thread for the other half of a block (pure models)
    lock: threading.Lock = field(default_factory=threading.Lock)  # one model call at a time (TCP and shm paths)


class _Worker(threading.Thread):
    """Runs one link direction's channel model on its own thread (see [Note: pipelining])."""

    def __init__(self, server: "ChannelServer", d: _Direction):
        super().__init__(name=f"chsrv-{d.name}", daemon=True)
        self.server, self.d = server, d
        self.inq: queue.Queue = queue.Queue(maxsize=_PIPELINE_DEPTH)

    def run(self) -> None:
        d = self.d
        if self.server.cfg.apply_threads > 1 and apply_is_pure(d.model):
            d.splitter = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"chsrv-{d.name}-half")
        log.info("channel %s: worker thread started%s", d.name,
                 ", blocks split over 2 threads" if d.splitter else "")
        wake = self.server.ctx.socket(zmq.PUSH)
        wake.setsockopt(zmq.LINGER, 0)
        wake.connect(self.server._wake_endpoint)
        try:
            while True:
                item = self.inq.get()
                if item is None:
                    return
                x, ev = item
                y, st = self.server._compute(self.d, x)
                self.server._results.put((self.d, y, ev, st))
                try:
                    wake.send(b"", zmq.NOBLOCK)
                except zmq.Again:  # the loop has plenty of wake-ups queued; it also polls the results
                    pass
        except zmq.ZMQError:  # context terminated while stopping
            return
        finally:
            wake.close(0)


_MAX_SHM_SESSIONS = 8


class _ShmSession:
    """One shared-memory session of a link direction (see [Note: shared-memory data plane] in hil.radio.shm).

    Stream-mode source (*chunks*): a thread of its own takes each doorbell ``(j, n, _, _)``: input slot
    ``j`` holds ``[n_in, n]`` packed samples; the slot is validated as a TCP message is (NaN/Inf
    rejected, huge values saturated in place), the model runs from it into output slot ``j`` (packed
    ``[n_out, n]``) and the doorbell answers ``(j, n, 0, 0)``, or ``(j, -1, 0, 0)`` for a rejected chunk.

    Burst-mode source (*bursts*): the server's loop polls the doorbell with its sockets and takes
    each burst as it takes one over TCP (:meth:`ChannelServer._shm_burst`). Counters and model times
    go to the same stats as the TCP path.
    """

    def __init__(self, server: "ChannelServer", d: _Direction, slot_samples: int, slots: int):
        from hil.radio.shm import SHM_PREFIX, Doorbell, ShmRing

        self.server, self.d = server, d
        self.mode = "chunk" if server.nodes[d.src].cfg.mode == "stream" else "burst"
        self.id = f"{os.getpid()}-{secrets.token_hex(6)}"
        self.inp = ShmRing.create(f"{SHM_PREFIX}{self.id}-in", slots, d.model.n_in, slot_samples)
        self.out = self.bell = None
        try:
            self.out = ShmRing.create(f"{SHM_PREFIX}{self.id}-out", slots, d.model.n_out, slot_samples)
            self.bell = Doorbell(f"{SHM_PREFIX}{self.id}-db")
        except Exception:
            self._close_rings()
            raise
        self._halt = False
        self._thread = None
        if self.mode == "chunk":
            self._thread = threading.Thread(target=self._serve_chunks, name=f"chsrv-shm-{d.name}", daemon=True)
            self._thread.start()

    def _close_rings(self) -> None:
        for r in (self.bell, self.inp, self.out):
            if r is not None:
                r.close()

    def stop(self) -> None:
        self._halt = True
        th = self._thread
        if th is not None and th.is_alive() and threading.current_thread() is not th:
            th.join(timeout=2.0)
        if th is None or not th.is_alive():
            self._close_rings()

    def _serve_chunks(self) -> None:
        from hil.radio.shm import DOORBELL

        srv, d = self.server, self.d
        src, dst = srv.nodes[d.src], srv.nodes[d.dst]
        sock = self.bell.sock
        sock.settimeout(_POLL_MS / 1000)
        while not self._halt:
            try:
                data, addr = sock.recvfrom(64)
            except (TimeoutError, BlockingIOError, InterruptedError):
                continue
            except OSError:  # closed while stopping
                return
            if len(data) != DOORBELL.size:
                self._malformed(len(data), src)
                continue
            j, n, _, _ = DOORBELL.unpack(data)
            ok = self._chunk(j, n, src, dst)
            self._answer(j, n if ok else -1, addr)

    def serve_bursts(self) -> None:
        """Take the bursts waiting on the doorbell (the server's loop, when it polls readable)."""
        src = self.server.nodes[self.d.src]
        for _ in range(_DRAIN_PER_TURN):
            got = self.bell.take()
            if got is None:
                return
            bell, addr, size = got
            if bell is None:
                self._malformed(size, src)
                continue
            j, n, capture, seq = bell
            try:
                m = self.server._shm_burst(self, j, n, capture, seq)
            except Exception as e:  # noqa: BLE001 - [Note: per-message guard]
                log.exception("shm %s slot %d: burst not handled", self.d.name, j)
                self.server._reject(R_INTERNAL, f"shm {self.d.name} slot {j}: {type(e).__name__}: {e}", src)
                m = -1
            self._answer(j, m, addr, seq)

    def _malformed(self, size: int, src: _NodeRt) -> None:
        from hil.radio.shm import DOORBELL

        self.server._reject(R_BAD_HEADER, f"shm {self.d.name}: doorbell of {size} bytes, expected "
                                          f"{DOORBELL.size}; not answered", src)

    def _answer(self, j: int, m: int, addr: Any, seq: int = 0) -> None:
        try:
            self.bell.ring(j, m, 0, seq, to=addr)
        except OSError as e:  # the client's doorbell is gone (it closed or died): nobody to answer
            log.info("shm %s: the client's doorbell is gone (%s); answer dropped", self.d.name, e)

    def _chunk(self, j: int, n: int, src: _NodeRt, dst: _NodeRt) -> bool:
        srv, d = self.server, self.d
        where = f"shm {d.name} slot {j}"
        if not (0 <= j < self.inp.slots and 0 < n <= self.inp.slot_samples):
            srv._reject(R_TOO_LARGE, f"{where}: slot must be in [0, {self.inp.slots}) and samples in "
                                     f"[1, {self.inp.slot_samples}], got ({j}, {n})", src)
            return False
        x, y = self.inp.packed(j, n), self.out.packed(j, n)
        f = x.reshape(-1).view(np.float32)
        load = getattr(d.model, "load_input", None)
        with d.lock:  # the model's input buffer is the model's: one chunk at a time (TCP path too)
            t, tc = time.perf_counter(), time.thread_time()  # the kernel's input pass counts as the model's
            try:
                # with the fused kernel the screen is taken while the kernel copies the slot into its
                # own buffer, and the model filters that screened copy (see [Note: screen in the input
                # pass] in hil.channel.fast); nothing is drawn before the verdict
                bad, over = screen_samples(f, load(x) if load is not None else None)
                if over:  # [Note: saturation], in place in the client's slot, then read again
                    lim = np.float32(INPUT_FULL_SCALE_LIMIT)
                    np.clip(f, -lim, lim, out=f)
                    src.c["saturated"] += 1
                    srv.totals["saturated"] += 1
                    if load is not None and screen_samples(f, load(x)) != (0, False):
                        srv._reject(R_NON_FINITE, f"{where}: the client rewrote the slot while it was read", src)
                        return False
                if bad:
                    srv._reject(R_NON_FINITE, f"{where}: {bad} NaN/Inf value(s)", src)
                    return False
                c = d.model.generate(n)
                if hasattr(d.model, "apply_into"):
                    d.model.apply_into(x, c, y)
                else:
                    y[...] = d.model.apply(x, c)
            except Exception:  # noqa: BLE001 - a broken model must not stop the server
                log.exception("channel %s failed on a shared-memory chunk of %d samples", d.name, n)
                srv.totals["model_errors"] += 1
                return False
            finally:
                if load is not None:
                    d.model.unload_input()
                d.model_s += time.perf_counter() - t
                d.model_cpu_s += time.thread_time() - tc
        d.bursts += 1
        for rt, k in ((src, "samples_in"), (dst, "samples_out")):
            rt.c[k] += n
            srv.totals[k] += n
        return True


@dataclass
class _Out:
    """An output waiting to be written: one frame per receive antenna."""

    rows: list
    deadline: float
    event: dict
    next_antenna: int = 0


@dataclass
class _NodeRt:
    """Runtime state of a node."""

    cfg: NodeConfig
    tx_socks: list = field(default_factory=list)
    rx_socks: list = field(default_factory=list)
    tx_endpoints: list = field(default_factory=list)
    rx_endpoints: list = field(default_factory=list)
    directions: dict = field(default_factory=dict)  # dst name -> _Direction
    auto_key: list = field(default_factory=list)  # per antenna message counter (headerless bursts)
    stream_buf: list = field(default_factory=list)  # per antenna deque of arrays
    stream_avail: list = field(default_factory=list)
    out: deque = field(default_factory=deque)
    out_bytes: int = 0  # bytes of the outputs in ``out``
    readers: list = field(default_factory=list)  # per antenna: peers connected to the rx socket
    c: dict = field(default_factory=dict)  # counters
    requests: list = field(default_factory=list)  # reqrep, per antenna: a request waits for our reply (rx REP)
    awaiting: list = field(default_factory=list)  # reqrep, per antenna: our request waits for samples (tx REQ)
    pace_next: float = 0.0  # pace: monotonic time before which this stream node's input is not read
    warned_headerless: bool = False
    last_header: tuple = (None, None)  # (raw bytes, validated header) of the last header accepted


_REJECT = object()  # placeholder of a rejected antenna message inside a pending burst


def _counters() -> dict:
    return {"messages_in": 0, "samples_in": 0, "samples_out": 0, "bursts_in": 0, "bursts_out": 0,
            "rejected": 0, "dropped": 0, "dropped_queue_full": 0, "incomplete": 0, "saturated": 0, "seq": 0,
            "headerless_burst": 0, "requests_in": 0, "requests_out": 0}


class ChannelServer:
    """Serves a :class:`Bench` over ZMQ. Create, :meth:`bind`, then :meth:`serve_forever`.

    Args:
        topology: nodes, links and server settings.
        context: a ZMQ context (default: a new one with ``io_threads`` threads).
        channel_factory: ``(link, n_a, n_b, rng, sample_rate_hz) -> (model a->b, model b->a)``; default
            :func:`build_link_models` (hil.channel).
    """

    def __init__(self, topology: Bench, *, context: zmq.Context | None = None,
                 channel_factory: Callable[..., tuple[ChannelModel, ChannelModel]] | None = None):
        self.topo = topology
        self.cfg = topology.server
        self._own_ctx = context is None
        self.ctx = context or zmq.Context(io_threads=self.cfg.io_threads)
        self._factory = channel_factory or build_link_models
        self._stop = False
        self._bound = False
        self._closed = False
        self.nodes: dict[str, _NodeRt] = {}
        self._sock_owner: dict[zmq.Socket, tuple[_NodeRt, int]] = {}
        self.rejected_by_reason = {r: 0 for r in REASONS}
        self.totals = dict(_counters(), model_errors=0, pending_evicted=0, pending_expired=0)
        self.started = time.time()
        self.limits = server_limits(topology)
        lim = self.limits
        self.pending = PendingBursts(MAX_PENDING_PER_SENDER, lim["pending_bytes_per_sender"], MAX_PENDING_TOTAL,
                                     lim["pending_bytes_total"], PENDING_TIMEOUT_S)
        root = np.random.default_rng(self.cfg.seed)
        link_rngs = root.spawn(len(topology.links) + 1)
        self._jitter_rng = link_rngs[-1]
        for n in topology.nodes:
            self.nodes[n.name] = _NodeRt(cfg=n, c=_counters(), auto_key=[0] * n.antennas, readers=[0] * n.antennas,
                                         stream_buf=[deque() for _ in range(n.antennas)],
                                         stream_avail=[0] * n.antennas, requests=[False] * n.antennas,
                                         awaiting=[False] * n.antennas)
        s = self.cfg
        for link, rng in zip(topology.links, link_rngs):
            na, nb = self.nodes[link.a].cfg.antennas, self.nodes[link.b].cfg.antennas
            fwd, rev = self._factory(link, na, nb, rng, s.sample_rate_hz)
            pads = dict(lead=s.lead_samples if link.lead_samples is None else link.lead_samples,
                        jitter=s.lead_jitter if link.lead_jitter is None else link.lead_jitter,
                        trail=s.trail_samples if link.trail_samples is None else link.trail_samples)
            rev_spec = link.channel if link.reciprocal or link.reverse_channel is None else link.reverse_channel
            self.nodes[link.a].directions[link.b] = _Direction(f"{link.a}->{link.b}", link.a, link.b, fwd, **pads,
                                                               spec=dict(link.channel))
            self.nodes[link.b].directions[link.a] = _Direction(f"{link.b}->{link.a}", link.b, link.a, rev, **pads,
                                                               spec=dict(rev_spec))
        self.control_endpoint = ""
        self.events_endpoint = ""
        self._monitors: dict[zmq.Socket, tuple[_NodeRt, int]] = {}  # rx socket monitors: reader counts
        self._req_monitors: dict[zmq.Socket, tuple[_NodeRt, int]] = {}  # tx REQ monitors: a lost peer
        self._slots = {tag: k for k, tag in enumerate(endpoint_slots(topology))}
        self._results: queue.Queue = queue.Queue()
        self._shm: dict[str, _ShmSession] = {}

    # ------------------------------------------------------------------ sockets
    def _default_endpoint(self, tag: str) -> str:
        if self.cfg.transport == "ipc":
            return f"ipc://{self.cfg.ipc_dir}/hil-chsrv-{os.getpid()}-{tag}"
        if self.cfg.port_base:
            return f"tcp://{self.cfg.host}:{self.cfg.port_base + self._slots[tag]}"
        return f"tcp://{self.cfg.host}:*"

    def _open(self, kind: int, bind: str, connect: str, tag: str) -> tuple[zmq.Socket, str]:
        sock = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        if kind in (zmq.PULL, zmq.SUB, zmq.PUSH, zmq.PUB):
            sock.setsockopt(zmq.RCVHWM if kind in (zmq.PULL, zmq.SUB) else zmq.SNDHWM, self.limits["data_hwm"])
        if kind == zmq.REQ and tag != "control":
            # [Note: REQ/REP sample sockets]: one request in flight; after a lost peer, ask again
            sock.setsockopt(zmq.REQ_RELAXED, 1)
            sock.setsockopt(zmq.REQ_CORRELATE, 1)
        if kind in (zmq.PULL, zmq.SUB, zmq.REQ):
            # Hard limit well above the soft one: above it ZMQ drops the connection (memory safety).
            sock.setsockopt(zmq.MAXMSGSIZE, 4 * self.cfg.max_message_bytes + MAX_JSON_BYTES)
        if kind == zmq.SUB:
            sock.setsockopt(zmq.SUBSCRIBE, b"")
        try:
            if connect:
                sock.connect(connect)
                return sock, connect
            sock.bind(bind or self._default_endpoint(tag))
        except zmq.ZMQError as e:
            sock.close(0)
            raise ConfigError(f"cannot {'connect' if connect else 'bind'} {tag} on "
                              f"{connect or bind or self._default_endpoint(tag)!r}: {e}") from e
        return sock, sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def bind(self) -> dict:
        """Create and bind (or connect) every socket. Returns :meth:`info` (with the bound endpoints)."""
        if self._bound:
            return self.info()
        try:
            self._ctl, self.control_endpoint = self._open(zmq.REP, self.cfg.control, "", "control")
            self._ev, self.events_endpoint = self._open(zmq.PUB, self.cfg.events, "", "events")
            self._wake = self.ctx.socket(zmq.PULL)  # workers say "output ready" here
            self._wake.setsockopt(zmq.LINGER, 0)
            self._wake_endpoint = f"inproc://chsrv-wake-{id(self)}"
            self._wake.bind(self._wake_endpoint)
            for rt in self.nodes.values():
                n = rt.cfg
                # (socket reading the node's tx stream, socket writing its rx stream) per pattern
                in_kind, out_kind = {"pushpull": (zmq.PULL, zmq.PUSH), "pubsub": (zmq.SUB, zmq.PUB),
                                     "reqrep": (zmq.REQ, zmq.REP)}[n.pattern]
                for i in range(n.antennas):
                    tag = f"{n.name}-tx{i}"
                    s, ep = self._open(in_kind, n.tx_bind[i] if n.tx_bind else "", n.tx_connect[i] if n.tx_connect
                                       else self._default_endpoint(tag) if n.tx_role == "connect" else "", tag)
                    rt.tx_socks.append(s)
                    rt.tx_endpoints.append(ep)
                    self._sock_owner[s] = (rt, i)
                    if in_kind == zmq.REQ:
                        self._req_monitors[s.get_monitor_socket(zmq.EVENT_DISCONNECTED)] = (rt, i)
                    tag = f"{n.name}-rx{i}"
                    s, ep = self._open(out_kind, n.rx_bind[i] if n.rx_bind else "", n.rx_connect[i] if n.rx_connect
                                       else self._default_endpoint(tag) if n.rx_role == "connect" else "", tag)
                    rt.rx_socks.append(s)
                    rt.rx_endpoints.append(ep)
                    mon = s.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
                    self._monitors[mon] = (rt, i)
        except Exception:
            self.close()
            raise
        self._bound = True
        fast = sys.modules.get("hil.channel.fast")
        if fast is not None and fast.available():
            # the numba kernels compiled (or loaded from their cache) before the ready line, not on
            # the first message (a compile takes seconds on a busy machine)
            fast.warm_up()
        return self.info()

    def info(self) -> dict:
        """Endpoints, nodes, links and settings: what a client needs (JSON-serialisable)."""
        s = self.cfg
        return {
            "server": "hil-channel-server",
            "version": 1,
            "pid": os.getpid(),
            "control": self.control_endpoint,
            "events": self.events_endpoint,
            "sample_rate_hz": s.sample_rate_hz,
            "max_message_bytes": s.max_message_bytes,
            "test_mode": s.test_mode,
            "port_base": s.port_base or None,
            "pace": s.pace,
            "limits": dict(self.limits),
            "nodes": {
                name: {"antennas": rt.cfg.antennas, "mode": rt.cfg.mode, "pattern": rt.cfg.pattern,
                       "tx": list(rt.tx_endpoints), "rx": list(rt.rx_endpoints),
                       "tx_role": "connect" if rt.cfg.tx_connect or rt.cfg.tx_role == "connect" else "bind",
                       "rx_role": "connect" if rt.cfg.rx_connect or rt.cfg.rx_role == "connect" else "bind",
                       "peers": sorted(rt.directions)}
                for name, rt in self.nodes.items()
            },
            "links": {
                d.name: {"src": d.src, "dst": d.dst, "lead_samples": d.lead, "lead_jitter": d.jitter,
                         "trail_samples": d.trail, "model": type(d.model).__name__, "channel": d.spec}
                for rt in self.nodes.values() for d in rt.directions.values()
            },
        }

    # ------------------------------------------------------------------ loop
    def stop(self) -> None:
        """Ask :meth:`serve_forever` to return (safe from a signal handler or another thread)."""
        self._stop = True

    def serve_forever(self) -> None:
        """Serve until :meth:`stop`; then close every socket. Returns within ~0.1 s of ``stop()``."""
        self.bind()
        poller = zmq.Poller()
        for s in (self._ctl, self._wake, *self._monitors, *self._req_monitors):
            poller.register(s, zmq.POLLIN)
        flags: dict[zmq.Socket, int] = {}  # the data sockets' current poll flags
        rx_owner = {s: (rt, i) for rt in self.nodes.values() for i, s in enumerate(rt.rx_socks)}
        log.info("channel server serving %d node(s), %d link(s); control %s",
                 len(self.nodes), len(self.topo.links), self.control_endpoint)
        try:
            while not self._stop:
                now = time.monotonic()
                want = self._poll_flags(now)
                for s in set(flags) - set(want):
                    poller.unregister(s)
                for s, f in want.items():
                    if flags.get(s) != f:
                        poller.register(s, f)  # registering again replaces the flags
                flags = want
                timeout = _POLL_MS
                if not self._results.empty():
                    timeout = 0
                if any(rt.out for rt in self.nodes.values()):
                    nearest = min(rt.out[0].deadline for rt in self.nodes.values() if rt.out)
                    timeout = max(0, min(timeout, int((nearest - now) * 1000) + 1))
                if self.cfg.pace:
                    waits = [rt.pace_next - now for rt in self.nodes.values()
                             if rt.cfg.mode == "stream" and rt.pace_next > now]
                    if waits:
                        timeout = max(0, min(timeout, math.ceil(min(waits) * 1000)))
                try:
                    ready = poller.poll(timeout)
                except zmq.ZMQError as e:
                    if e.errno == zmq.EINTR:
                        continue
                    raise
                for sock, ev in ready:
                    if self._stop:
                        break
                    if sock is self._ctl:
                        self._handle_control()
                    elif sock is self._wake:
                        pass  # results are collected below
                    elif sock in self._monitors:
                        self._monitor_event(sock)
                    elif sock in self._req_monitors:
                        self._req_monitor_event(sock)
                    elif sock in self._sock_owner:
                        rt, ant = self._sock_owner[sock]
                        if rt.cfg.pattern == "reqrep":
                            self._request_samples(rt, ant, sock, ev)
                        elif ev & zmq.POLLIN:
                            self._drain(rt, ant, sock)
                    elif sock in rx_owner:
                        rt, ant = rx_owner[sock]
                        if ev & zmq.POLLIN and rt.cfg.pattern == "reqrep":
                            self._take_request(rt, ant, sock)
                        elif ev & zmq.POLLOUT:
                            self._flush(rt)
                    else:  # a burst session's doorbell (one closed this turn is skipped)
                        sess = next((x for x in self._shm.values() if x.mode == "burst" and x.bell.fileno() == sock), None)
                        if sess is not None:
                            sess.serve_bursts()
                self._collect()
                self._expire()
        finally:
            self.close()

    def _poll_flags(self, now: float) -> dict:
        """What each data socket waits for this turn: ``{socket: zmq.POLLIN | zmq.POLLOUT}``.

        Input sockets wait for samples (a REQ socket first for room to send its request), unless the
        stream node is paused: a receiver it feeds has a full output queue (lossless back-pressure
        through ZMQ; burst outputs beyond it are dropped, see _enqueue) or ``pace`` holds it back.
        Output sockets with queued output wait for POLLOUT (a receiver that can take data); a REP
        output socket always waits for the next request.
        """
        lim = self.limits["queued_out_bytes_per_node"]
        want: dict[zmq.Socket, int] = {}
        for rt in self.nodes.values():
            stream = rt.cfg.mode == "stream"
            paused = stream and (any(self.nodes[d].out_bytes >= lim for d in rt.directions)
                                 or (self.cfg.pace and rt.pace_next > now))
            reqrep = rt.cfg.pattern == "reqrep"
            if not paused:
                for i, s in enumerate(rt.tx_socks):
                    want[s] = zmq.POLLOUT if reqrep and not rt.awaiting[i] else zmq.POLLIN
            if reqrep:
                for s in rt.rx_socks:
                    want[s] = zmq.POLLIN
            elif rt.out:
                want[rt.rx_socks[rt.out[0].next_antenna]] = zmq.POLLOUT
        for sess in self._shm.values():
            if sess.mode == "burst":
                want[sess.bell.fileno()] = zmq.POLLIN  # the poller answers a native socket by its fd
        return want

    def _drain(self, rt: _NodeRt, ant: int, sock: zmq.Socket) -> None:
        """Read up to _DRAIN_PER_TURN messages of one input socket, each inside the per-message guard."""
        for _ in range(_DRAIN_PER_TURN):
            if self.cfg.pace and rt.cfg.mode == "stream" and rt.pace_next > time.monotonic():
                return
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._guarded_message(rt, ant, frames)

    def _guarded_message(self, rt: _NodeRt, ant: int, frames: list) -> None:
        try:
            self._handle_message(rt, ant, frames)
        except Exception as e:  # noqa: BLE001 - [Note: per-message guard]
            log.exception("node %r antenna %d: message not handled", rt.cfg.name, ant)
            self._reject(R_INTERNAL, f"node {rt.cfg.name!r} antenna {ant}: {type(e).__name__}: {e}", rt)

    def _request_samples(self, rt: _NodeRt, ant: int, sock: zmq.Socket, ev: int) -> None:
        """A REQ input socket: send the 1-byte request, or take the samples that answer it.

        [Note: REQ/REP sample sockets]
        srsRAN's ZMQ radio (lib/src/phy/rf/rf_zmq_imp_tx.c, rf_zmq_imp_rx.c) transmits on a REP socket
        that it binds: it waits for a request (it reads one byte and ignores it) and answers with the
        samples of its next transmit call, raw cf32. It receives on a REQ socket that connects: it sends
        one byte (0xFF) and receives up to 3072000 cf32 samples. So a ``pattern = "reqrep"`` node reads
        its tx stream through a REQ socket (one request in flight, 0xFF like srsRAN's) and writes its rx
        stream through a REP socket (a request waits until an output is queued, which answers it; each
        output answers exactly one request). The REQ socket is relaxed and correlated: when its peer
        disconnects (monitor event) the server asks again, and a late answer to the old request is
        dropped by ZMQ rather than taken as the next samples.
        """
        if not rt.awaiting[ant]:
            if ev & zmq.POLLOUT:
                try:
                    sock.send(b"\xff", zmq.NOBLOCK)
                except zmq.Again:
                    return
                rt.awaiting[ant] = True
                rt.c["requests_out"] += 1
                self.totals["requests_out"] += 1
            return
        if ev & zmq.POLLIN:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            rt.awaiting[ant] = False
            self._guarded_message(rt, ant, frames)

    def _take_request(self, rt: _NodeRt, ant: int, sock: zmq.Socket) -> None:
        """A request on a REP output socket (its content is ignored, as srsRAN's own REP does)."""
        try:
            sock.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return
        rt.requests[ant] = True
        rt.c["requests_in"] += 1
        self.totals["requests_in"] += 1
        if rt.out:
            self._flush(rt)

    def _req_monitor_event(self, mon: zmq.Socket) -> None:
        """A REQ input socket lost its peer: its request is gone with it, so ask again (REQ_RELAXED)."""
        from zmq.utils.monitor import recv_monitor_message

        rt, ant = self._req_monitors[mon]
        try:
            while True:
                if recv_monitor_message(mon, zmq.NOBLOCK)["event"] == zmq.EVENT_DISCONNECTED:
                    rt.awaiting[ant] = False
        except zmq.Again:
            pass

    def _monitor_event(self, mon: zmq.Socket) -> None:
        """Count the peers connected to an rx socket (``readers`` in stats; two readers split the output)."""
        from zmq.utils.monitor import recv_monitor_message

        rt, ant = self._monitors[mon]
        try:
            while True:
                ev = recv_monitor_message(mon, zmq.NOBLOCK)["event"]
                if ev in (zmq.EVENT_ACCEPTED, zmq.EVENT_CONNECTED):
                    rt.readers[ant] += 1
                elif ev == zmq.EVENT_DISCONNECTED:
                    rt.readers[ant] = max(0, rt.readers[ant] - 1)
        except zmq.Again:
            pass

    def close(self) -> None:
        """Close every socket (and the context if the server created it). Idempotent."""
        if self._closed:
            return
        self._closed = True
        for sess in list(self._shm.values()):
            sess.stop()
        self._shm.clear()
        workers = [d.worker for rt in self.nodes.values() for d in rt.directions.values() if d.worker]
        for w in workers:
            while True:  # make room for the stop sentinel: queued blocks are dropped on stop
                try:
                    w.inq.put_nowait(None)
                    break
                except queue.Full:
                    try:
                        w.inq.get_nowait()
                    except queue.Empty:
                        pass
        for w in workers:
            w.join(timeout=0.5)
            if w.d.splitter is not None:
                w.d.splitter.shutdown(wait=False, cancel_futures=True)
        for m in (*self._monitors, *self._req_monitors):
            m.close(0)
        for rt in self.nodes.values():
            for s in rt.tx_socks + rt.rx_socks:
                s.close(0)
        for name in ("_ctl", "_ev", "_wake"):
            s = getattr(self, name, None)
            if s is not None:
                s.close(0)
        if self._own_ctx:
            if any(w.is_alive() for w in workers):  # a model call still running: do not wait for it
                log.warning("a channel worker is still busy; leaving the ZMQ context to the process exit")
            else:
                self.ctx.term()
        log.info("channel server stopped")

    # ------------------------------------------------------------------ input
    def _reject(self, reason: str, detail: str, rt: _NodeRt | None = None) -> None:
        self.rejected_by_reason[reason] += 1
        self.totals["rejected"] += 1
        if rt is not None:
            rt.c["rejected"] += 1
        log.warning("rejected (%s): %s", reason, detail)

    def _parse_header(self, rt: _NodeRt, ant: int, frame: zmq.Frame) -> dict | None:
        raw = frame.bytes
        if raw == rt.last_header[0]:
            # the other antennas of a burst carry the same header bytes (ZmqRadio): parsed and
            # checked once (the checks depend on the bytes and the topology only; nobody writes it)
            return rt.last_header[1]
        where = f"node {rt.cfg.name!r} antenna {ant} ({rt.tx_endpoints[ant]})"
        try:
            h = parse_header(raw)
        except BadMessage as e:
            self._reject(e.reason, f"{where}: {e}", rt)
            return None
        if h.get("rx_samples", 0) * 8 > self.cfg.max_message_bytes:
            self._reject(R_TOO_LARGE, f"{where}: rx_samples {h['rx_samples']} exceeds max_message_bytes/8", rt)
            return None
        dst = h.get("dst")
        if dst is not None:
            if dst not in self.nodes:
                self._reject(R_UNKNOWN_NODE, f"{where}: header names unknown node {dst!r:.64}; "
                                             f"known nodes are {sorted(self.nodes)}", rt)
                return None
            if dst not in rt.directions:
                self._reject(R_NO_LINK, f"{where}: no link {rt.cfg.name!r} -> {dst!r}; "
                                        f"linked nodes are {sorted(rt.directions)}", rt)
                return None
        rt.last_header = (raw, h)
        return h

    def _handle_message(self, rt: _NodeRt, ant: int, frames: list) -> None:
        rt.c["messages_in"] += 1
        self.totals["messages_in"] += 1
        header: dict | None = {}
        if len(frames) == 2:
            header = self._parse_header(rt, ant, frames[0])
        elif len(frames) > 2:
            self._reject(R_BAD_HEADER, f"node {rt.cfg.name!r} antenna {ant}: {len(frames)} frames; "
                                       "send [samples] or [json header, samples]", rt)
            header = None
        x = None if header is None else self._samples(rt, ant, frames[-1])
        if len(frames) == 1 and rt.cfg.mode == "burst":
            self._headerless_burst(rt, ant)
        if rt.cfg.mode == "stream":
            if x is not None:
                rt.stream_buf[ant].append(x)
                rt.stream_avail[ant] += x.size
                self._process_stream(rt)
            return
        # burst key (see [Note: pending bursts]): (node, sender, number)
        if header and "seq" in header:
            key = (rt.cfg.name, header.get("sender", ""), header["seq"])
        else:  # headerless: the oldest pending burst still missing this antenna, else a new one
            key = self.pending.oldest_open((rt.cfg.name, None), ant)
            if key is None:
                key = (rt.cfg.name, None, rt.auto_key[0])
                rt.auto_key[0] += 1
        evicted0 = self.pending.evicted
        slots, dropped = self.pending.add(key, rt.cfg.antennas, ant, _REJECT if x is None else (x, header),
                                          0 if x is None else x.nbytes, time.monotonic())
        if dropped:
            rt.c["incomplete"] += dropped
            self.totals["incomplete"] += dropped
            self.totals["pending_evicted"] += self.pending.evicted - evicted0
        if slots is None or any(s is _REJECT for s in slots):
            return  # incomplete, or an antenna's message was rejected (already counted)
        self._process_burst(rt, [s[0] for s in slots], slots[0][1] or {})

    def _headerless_burst(self, rt: _NodeRt, ant: int) -> None:
        """Count a headerless message on a burst-mode node; warn once per node (a GNU Radio stream needs
        ``mode = "stream"``, else every message becomes a noise-padded burst)."""
        rt.c["headerless_burst"] += 1
        self.totals["headerless_burst"] += 1
        if not rt.warned_headerless:
            rt.warned_headerless = True
            log.warning("node %r is in burst mode and antenna %d (%s) sends messages without a header: each "
                        "message becomes one burst padded with %s noise samples. A continuous stream (GNU "
                        "Radio, srsRAN) needs mode = \"stream\" on this node. (Warned once; counted as "
                        "headerless_burst in stats.)", rt.cfg.name, ant, rt.tx_endpoints[ant],
                        "lead/jitter/trail")

    def _samples(self, rt: _NodeRt, ant: int, frame: zmq.Frame) -> np.ndarray | None:
        """Validate one cf32 message; returns complex64 (n,) or None (rejected and counted)."""
        buf = frame.buffer
        nbytes = buf.nbytes
        where = f"node {rt.cfg.name!r} antenna {ant} ({rt.tx_endpoints[ant]})"
        if nbytes == 0:
            self._reject(R_EMPTY, f"{where}: empty message", rt)
            return None
        if nbytes % 8:
            self._reject(R_LENGTH, f"{where}: {nbytes} bytes is not a multiple of 8 (cf32 = 2 x float32)", rt)
            return None
        if nbytes > self.cfg.max_message_bytes:
            self._reject(R_TOO_LARGE, f"{where}: {nbytes} bytes > max_message_bytes "
                                      f"{self.cfg.max_message_bytes}; split the burst or raise the limit", rt)
            return None
        x = np.frombuffer(buf, dtype=np.complex64)
        f = x.view(np.float32)
        bad, over = screen_samples(f)
        if bad:
            self._reject(R_NON_FINITE, f"{where}: {bad} NaN/Inf value(s) in {x.size} samples", rt)
            return None
        if over:  # [Note: saturation]
            lim = np.float32(INPUT_FULL_SCALE_LIMIT)
            x = np.clip(f, -lim, lim).view(np.complex64)
            rt.c["saturated"] += 1
            self.totals["saturated"] += 1
            log.warning("%s: samples beyond +-%g saturated (a front end clips too)", where, lim)
        rt.c["samples_in"] += x.size
        self.totals["samples_in"] += x.size
        return x

    # ------------------------------------------------------------------ processing
    def _targets(self, rt: _NodeRt, header: dict) -> list[_Direction]:
        dst = header.get("dst")
        return [rt.directions[dst]] if dst else list(rt.directions.values())

    def _compute(self, d: _Direction, x: np.ndarray) -> tuple[np.ndarray | None, dict | None]:
        """generate + apply of ``d``'s model on ``x`` [n_tx, n] -> ([n_rx, n] complex64, test-mode state).

        Returns (None, None) if the model raised (logged and counted: a broken model must not stop the server).
        """
        n = x.shape[1]
        with d.lock:
            return self._compute_locked(d, x, n)

    def _compute_locked(self, d: _Direction, x: np.ndarray, n: int) -> tuple[np.ndarray | None, dict | None]:
        t, tc = time.perf_counter(), time.thread_time()
        try:
            if d.splitter is not None and n >= _SPLIT_MIN_SAMPLES:
                # a pure model: the two halves' coefficients in order, their apply on two threads
                h = n // 2
                c0, c1 = d.model.generate(h), d.model.generate(n - h)
                first = d.splitter.submit(d.model.apply, x[:, :h], c0)
                y1 = np.asarray(d.model.apply(x[:, h:], c1))
                y = np.concatenate([np.asarray(first.result()), y1], axis=1).astype(np.complex64, copy=False)
            else:
                y = d.model.apply(x, d.model.generate(n))
            y = np.asarray(y)
            if y.dtype != np.complex64 or not y.flags.c_contiguous:
                y = np.ascontiguousarray(y, dtype=np.complex64)
            if y.shape != (self.nodes[d.dst].cfg.antennas, n):
                raise RuntimeError(f"model returned shape {y.shape}, expected ({self.nodes[d.dst].cfg.antennas}, {n})")
            st = _jsonable(d.model.state()) if self.cfg.test_mode else None
        except Exception:  # noqa: BLE001
            log.exception("channel %s failed on a block of %d samples; block dropped", d.name, n)
            self.totals["model_errors"] += 1
            return None, None
        finally:
            d.model_s += time.perf_counter() - t
            d.model_cpu_s += time.thread_time() - tc
        return y, st

    def _submit(self, d: _Direction, x: np.ndarray, ev: dict) -> None:
        """Run ``d``'s model on ``x`` inline or on its worker, preserving the order of d's outputs."""
        if self.cfg.pipeline and (d.outstanding or x.shape[1] >= _PIPELINE_MIN_SAMPLES):
            if d.worker is None:
                d.worker = _Worker(self, d)
                d.worker.start()
            d.outstanding += 1
            d.worker.inq.put((x, ev))  # blocks while the worker is _PIPELINE_DEPTH blocks behind
            return
        y, st = self._compute(d, x)
        self._finish(d, y, ev, st)

    def _finish(self, d: _Direction, y: np.ndarray | None, ev: dict, st: dict | None) -> None:
        if y is None:
            return
        d.bursts += 1
        if st is not None:
            d.last_state = st
        self._enqueue(d, y, ev)

    def _collect(self) -> None:
        """Take the outputs the workers have finished (main thread only)."""
        try:
            while True:
                self._wake.recv(zmq.NOBLOCK)
        except zmq.Again:
            pass
        while True:
            try:
                d, y, ev, st = self._results.get_nowait()
            except queue.Empty:
                return
            d.outstanding -= 1
            self._finish(d, y, ev, st)

    def _process_burst(self, rt: _NodeRt, xs: list[np.ndarray], header: dict) -> None:
        n = xs[0].size
        if any(x.size != n for x in xs):
            self._reject(R_ANTENNA_MISMATCH, f"node {rt.cfg.name!r}: burst antennas have lengths "
                                             f"{[x.size for x in xs]}; all antennas must send equally long bursts", rt)
            return
        rt.c["bursts_in"] += 1
        self.totals["bursts_in"] += 1
        for d in self._targets(rt, header):
            got = self._burst_block(rt, d, xs, n, header.get("rx_samples", 0), header.get("seq"))
            if got is not None:
                self._submit(d, *got)  # [n_tx, total] -> [n_rx, total]

    def _burst_block(self, rt: _NodeRt, d: _Direction, xs, n: int, rx_samples: int,
                     seq: Any = None) -> tuple[np.ndarray, dict] | None:
        """The padded block ``[n_tx, total]`` of one burst (rows ``xs``, ``n`` samples each) on ``d``, with
        its event; None when ``rx_samples`` asks for too long a capture (rejected and counted). Draws the
        burst's start (the lead jitter): the TCP and shared-memory paths take a burst through here alike."""
        if rx_samples > max_capture_samples(n, d.lead, d.jitter, d.trail):
            self._reject(R_TOO_LARGE, f"node {rt.cfg.name!r}: rx_samples {rx_samples} for a "
                                      f"{n}-sample burst on {d.name}; at most lead + jitter + n + trail + "
                                      f"{MAX_EXTRA_RX_SAMPLES} = {max_capture_samples(n, d.lead, d.jitter, d.trail)}", rt)
            return None
        total = max(d.lead + d.jitter + n + d.trail, rx_samples)
        start = d.lead + (int(self._jitter_rng.integers(0, d.jitter + 1)) if d.jitter else 0)
        if total == n and start == 0 and len(xs) == 1:
            block = xs[0][None, :]
        else:
            block = np.zeros((len(xs), total), np.complex64)  # [n_tx, total]
            for i, x in enumerate(xs):
                block[i, start:start + n] = x
        ev = {"type": "burst", "link": d.name, "src": d.src, "dst": d.dst, "tx_seq": seq,
              "tx_samples": n, "rx_samples": total}
        if self.cfg.test_mode:
            ev["start"] = start
        return block, ev

    def _shm_burst(self, sess: "_ShmSession", j: int, n: int, capture: int, seq: int) -> int:
        """One burst of a shared-memory session: input slot ``j`` (``[n_tx, n]``) through the link as a TCP
        burst goes (see [Note: shared-memory data plane] in hil.radio.shm), its capture into output slot
        ``j``. Returns the capture length, or -1 when the burst was rejected (counted)."""
        d = sess.d
        rt = self.nodes[d.src]
        where = f"shm {d.name} slot {j}"
        rt.c["messages_in"] += 1
        self.totals["messages_in"] += 1
        if not (0 <= j < sess.inp.slots and 0 < n <= sess.inp.slot_samples) or capture < 0:
            self._reject(R_TOO_LARGE, f"{where}: slot must be in [0, {sess.inp.slots}), samples in "
                                      f"[1, {sess.inp.slot_samples}] and capture >= 0, got ({j}, {n}, {capture})", rt)
            return -1
        m = max(d.lead + d.jitter + n + d.trail, capture)
        if m > sess.out.slot_samples and capture <= max_capture_samples(n, d.lead, d.jitter, d.trail):
            self._reject(R_TOO_LARGE, f"{where}: the capture of a {n}-sample burst is {m} samples, more than "
                                      f"a slot's {sess.out.slot_samples}; open the session with larger slots", rt)
            return -1
        x = sess.inp.packed(j, n).copy()  # ours: the client may write its slot again
        f = x.reshape(-1).view(np.float32)
        bad, over = screen_samples(f)
        if bad:
            self._reject(R_NON_FINITE, f"{where}: {bad} NaN/Inf value(s) in {n} samples x {x.shape[0]} antennas", rt)
            return -1
        if over:  # [Note: saturation]
            lim = np.float32(INPUT_FULL_SCALE_LIMIT)
            np.clip(f, -lim, lim, out=f)
            rt.c["saturated"] += 1
            self.totals["saturated"] += 1
            log.warning("%s: samples beyond +-%g saturated (a front end clips too)", where, lim)
        rt.c["samples_in"] += x.size
        self.totals["samples_in"] += x.size
        rt.c["bursts_in"] += 1
        self.totals["bursts_in"] += 1
        got = self._burst_block(rt, d, x, n, capture, seq)
        if got is None:
            return -1
        block, ev = got
        y, st = self._compute(d, block)
        if y is None:
            return -1
        sess.out.packed(j, m)[...] = y
        d.bursts += 1
        if st is not None:
            d.last_state = st
        self._delivered(self.nodes[d.dst], m, ev)
        return m

    def _process_stream(self, rt: _NodeRt) -> None:
        m = min(rt.stream_avail)
        if m == 0:
            return
        cols = []
        for ant, q in enumerate(rt.stream_buf):
            need, parts = m, []
            while need:
                a = q[0]
                if a.size <= need:
                    parts.append(q.popleft())
                    need -= a.size
                else:
                    parts.append(a[:need])
                    q[0] = a[need:]
                    need = 0
            rt.stream_avail[ant] -= m
            cols.append(parts[0] if len(parts) == 1 else np.concatenate(parts))
        x = cols[0][None, :] if len(cols) == 1 else np.stack(cols)  # [n_tx, m]
        if self.cfg.pace:  # [Note: pacing]
            rt.pace_next = max(rt.pace_next, time.monotonic() - _PACE_SLACK_S) + m / self.cfg.sample_rate_hz
        rt.c["bursts_in"] += 1
        self.totals["bursts_in"] += 1
        for d in rt.directions.values():
            ev = {"type": "stream", "link": d.name, "src": d.src, "dst": d.dst, "tx_samples": m, "rx_samples": m}
            self._submit(d, x, ev)
        # A stalled antenna must not let the others grow without bound.
        limit = 4 * self.cfg.max_message_bytes // 8
        for ant, q in enumerate(rt.stream_buf):
            while rt.stream_avail[ant] > limit:
                rt.stream_avail[ant] -= q.popleft().size
                rt.c["dropped"] += 1
                self.totals["dropped"] += 1

    def _enqueue(self, d: _Direction, y: np.ndarray, ev: dict) -> None:
        dst = self.nodes[d.dst]
        if ev["type"] == "burst" and dst.out and dst.out_bytes + y.nbytes > self.limits["queued_out_bytes_per_node"]:
            dst.c["dropped"] += 1
            dst.c["dropped_queue_full"] += 1
            self.totals["dropped"] += 1
            self.totals["dropped_queue_full"] += 1
            log.warning("dropped a %d-sample output to node %r: %d bytes already wait for its receiver "
                        "(limit %d; is it reading?)", y.shape[1], dst.cfg.name, dst.out_bytes,
                        self.limits["queued_out_bytes_per_node"])
            return
        dst.out.append(_Out(rows=[y[i] for i in range(y.shape[0])],
                            deadline=time.monotonic() + self.cfg.hold_s, event=ev))
        dst.out_bytes += y.nbytes
        if len(dst.out) == 1:
            self._flush(dst)

    def _flush(self, rt: _NodeRt) -> None:
        while rt.out:
            o = rt.out[0]
            while o.next_antenna < len(o.rows):
                row = o.rows[o.next_antenna]
                if rt.cfg.pattern == "reqrep" and not rt.requests[o.next_antenna]:
                    return  # a REP socket answers requests only: wait for the next one
                try:
                    rt.rx_socks[o.next_antenna].send(row, zmq.NOBLOCK, copy=row.nbytes < _ZERO_COPY_MIN_BYTES)
                except zmq.Again:
                    return  # wait for POLLOUT
                if rt.cfg.pattern == "reqrep":
                    rt.requests[o.next_antenna] = False
                o.next_antenna += 1
            rt.out.popleft()
            rt.out_bytes -= sum(r.nbytes for r in o.rows)
            self._delivered(rt, o.rows[0].size, o.event)

    def _delivered(self, rt: _NodeRt, n: int, event: dict) -> None:
        """Count an output of ``n`` samples per antenna delivered to node ``rt`` and publish its event."""
        rt.c["samples_out"] += n
        rt.c["bursts_out"] += 1
        rt.c["seq"] += 1
        self.totals["samples_out"] += n
        self.totals["bursts_out"] += 1
        self.totals["seq"] += 1
        ev = dict(event, seq=self.totals["seq"], node_seq=rt.c["seq"], t=time.time())
        d = self.nodes[ev["src"]].directions[ev["dst"]]
        d.last_event = ev
        try:
            self._ev.send_string(json.dumps(ev), zmq.NOBLOCK)
        except zmq.Again:
            pass

    def _expire(self) -> None:
        now = time.monotonic()
        n = self.pending.expire(now)
        if n:
            self.totals["pending_expired"] += n
            self.totals["incomplete"] += n
            log.warning("dropped %d incomplete burst(s): not all antennas' messages came within %.1f s",
                        n, self.pending.timeout_s)
        for rt in self.nodes.values():
            while rt.out and rt.out[0].deadline < now:
                o = rt.out.popleft()
                rt.out_bytes -= sum(r.nbytes for r in o.rows)
                rt.c["dropped"] += 1
                self.totals["dropped"] += 1
                log.warning("dropped a %d-sample output to node %r (antenna %d, %s): no receiver took it "
                            "within hold_s=%.1f s", o.rows[0].size, rt.cfg.name, o.next_antenna,
                            rt.rx_endpoints[o.next_antenna], self.cfg.hold_s)

    # ------------------------------------------------------------------ control
    def stats(self) -> dict:
        """Counters: totals, rejections by reason, per node and per link direction."""
        return {
            "uptime_s": time.time() - self.started,
            **self.totals,
            "rejected_by_reason": dict(self.rejected_by_reason),
            "pending_bursts": len(self.pending), "pending_bytes": self.pending.nbytes,
            "nodes": {name: dict(rt.c, queued_out=len(rt.out), queued_out_bytes=rt.out_bytes,
                                 pending_bursts=self.pending.count(name), readers=list(rt.readers))
                      for name, rt in self.nodes.items()},
            "links": {d.name: {"bursts": d.bursts, "model_s": d.model_s, "model_cpu_s": d.model_cpu_s}
                      for rt in self.nodes.values() for d in rt.directions.values()},
        }

    def _request(self, req: dict, peer: str | None = None) -> dict:
        cmd = req["cmd"]
        if cmd in ("shm_open", "shm_close"):
            return self._shm_request(req, peer)
        if cmd == "ping":
            return {"ok": True, "pid": os.getpid()}
        if cmd == "info":
            return {"ok": True, **self.info()}
        if cmd == "stats":
            return {"ok": True, **self.stats()}
        node = req.get("node")
        if cmd in ("last", "state") and node is not None and node not in self.nodes:
            self._reject(R_UNKNOWN_NODE, f"control {cmd!r} names unknown node {node!r:.64}")
            return {"ok": False, "error": f"unknown node {node!r:.64}; known nodes are {sorted(self.nodes)}"}
        if cmd == "last":
            src = req.get("src")
            evs = [d.last_event for rt in self.nodes.values() for d in rt.directions.values()
                   if d.last_event and (node is None or d.dst == node) and (src is None or d.src == src)]
            last = max(evs, key=lambda e: e["seq"]) if evs else None
            if last is not None and self.cfg.test_mode:
                last = dict(last, state=self.nodes[last["src"]].directions[last["dst"]].last_state)
            return {"ok": True, "event": last}
        if cmd == "state":
            if not self.cfg.test_mode:
                return {"ok": False, "error": "the true channel state is hidden: set [server] test_mode = true"}
            return {"ok": True, "links": {d.name: {"last": d.last_state, "now": _jsonable(d.model.state())}
                                          for rt in self.nodes.values() for d in rt.directions.values()
                                          if node is None or node in (d.src, d.dst)}}
        if cmd == "stop":
            self.stop()
            return {"ok": True}
        self._reject(R_BAD_REQUEST, f"unknown control command {cmd!r:.64}")
        return {"ok": False, "error": f"unknown cmd {cmd!r:.64}; use ping, info, stats, last, state, stop, shm_open, shm_close"}

    def _peer_is_local(self, peer: str | None) -> bool:
        if self.control_endpoint.startswith(("ipc://", "inproc://")):
            return True
        return peer in ("127.0.0.1", "::1", "[::1]", "::ffff:127.0.0.1")

    def _shm_request(self, req: dict, peer: str | None) -> dict:
        """``shm_open`` / ``shm_close`` (see [Note: shared-memory data plane] in ``hil.radio.shm``)."""
        if req["cmd"] == "shm_close":
            sess = self._shm.pop(str(req.get("session")), None)
            if sess is None:
                return {"ok": False, "error": f"no shared-memory session {req.get('session')!r:.64}"}
            sess.stop()
            return {"ok": True}
        if not self._peer_is_local(peer):
            return {"ok": False, "error": f"shared memory is offered to peers on this host only (you are "
                                          f"{peer or 'unknown'}); use the TCP streams"}
        src, dst = req.get("src"), req.get("dst")
        if src not in self.nodes or dst not in self.nodes[src].directions:
            return {"ok": False, "error": f"no link {src!r:.64} -> {dst!r:.64}; links are "
                                          f"{sorted(d.name for rt in self.nodes.values() for d in rt.directions.values())}"}
        from hil.radio.shm import AVAILABLE

        if not AVAILABLE:
            return {"ok": False, "error": f"the shared-memory data plane needs Linux (this is {sys.platform}); "
                                          "use the TCP streams"}
        slot, slots = req.get("slot_samples"), req.get("slots", 4)
        max_slot = self.cfg.max_message_bytes // 8
        for k, v, hi in (("slot_samples", slot, max_slot), ("slots", slots, 64)):
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= hi:
                return {"ok": False, "error": f"shm_open: {k} must be an integer in [1, {hi}], got {v!r:.64}"}
        if len(self._shm) >= _MAX_SHM_SESSIONS:
            return {"ok": False, "error": f"{_MAX_SHM_SESSIONS} shared-memory sessions are open; close one"}
        d = self.nodes[src].directions[dst]
        try:
            sess = _ShmSession(self, d, slot, slots)
        except (ValueError, OSError) as e:
            return {"ok": False, "error": f"shm_open: cannot create the rings: {e}"}
        self._shm[sess.id] = sess
        return {"ok": True, "session": sess.id, "mode": sess.mode, "input": sess.inp.shm.name,
                "output": sess.out.shm.name, "doorbell": sess.bell.name, "slots": slots, "slot_samples": slot,
                "n_in": d.model.n_in, "n_out": d.model.n_out}

    def _handle_control(self) -> None:
        """Answer one control request; whatever it holds, the reply is JSON with ``ok``.

        [Note: per-message guard]
        Each control request and each data message is handled inside a guard: a parser refuses
        what it can name (counted under its reason); anything else that goes wrong is logged with
        its traceback, counted as ``internal_error`` and answered ``{"ok": false, "error": ...}`` on
        the control socket, and the loop carries on. The REP socket receives the whole multipart
        request, so the reply is always allowed (a two-frame request is refused, not left half-read).
        """
        try:
            zframes = self._ctl.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return
        frames = [f.bytes for f in zframes]
        try:
            peer = zframes[0].get("Peer-Address")
        except (zmq.ZMQError, IndexError, TypeError):
            peer = None
        try:
            reply = self._request(parse_request(frames), peer)
        except BadMessage as e:
            self._reject(e.reason, str(e))
            reply = {"ok": False, "error": str(e)}
        except Exception as e:  # noqa: BLE001 - [Note: per-message guard]
            log.exception("control request %r not handled", frames[0][:200] if frames else b"")
            self._reject(R_INTERNAL, f"control request: {type(e).__name__}: {e}")
            reply = {"ok": False, "error": f"internal error handling the request: {type(e).__name__}: {e}"}
        try:
            out = json.dumps(reply, default=_json_default)
        except (ValueError, TypeError, RecursionError) as e:
            self._reject(R_INTERNAL, f"control reply not serialisable: {e}")
            out = json.dumps({"ok": False, "error": f"internal error: reply not serialisable: {e}"})
        self._ctl.send_string(out)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        if np.iscomplexobj(o):
            return {"re": o.real.tolist(), "im": o.imag.tolist()}
        return o.tolist()
    if isinstance(o, (np.generic,)):
        v = o.item()
        return {"re": v.real, "im": v.imag} if isinstance(v, complex) else v
    if isinstance(o, complex):
        return {"re": o.real, "im": o.imag}
    return str(o)


def _jsonable(state: Any) -> Any:
    """A channel state made JSON-safe once (complex arrays as {"re": [...], "im": [...]})."""
    return json.loads(json.dumps(state, default=_json_default))
