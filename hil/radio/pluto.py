"""PlutoRadio: ADALM-Pluto and AD9361 boards through pyadi-iio (the only module that imports ``adi``).

[Note: Pluto profiles]
A profile (``firmware_configs/*.toml``, shipped as ``hil/radio/profiles/``) has three tables:

- ``[board]``: ``class`` (``Pluto`` for a stock 1r1t Pluto, ``ad9361`` for a Pluto rev C/D in 2r2t
  mode or an FMCOMMS2/3 / ADRV9361, ``FMComms5`` for the 4x4 board) and ``mode`` (``1r1t``, ``2r2t``,
  ``4r4t``): what ``hil pluto check`` compares with the board.
- ``[rf]``: ``sample_rate_hz``, ``rx_lo_hz``, ``tx_lo_hz``, ``rx_rf_bandwidth_hz``, ``tx_rf_bandwidth_hz``,
  ``gain_control_mode`` (``manual`` or an AGC mode), ``rx_gain_db`` and ``tx_gain_db`` (one per
  enabled channel; an RX gain only with ``gain_control_mode = "manual"``).
- ``[buffers]``: ``rx_enabled_channels``, ``tx_enabled_channels`` (antenna indices),
  ``tx_scale`` (int16 amplitude of full scale 1.0; 2**14 = -6 dBFS, the usual back-off),
  ``guard_samples`` (silence before and after each burst), ``flush_captures`` (RX buffers thrown
  away before the capture that is returned), ``timeout_ms``.

[Note: settings are read back]
``configure`` checks each value against the range the board reports (``*_available``) before
writing and raises ValueError naming the attribute, the value and the range. After writing it reads
every value back and raises RadioError when the board holds something else (tolerances, in
``READBACK_TOLERANCE`` and shared with ``check_board``: LO 10 Hz, sample rate 0.01 %, RF bandwidth
1 %, gain half a step). On an FMCOMMS5 both chips are written and read back (LOs, RF bandwidths,
sample rate, and each antenna's gain and gain mode). pyadi-iio silently drops a manual RX gain
unless the gain mode is ``manual``: the mode is written first, and an RX gain with an AGC mode is
refused up front.

[Note: transceive on a Pluto]
The burst (padded with ``guard_samples`` zeros on each side, length L) goes out as a *cyclic* TX
buffer, so the transmitter repeats it for as long as the capture takes; the RX capture is 2 L
samples, which always holds one whole padded burst wherever the cycle starts.

[Note: one burst per capture]
A 2 L capture of a cyclic buffer holds one whole copy of the burst and pieces of others; a receiver
that takes the strongest preamble may lock onto a piece. So, with the default ``rx_samples``,
``transceive`` returns the L samples ``[guard, burst, guard]`` around one whole copy, found by an
energy gate (the quietest 2 x guard stretch, where two copies' guards meet), as the simulated
radios do (LoopbackRadio: lead + burst + trail). The exact start is still the receiver's to find.
With ``rx_samples`` given, the raw capture of that length is returned. The TX
buffer is destroyed in a ``finally`` block: the radio never stays on the air after a call, also
when the call raised. The start of the burst inside the capture is not given (the receiver syncs).
A call that has not finished after ``timeout_ms`` plus the capture time raises RadioTimeout naming
the URI (see [Note: a deadline per call]); the radio then refuses further calls.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import traceback
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from hil._io import load_mapping
from hil.errors import ConfigError, RadioError, RadioTimeout
from hil.radio.base import Radio, RadioCaps, as_samples

log = logging.getLogger(__name__)

#: ``[board] class`` -> (pyadi-iio class name, antennas per direction)
BOARD_CLASSES = {"Pluto": ("Pluto", 1), "ad9364": ("ad9364", 1), "ad9361": ("ad9361", 2),
                 "FMComms5": ("FMComms5", 4)}
BOARD_MODES = {"1r1t": 1, "2r2t": 2, "4r4t": 4}
ADC_FULL_SCALE = 2048.0  # 12-bit ADC codes in 16-bit words (sim_fallback.pluto.air imports it)
#: The lowest rate pyadi-iio sets: ``ad936x.sample_rate`` raises for ``rate < 521e3``. Below 2.083 Msps
#: it loads a FIR decimating by 4, which takes the AD9361 to 520833 sps, just under this floor.
PYADI_MIN_SAMPLE_RATE_HZ = 521_000
PYADI_FIR_DECIMATION = 4
#: Readback tolerance of each setting (see [Note: settings are read back]): ``(absolute, relative)``,
#: the allowed difference is ``absolute + relative * |value|``. Used by ``configure`` and ``check_board``.
READBACK_TOLERANCE = {
    "sample_rate_hz": (0.0, 1e-4), "rx_lo_hz": (10.0, 0.0), "tx_lo_hz": (10.0, 0.0),
    "rx_rf_bandwidth_hz": (0.0, 0.01), "tx_rf_bandwidth_hz": (0.0, 0.01),
    "rx_gain_db": (0.5, 0.0),  # RX gain steps are 1 dB
    "tx_gain_db": (0.125, 0.0),  # TX attenuation steps are 0.25 dB
}


def readback_tolerance(key: str, value: float) -> float:
    """Allowed ``|read - written|`` for a profile key (``sample_rate_hz``, ``rx_gain_db``, ...)."""
    a, r = READBACK_TOLERANCE[key]
    return a + r * abs(float(value))

#: The shipped profiles, package data of ``hil.radio`` (see [Note: where profiles live]).
PROFILE_DIR = resources.files("hil.radio") / "profiles"

#: The u-boot steps that put a Pluto rev C/D into 2r2t mode (firmware_configs/README.md), on one line.
FW_2R2T = ("fw_setenv attr_name compatible; fw_setenv attr_val ad9361; fw_setenv compatible ad9361; "
           "fw_setenv mode 2r2t; reboot")
FW_1R1T = "fw_setenv attr_val ad9363a; fw_setenv compatible ad9363a; fw_setenv mode 1r1t; reboot"


@dataclass(frozen=True)
class BoardInfo:
    """What a board is, read from its IIO context before anything is written (see [Note: board detection]).

    [Note: board detection]
    ``read_board`` opens a plain libiio context (no pyadi-iio class, which would already assume a
    channel count) and reads: the context attributes ``hw_model`` (a Pluto says ``PlutoSDR Rev.C``)
    and ``ad9361-phy,model`` (``ad9363a``/``ad9361``/``ad9364``); the devices (two ``ad9361-phy*``
    on an FMCOMMS5); the scan elements of ``cf-ad9361-lpc`` (ADC, one I and one Q per RX antenna) and
    ``cf-ad9361-dds-core-lpc`` (DAC, per TX antenna); and the ``adi,2rx-2tx-mode-enable`` debug
    attribute. The scan elements decide the channel count: they are what pyadi-iio will stream, and
    a Pluto whose environment says 2r2t but whose driver exposes one pair still streams one.
    A profile fits when every antenna it enables exists and, for ``FMComms5``, both chips exist; a
    1r1t profile on a 2r2t board fits (it uses antenna 0). ``PlutoRadio`` with no profile takes
    :meth:`BoardInfo.profile`.
    """

    uri: str
    hw_model: str  # the context's hw_model ("" when the board does not say)
    chip: str  # ad9361-phy,model: ad9363a, ad9361, ad9364 ("" when absent)
    n_rx: int
    n_tx: int
    n_phy: int  # AD9361 chips (2 on an FMCOMMS5)
    two_channel_env: str | None  # adi,2rx-2tx-mode-enable ("0"/"1"), None when the board has no such attribute

    @property
    def is_pluto(self) -> bool:
        return "pluto" in self.hw_model.lower()

    @property
    def mode(self) -> str:
        n = min(self.n_rx, self.n_tx)
        return f"{n}r{n}t"

    def describe(self) -> str:
        """``an ADALM-Pluto (PlutoSDR Rev.C, ad9363a) in 1r1t mode (1 RX, 1 TX)``."""
        if self.is_pluto:
            name = "an ADALM-Pluto"
        elif self.n_phy >= 2:
            name = "an FMCOMMS5-style board (two AD9361)"
        else:
            name = "an AD9361 board (FMCOMMS2/3 or similar)"
        detail = ", ".join(x for x in (self.hw_model, self.chip) if x)
        return (f"{name}{f' ({detail})' if detail else ''} in {self.mode} mode "
                f"({self.n_rx} RX, {self.n_tx} TX)")

    def profile(self) -> str | None:
        """The shipped profile matching this board, or None when none does."""
        if self.n_phy >= 2 and min(self.n_rx, self.n_tx) >= 4:
            return "fmcomms5"
        n = min(self.n_rx, self.n_tx)
        if self.is_pluto:
            return {1: "pluto_1r1t", 2: "pluto_2r2t"}.get(n)
        return "fmcomms2_3" if n >= 2 else None

    def misfit(self, prof: "PlutoProfile", name: str = "", use: str | None = None) -> str | None:
        """None when ``prof`` fits this board, else one line: what the board is, what the profile
        needs, and how to switch the board's mode or which profile to use (``use``: that last
        advice in the caller's terms, e.g. a config key)."""
        need_rx = max(prof.rx_enabled_channels) + 1
        need_tx = max(prof.tx_enabled_channels) + 1
        fits = need_rx <= self.n_rx and need_tx <= self.n_tx and (prof.board_class != "FMComms5" or self.n_phy >= 2)
        if fits:
            return None
        label = f"profile {name}" if name else f"the profile ({prof.name or prof.board_class})"
        msg = (f"the board at {self.uri} is {self.describe()}, but {label} needs {prof.mode} "
               f"({need_rx} RX, {need_tx} TX, pyadi-iio class {BOARD_CLASSES[prof.board_class][0]})")
        fix = []
        if self.is_pluto and prof.mode == "2r2t":
            host = self.uri[3:].split(":")[0] if self.uri.startswith("ip:") else "192.168.2.1"
            fix.append(f"switch a rev C/D Pluto to 2r2t: ssh root@{host}, then {FW_2R2T} "
                       "(firmware_configs/README.md)")
        match = self.profile()
        if use:
            fix.append(use)
        elif match and match != name:
            fix.append(f"use profile {match}")
        return msg + ("; " + ", or ".join(fix) if fix else "; no shipped profile fits this board: "
                      "write one (firmware_configs/README.md)")


class BoardMismatch(ConfigError):
    """A profile asks for channels (or chips) the board does not have; the message says how to fix it."""

    def __init__(self, message: str, board: BoardInfo, profile_name: str = ""):
        super().__init__(message)
        self.board = board
        self.profile_name = profile_name


def read_board(uri: str, timeout_ms: int = 5000) -> BoardInfo:
    """Read what the board at ``uri`` is, writing nothing (see [Note: board detection]).

    Raises:
        RadioError: no IIO context at ``uri``, or it has no AD9361 (names the devices found).
    """
    with _board_context(uri, timeout_ms) as ctx:
        attrs = dict(ctx.attrs)
        devs = {d.name or d.id: d for d in ctx.devices}
        phys = [n for n in devs if n.startswith("ad9361-phy")]
        adc = [d for n, d in devs.items() if n in ("cf-ad9361-lpc", "cf-ad9361-A", "cf-ad9361-B")]
        dac = [d for n, d in devs.items() if n.startswith("cf-ad9361-dds-core")]
        if not phys or not adc:
            raise RadioError(f"{uri} has no AD9361 (devices: {', '.join(sorted(devs)) or 'none'}); "
                             "is this an ADALM-Pluto or an FMCOMMS board?")
        n_rx = sum(1 for d in adc for c in d.channels if c.scan_element and not c.output) // 2
        n_tx = sum(1 for d in dac for c in d.channels if c.scan_element and c.output) // 2
        env = None
        phy = devs[phys[0]]
        if "adi,2rx-2tx-mode-enable" in phy.debug_attrs:
            env = phy.debug_attrs["adi,2rx-2tx-mode-enable"].value.strip()
        return BoardInfo(uri=uri, hw_model=str(attrs.get("hw_model", "")).strip(),
                         chip=str(attrs.get("ad9361-phy,model", "")).strip(), n_rx=n_rx, n_tx=n_tx,
                         n_phy=len(phys), two_channel_env=env)


@contextlib.contextmanager
def _board_context(uri: str, timeout_ms: int) -> Iterator[Any]:
    """An IIO context at ``uri`` for reading (nothing is written through it); every failure inside the
    ``with`` becomes one RadioError naming the URI."""
    try:
        import iio
    except ImportError as e:
        raise RadioError("pylibiio is not installed: pip install 'hil-ota[pluto]' (needs libiio)") from e
    try:
        ctx = iio.Context(uri)
    except Exception as e:
        raise RadioError(f"no IIO context at {uri}: {e}. Check the URI (iio_info -u {uri}), the cable and, "
                         "for a virtual Pluto, that `hil emu pluto` is running") from e
    try:
        ctx.set_timeout(int(timeout_ms))
        yield ctx
    except RadioError:
        raise
    except Exception as e:
        raise RadioError(f"reading the board at {uri} failed: {type(e).__name__}: {e}") from e
    finally:
        del ctx

_RF_KEYS = {"sample_rate_hz", "rx_lo_hz", "tx_lo_hz", "rx_rf_bandwidth_hz", "tx_rf_bandwidth_hz",
            "gain_control_mode", "rx_gain_db", "tx_gain_db"}
_BUF_KEYS = {"rx_enabled_channels", "tx_enabled_channels", "tx_scale", "guard_samples", "flush_captures",
             "timeout_ms"}


def _num(section: str, key: str, value, kind: type, expected: str):
    """``kind(value)`` (int or float) or ConfigError naming ``[section] key``, the value and what is expected.

    An int key takes an integer or a float with no fraction (``2e6``), never a string (``"2M"``) or a bool.
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and kind is int and isinstance(value, float):
        ok = math.isfinite(value) and value.is_integer()
    if not ok:
        raise ConfigError(f"profile [{section}] {key} = {value!r}: expected {expected}")
    return kind(value)


def _nums(section: str, key: str, values, kind: type, expected: str) -> tuple:
    if not isinstance(values, (list, tuple)):
        raise ConfigError(f"profile [{section}] {key} = {values!r}: expected a list of {expected}")
    return tuple(_num(section, key, v, kind, expected) for v in values)


@dataclass(frozen=True)
class PlutoProfile:
    """A parsed, validated profile (see [Note: Pluto profiles]). Frequencies in Hz, gains in dB."""

    board_class: str = "Pluto"
    mode: str = "1r1t"
    sample_rate_hz: int = 1_000_000
    rx_lo_hz: int = 2_400_000_000
    tx_lo_hz: int = 2_400_000_000
    rx_rf_bandwidth_hz: int = 1_000_000
    tx_rf_bandwidth_hz: int = 1_000_000
    gain_control_mode: str = "manual"
    rx_gain_db: tuple[float, ...] = (30.0,)
    tx_gain_db: tuple[float, ...] = (-10.0,)
    rx_enabled_channels: tuple[int, ...] = (0,)
    tx_enabled_channels: tuple[int, ...] = (0,)
    tx_scale: float = 2.0**14
    guard_samples: int = 256
    flush_captures: int = 1
    timeout_ms: int = 5000
    name: str = field(default="", compare=False)

    @classmethod
    def from_dict(cls, d: dict) -> "PlutoProfile":
        """Build from the TOML tables; raises ConfigError naming the key and the fix."""
        if not isinstance(d, dict):
            raise ConfigError(f"a Pluto profile is a table (dict), got {type(d).__name__}")
        unknown = set(d) - {"board", "rf", "buffers", "firmware"}
        if unknown:
            raise ConfigError(f"profile: unknown tables {sorted(unknown)}; allowed: board, rf, buffers, firmware")
        board, rf, buf = d.get("board", {}), d.get("rf", {}), d.get("buffers", {})
        for tname, t, allowed in (("rf", rf, _RF_KEYS), ("buffers", buf, _BUF_KEYS)):
            bad = set(t) - allowed
            if bad:
                raise ConfigError(f"profile [{tname}]: unknown keys {sorted(bad)}; allowed: {sorted(allowed)}")
        cls_name = board.get("class", "Pluto")
        if cls_name not in BOARD_CLASSES:
            raise ConfigError(f"profile [board] class = {cls_name!r}; allowed: {sorted(BOARD_CLASSES)}")
        mode = board.get("mode", "1r1t")
        if mode not in BOARD_MODES:
            raise ConfigError(f"profile [board] mode = {mode!r}; allowed: {sorted(BOARD_MODES)}")
        n_ant = BOARD_CLASSES[cls_name][1]
        rx_en = _nums("buffers", "rx_enabled_channels", buf.get("rx_enabled_channels", [0]), int, "antenna indices")
        tx_en = _nums("buffers", "tx_enabled_channels", buf.get("tx_enabled_channels", [0]), int, "antenna indices")
        for key, chans in (("rx_enabled_channels", rx_en), ("tx_enabled_channels", tx_en)):
            if not chans or any(c < 0 or c >= n_ant for c in chans) or len(set(chans)) != len(chans):
                raise ConfigError(f"profile [buffers] {key} = {list(chans)}: give distinct channels in "
                                  f"0..{n_ant - 1} for board class {cls_name}")
        rx_gain = _nums("rf", "rx_gain_db", rf.get("rx_gain_db", [30.0] * len(rx_en)), float, "gains in dB")
        tx_gain = _nums("rf", "tx_gain_db", rf.get("tx_gain_db", [-10.0] * len(tx_en)), float, "gains in dB")
        if len(rx_gain) != len(rx_en) or len(tx_gain) != len(tx_en):
            raise ConfigError(f"profile [rf]: rx_gain_db {list(rx_gain)} / tx_gain_db {list(tx_gain)} need one "
                              f"value per enabled channel ({len(rx_en)} RX, {len(tx_en)} TX)")
        mode_g = str(rf.get("gain_control_mode", "manual"))
        if mode_g != "manual" and "rx_gain_db" in rf:
            raise ConfigError(f"profile [rf]: rx_gain_db is only applied when gain_control_mode = 'manual' "
                              f"(got {mode_g!r}); pyadi-iio would silently ignore it. Remove rx_gain_db "
                              "or set gain_control_mode = 'manual'")
        tx_scale = _num("buffers", "tx_scale", buf.get("tx_scale", 2.0**14), float, "an int16 amplitude such as 16384")
        if not 0 < tx_scale <= 32767:
            raise ConfigError(f"profile [buffers] tx_scale = {tx_scale}: must be in (0, 32767]; 16384 is usual")
        guard = _num("buffers", "guard_samples", buf.get("guard_samples", 256), int, "an integer number of samples")
        if guard < 0:
            raise ConfigError(f"profile [buffers] guard_samples = {guard}: must be >= 0")
        flush = _num("buffers", "flush_captures", buf.get("flush_captures", 1), int, "an integer >= 0")
        if flush < 0:
            raise ConfigError(f"profile [buffers] flush_captures = {flush}: must be >= 0 (RX buffers discarded "
                              "before the returned capture; 1 is usual)")
        timeout_ms = _num("buffers", "timeout_ms", buf.get("timeout_ms", 5000), int, "an integer number of ms")
        if timeout_ms <= 0:
            raise ConfigError(f"profile [buffers] timeout_ms = {timeout_ms}: must be > 0 (libiio treats 0 as "
                              "'wait forever', so a dead board would hang the run); 5000 is usual")
        hz = "an integer in Hz (e.g. 2_000_000, not '2M')"
        rate = _num("rf", "sample_rate_hz", rf.get("sample_rate_hz", 1_000_000), int, hz)
        return cls(
            board_class=cls_name, mode=mode,
            sample_rate_hz=rate,
            rx_lo_hz=_num("rf", "rx_lo_hz", rf.get("rx_lo_hz", 2_400_000_000), int, hz),
            tx_lo_hz=_num("rf", "tx_lo_hz", rf.get("tx_lo_hz", 2_400_000_000), int, hz),
            rx_rf_bandwidth_hz=_num("rf", "rx_rf_bandwidth_hz", rf.get("rx_rf_bandwidth_hz", rate), int, hz),
            tx_rf_bandwidth_hz=_num("rf", "tx_rf_bandwidth_hz", rf.get("tx_rf_bandwidth_hz", rate), int, hz),
            gain_control_mode=mode_g, rx_gain_db=rx_gain, tx_gain_db=tx_gain,
            rx_enabled_channels=rx_en, tx_enabled_channels=tx_en, tx_scale=tx_scale, guard_samples=guard,
            flush_captures=flush, timeout_ms=timeout_ms,
            name=str(board.get("name", "")),
        )


def profile_names() -> list[str]:
    """Names of the shipped profiles (``pluto_1r1t``, ...), sorted."""
    return sorted(q.name[: -len(".toml")] for q in PROFILE_DIR.iterdir() if q.name.endswith(".toml"))


def load_profile(path_or_name: str | Path) -> dict:
    """Read a profile TOML: a path, or the name of a shipped profile (``pluto_1r1t``, see ``profile_names``).

    [Note: where profiles live]
    The profiles are package data (``hil/radio/profiles/``), read with ``importlib.resources`` so a
    wheel or a non-editable install has them. In the source tree ``hil/radio/profiles`` is a symbolic
    link to the top-level ``firmware_configs/``, the one copy that is edited and that users copy
    from; setuptools follows the link when it builds a wheel or an sdist, which then hold regular files.
    """
    p = Path(path_or_name)
    if p.is_file():
        return load_mapping(p, "profile")
    name = str(path_or_name)
    shipped = PROFILE_DIR / (name if name.endswith(".toml") else name + ".toml")
    if not shipped.is_file():
        raise ConfigError(f"no profile {name!r}: give a TOML path or one of {profile_names()}")
    with resources.as_file(shipped) as fp:
        return load_mapping(fp, "profile")


def parse_range(text: str) -> tuple[float, float, float] | list[str]:
    """Parse an ``*_available`` value: ``"[min step max]"`` -> (min, step, max), else the list of choices."""
    t = text.strip()
    if t.startswith("[") and t.endswith("]"):
        lo, step, hi = (float(x) for x in t.strip("[]").split())
        return lo, step, hi
    return t.split()


def _chan_prop(kind: str, c: int) -> str:
    """pyadi-iio's property of antenna ``c``: ``rx_hardwaregain_chan1``, ``..._chip_b_chan0`` (FMComms5)."""
    chip, k = divmod(c, 2)
    return f"{kind}_chip_b_chan{k}" if chip else f"{kind}_chan{k}"


class PlutoRadio(Radio):
    """A Pluto / AD9361 board (or two, wired TX -> RX) through pyadi-iio.

    Args:
        uri: libiio URI of the transmitting board (``ip:192.168.2.1``, ``usb:1.2.5``,
            ``ip:127.0.0.1:PORT`` for the virtual Pluto).
        profile: a profile dict (the TOML tables), a :class:`PlutoProfile`, a path or a name in
            ``firmware_configs/``; default: the profile matching the board ([Note: board detection]).
            A profile the board cannot run raises :class:`BoardMismatch` (one line with the fix).
        rx_uri: the receiving board for a two-board wiring; default: ``uri`` (its own RX, cabled).

    See [Note: Pluto profiles], [Note: settings are read back], [Note: transceive on a Pluto].
    """

    def __init__(self, uri: str, profile: dict | PlutoProfile | str | Path | None = None,
                 rx_uri: str | None = None, *, _pair=None):
        self.uri = uri
        self.rx_uri = rx_uri or uri
        self._closed = False
        self._reverse: PlutoRadio | None = None
        self._ranges: dict = {}
        self._broken = ""  # set when a call timed out: the boards' state is unknown
        self._worker: threading.Thread | None = None
        self._tx_dev = self._rx_dev = None
        self.board: BoardInfo | None = None
        if _pair is not None:  # the reverse wiring shares the boards
            self.profile = self._as_profile(profile if profile is not None else "pluto_1r1t")
            self._tx_dev, self._rx_dev = _pair
            self._owns = False
            return
        self._owns = True
        # [Note: board detection] the board is read before any profile is applied
        board = read_board(uri)
        rx_board = board if self.rx_uri == uri else read_board(self.rx_uri)
        if profile is None:
            profile = board.profile()
            if profile is None:
                raise BoardMismatch(f"the board at {uri} is {board.describe()}; no shipped profile matches it: "
                                    "give --profile with a TOML of your own (firmware_configs/README.md)", board)
            log.info("%s is %s: using profile %s", uri, board.describe(), profile)
        name = profile if isinstance(profile, str) else (Path(profile).stem if isinstance(profile, Path) else "")
        prof = self._as_profile(profile)
        self.profile = prof
        self.board = board
        for b in (board, rx_board):
            why = b.misfit(prof, name)
            if why:
                raise BoardMismatch(why, b, name)
        try:
            self._tx_dev = self._open(uri, prof)
            self._rx_dev = self._tx_dev if self.rx_uri == uri else self._open(self.rx_uri, prof)
            self.configure(prof)
        except BaseException as e:
            # A failed constructor returns no object to close: drop the contexts opened so far now.
            # The traceback's frames (configure's loop, pyadi-iio's) still reference the devices,
            # which would keep their libiio contexts (TCP connections) open as long as the caller
            # keeps the exception: clear those frames' locals too.
            self.close()
            _clear_frames(e)
            raise

    # ------------------------------------------------------------------ construction
    @staticmethod
    def _as_profile(p) -> PlutoProfile:
        if isinstance(p, PlutoProfile):
            return p
        if isinstance(p, (str, Path)):
            p = load_profile(p)
        return PlutoProfile.from_dict(p)

    @staticmethod
    def _open(uri: str, prof: PlutoProfile):
        try:
            import adi
        except ImportError as e:
            raise RadioError("pyadi-iio is not installed: pip install 'hil-ota[pluto]' (needs libiio)") from e
        cls = getattr(adi, BOARD_CLASSES[prof.board_class][0])
        try:
            dev = cls(uri=uri)
        except Exception as e:  # pyadi-iio raises a bare Exception("No device found")
            raise RadioError(
                f"no {prof.board_class} at {uri}: {e}. Check the URI (iio_info -u {uri}), the cable "
                "and, for a virtual Pluto, that `hil emu pluto` is running"
            ) from e
        try:
            dev.ctx.set_timeout(int(prof.timeout_ms))
        except Exception as e:
            raise RadioError(f"{uri}: setting the libiio timeout failed: {e}") from e
        return dev

    @property
    def caps(self) -> RadioCaps:
        p = self.profile
        return RadioCaps(n_tx=len(p.tx_enabled_channels), n_rx=len(p.rx_enabled_channels),
                         sample_rate_range_hz=self._ranges.get("sample_rate", (0.0, math.inf)),
                         lo_range_hz=self._ranges.get("lo", (0.0, math.inf)),
                         max_burst_samples=1 << 20)

    # ------------------------------------------------------------------ configure
    def _ranges_of(self, dev) -> dict:
        """The board's ranges, read from its ``*_available`` attributes."""
        def rd(ch, attr, out):
            return parse_range(dev._get_iio_attr_str(ch, attr, out))
        r = {}
        lo = rd("altvoltage0", "frequency_available", True)
        tlo = rd("altvoltage1", "frequency_available", True)
        sr = rd("voltage0", "sampling_frequency_available", False)
        r["rx_lo_hz"] = (lo[0], lo[2], "ad9361-phy altvoltage0 (RX_LO) frequency")
        r["tx_lo_hz"] = (tlo[0], tlo[2], "ad9361-phy altvoltage1 (TX_LO) frequency")
        # the FIR pyadi-iio loads below 2.08 Msps divides the AD9361's floor by 4 (520833 sps), but
        # pyadi-iio itself refuses rates below PYADI_MIN_SAMPLE_RATE_HZ
        low = max(float(PYADI_MIN_SAMPLE_RATE_HZ), sr[0] / PYADI_FIR_DECIMATION)
        r["sample_rate_hz"] = (low, sr[2], "ad9361-phy voltage0 sampling_frequency")
        rbw = rd("voltage0", "rf_bandwidth_available", False)
        tbw = rd("voltage0", "rf_bandwidth_available", True)
        r["rx_rf_bandwidth_hz"] = (rbw[0], rbw[2], "ad9361-phy in voltage rf_bandwidth")
        r["tx_rf_bandwidth_hz"] = (tbw[0], tbw[2], "ad9361-phy out voltage rf_bandwidth")
        rg = rd("voltage0", "hardwaregain_available", False)
        tg = rd("voltage0", "hardwaregain_available", True)
        r["rx_gain_db"] = (rg[0], rg[2], "ad9361-phy in voltageN hardwaregain")
        r["tx_gain_db"] = (tg[0], tg[2], "ad9361-phy out voltageN hardwaregain")
        r["gain_control_mode"] = rd("voltage0", "gain_control_mode_available", False)
        self._ranges = {"sample_rate": (r["sample_rate_hz"][0], r["sample_rate_hz"][1]),
                        "lo": (max(lo[0], tlo[0]), min(lo[2], tlo[2]))}
        return r

    def _validate(self, p: PlutoProfile, r: dict) -> None:
        if p.sample_rate_hz < PYADI_MIN_SAMPLE_RATE_HZ:
            raise ValueError(f"sample_rate_hz = {p.sample_rate_hz} Hz is below the lowest rate pyadi-iio can set "
                             f"({PYADI_MIN_SAMPLE_RATE_HZ} Hz; board range {r['sample_rate_hz'][0]:.0f}.."
                             f"{r['sample_rate_hz'][1]:.0f} Hz)")
        for key in ("sample_rate_hz", "rx_lo_hz", "tx_lo_hz", "rx_rf_bandwidth_hz", "tx_rf_bandwidth_hz"):
            lo, hi, attr = r[key]
            v = getattr(p, key)
            if not lo <= v <= hi:
                raise ValueError(f"{key} = {v} is outside the board's range [{lo:.0f}, {hi:.0f}] ({attr}); "
                                 "pick a value inside it or check the board's firmware (AD9363 vs AD9364 range)")
        for key in ("rx_gain_db", "tx_gain_db"):
            lo, hi, attr = r[key]
            for c, g in zip(getattr(p, "rx_enabled_channels" if key[0] == "r" else "tx_enabled_channels"),
                            getattr(p, key)):
                if not lo <= g <= hi:
                    raise ValueError(f"{key}[channel {c}] = {g} dB is outside the board's range "
                                     f"[{lo:g}, {hi:g}] dB ({attr})")
        if p.gain_control_mode not in r["gain_control_mode"]:
            raise ValueError(f"gain_control_mode = {p.gain_control_mode!r} is not one of "
                             f"{r['gain_control_mode']} (ad9361-phy in voltage gain_control_mode_available)")

    def tune(self, *, lo_hz: float, sample_rate_hz: float, tx_gain_db: float | None = None,
             rx_gain_db: float | None = None) -> bool:
        """A new profile with the LO (TX and RX), the sample rate and, when given, the gain of every
        enabled channel, applied by :meth:`configure` (validated, written, read back). Returns True."""
        from dataclasses import replace

        p = self.profile
        changes: dict = {"rx_lo_hz": int(round(lo_hz)), "tx_lo_hz": int(round(lo_hz)),
                         "sample_rate_hz": int(round(sample_rate_hz))}
        if rx_gain_db is not None:
            changes["rx_gain_db"] = tuple(float(rx_gain_db) for _ in p.rx_enabled_channels)
        if tx_gain_db is not None:
            changes["tx_gain_db"] = tuple(float(tx_gain_db) for _ in p.tx_enabled_channels)
        self.configure(replace(p, **changes))
        return True

    def configure(self, profile: dict | PlutoProfile | str | Path) -> None:
        """Validate ``profile`` against the boards' ranges, write it, read it back.

        Raises:
            ConfigError: the profile is malformed (unknown key, wrong channel count).
            ValueError: a value is outside the board's range (names attribute, value and range).
            RadioError: the board did not take a value (readback differs) or the link failed.
        """
        p = self._as_profile(profile)
        if BOARD_CLASSES[p.board_class][0] != type(self._tx_dev).__name__:
            raise ConfigError(f"profile is for board class {p.board_class} but this radio was opened as "
                              f"{type(self._tx_dev).__name__}; create a new PlutoRadio for it")
        devs = [(self.uri, self._tx_dev)] + ([(self.rx_uri, self._rx_dev)] if self._rx_dev is not self._tx_dev else [])
        for uri, dev in devs:
            with self._errors(uri, "reading the board's ranges"):
                r = self._ranges_of(dev)
            self._validate(p, r)
        for uri, dev in devs:
            self._write(uri, dev, p)
        self.profile = p

    def _write(self, uri: str, dev, p: PlutoProfile) -> None:
        with self._errors(uri, "configuring"):
            dev.sample_rate = int(p.sample_rate_hz)
            dev.rx_rf_bandwidth = int(p.rx_rf_bandwidth_hz)
            dev.tx_rf_bandwidth = int(p.tx_rf_bandwidth_hz)
            dev.rx_lo = int(p.rx_lo_hz)
            dev.tx_lo = int(p.tx_lo_hz)
            if p.board_class == "FMComms5":  # sample_rate writes both chips; the rest is per chip
                dev.rx_rf_bandwidth_chip_b = int(p.rx_rf_bandwidth_hz)
                dev.tx_rf_bandwidth_chip_b = int(p.tx_rf_bandwidth_hz)
                dev.rx_lo_chip_b = int(p.rx_lo_hz)
                dev.tx_lo_chip_b = int(p.tx_lo_hz)
            for c in p.rx_enabled_channels:
                setattr(dev, _chan_prop("gain_control_mode", c), p.gain_control_mode)
            if p.gain_control_mode == "manual":
                for c, g in zip(p.rx_enabled_channels, p.rx_gain_db):
                    setattr(dev, _chan_prop("rx_hardwaregain", c), float(g))
            for c, g in zip(p.tx_enabled_channels, p.tx_gain_db):
                setattr(dev, _chan_prop("tx_hardwaregain", c), float(g))
            dev.rx_enabled_channels = list(p.rx_enabled_channels)
            dev.tx_enabled_channels = list(p.tx_enabled_channels)
        with self._errors(uri, "reading back the configuration"):
            # (pyadi-iio property, profile key, value read back)
            reads = [("sample_rate", "sample_rate_hz", dev.sample_rate), ("rx_lo", "rx_lo_hz", dev.rx_lo),
                     ("tx_lo", "tx_lo_hz", dev.tx_lo), ("rx_rf_bandwidth", "rx_rf_bandwidth_hz", dev.rx_rf_bandwidth),
                     ("tx_rf_bandwidth", "tx_rf_bandwidth_hz", dev.tx_rf_bandwidth)]
            if p.board_class == "FMComms5":
                # pyadi-iio has no chip-B sample_rate property: read chip B's phy (``_ctrl_b``) directly
                reads += [("chip B sampling_frequency", "sample_rate_hz",
                           dev._get_iio_attr("voltage0", "sampling_frequency", False, dev._ctrl_b)),
                          ("rx_lo_chip_b", "rx_lo_hz", dev.rx_lo_chip_b), ("tx_lo_chip_b", "tx_lo_hz", dev.tx_lo_chip_b),
                          ("rx_rf_bandwidth_chip_b", "rx_rf_bandwidth_hz", dev.rx_rf_bandwidth_chip_b),
                          ("tx_rf_bandwidth_chip_b", "tx_rf_bandwidth_hz", dev.tx_rf_bandwidth_chip_b)]
            checks = [(name, getattr(p, key), got, readback_tolerance(key, getattr(p, key))) for name, key, got in reads]
            for c in p.rx_enabled_channels:
                got = getattr(dev, _chan_prop("gain_control_mode", c))
                if got != p.gain_control_mode:
                    raise RadioError(f"{uri}: gain_control_mode of RX channel {c} reads back {got!r} after "
                                     f"writing {p.gain_control_mode!r}; the board did not take it")
            if p.gain_control_mode == "manual":
                checks += [(_chan_prop("rx_hardwaregain", c), g, getattr(dev, _chan_prop("rx_hardwaregain", c)),
                            readback_tolerance("rx_gain_db", g)) for c, g in zip(p.rx_enabled_channels, p.rx_gain_db)]
            checks += [(_chan_prop("tx_hardwaregain", c), g, getattr(dev, _chan_prop("tx_hardwaregain", c)),
                        readback_tolerance("tx_gain_db", g)) for c, g in zip(p.tx_enabled_channels, p.tx_gain_db)]
        for name, want, got, tol in checks:
            if not isinstance(got, (int, float)) or abs(float(got) - float(want)) > tol:
                raise RadioError(f"{uri}: {name} reads back {got!r} after writing {want!r} (tolerance {tol:g}); "
                                 "the board did not apply the setting")

    # ------------------------------------------------------------------ data path
    class _errors:
        """Turn any pyadi-iio/libiio failure into a RadioError naming the URI (context manager)."""

        def __init__(self, uri: str, what: str):
            self.uri, self.what = uri, what

        def __enter__(self):
            return self

        def __exit__(self, et, e, tb):
            if e is None or isinstance(e, (RadioError, ValueError, TypeError)) and not isinstance(e, OSError):
                return False
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                return False
            # The failing frames of pylibiio hold its iio.Buffer (``self`` of refill/push). Kept alive by
            # the chained traceback, a buffer could be collected after its context, which segfaults
            # libiio 0.x; clearing the frames' locals destroys it now, while the context is alive.
            traceback.clear_frames(tb)
            raise RadioError(f"Pluto at {self.uri}: {self.what} failed: {type(e).__name__}: {e}. Is the board "
                             "(or `hil emu pluto`) still reachable? Try `iio_info -u " + self.uri + "`") from e

    def _to_int16(self, x: np.ndarray) -> list[np.ndarray]:
        """complex64 ``(n_tx, L)`` at full scale 1.0 -> per-antenna complex arrays at ``tx_scale``."""
        y = np.round(x.astype(np.complex128) * self.profile.tx_scale)
        return [row for row in y]

    def _capture(self, dev, uri: str, n: int) -> np.ndarray:
        dev.rx_destroy_buffer()
        dev.rx_buffer_size = int(n)
        try:
            for _ in range(max(0, self.profile.flush_captures)):
                dev.rx()
            data = dev.rx()
        finally:
            dev.rx_destroy_buffer()  # no buffer (and no libiio connection) outlives the call
        rows = data if isinstance(data, list) else [data]
        return (np.stack([np.asarray(r) for r in rows]) / ADC_FULL_SCALE).astype(np.complex64)

    @staticmethod
    def _one_burst(y: np.ndarray, n: int, g: int) -> np.ndarray:
        """From a ``2 L`` capture of the cyclic ``[g zeros, burst n, g zeros]`` (L = n + 2 g), the L
        samples ``[g, burst, g]`` around one whole burst (see [Note: one burst per capture]).

        The 2 g silent samples between two copies are found as the quietest 2 g-sample stretch of
        one period (a moving average of the power over all antennas): an energy gate, the radio's
        trigger; timing, CFO and the channel are still the receiver's to estimate.
        """
        L = n + 2 * g
        pw = np.sum(np.abs(y) ** 2, axis=0, dtype=np.float64)  # [m]
        c = np.concatenate([[0.0], np.cumsum(pw)])
        ma = c[2 * g : 2 * g + L] - c[:L]  # energy of [k, k + 2g) for k in [0, L)
        gap = int(np.argmin(ma))  # start of the silent stretch before a copy of the burst
        s = gap + g if gap + g + L <= y.shape[1] else gap + g - L
        return y[:, s : s + L]

    def transceive(self, tx_burst: np.ndarray, rx_samples: int | None = None) -> np.ndarray:
        """Send one burst (cyclic TX) and capture it (see [Note: transceive on a Pluto]).

        Args:
            tx_burst: complex64 ``(n_tx, n)``, ``|x| <= 1`` (full scale = ``tx_scale`` int16).
            rx_samples: raw capture length per RX antenna; default: capture ``2 L`` (L = n + 2 guard)
                and return the L samples around one whole burst ([Note: one burst per capture]).

        Returns:
            complex64 ``(n_rx, L)`` (or ``(n_rx, rx_samples)``), full scale 1.0 = ADC code 2048.
        """
        if self._closed:
            raise RadioError(f"PlutoRadio {self.uri} is closed; create a new one")
        if self._broken:
            raise RadioError(f"PlutoRadio {self.uri}: {self._broken}; create a new PlutoRadio")
        x = as_samples(tx_burst, self.caps.n_tx, "tx_burst")
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        if peak > 1.0 + 1e-6:
            raise ValueError(f"tx_burst peaks at {peak:.4f} > 1.0 (full scale); scale it down")
        if x.shape[1] == 0:
            raise ValueError("tx_burst is empty; give at least one sample")
        if x.shape[1] > self.caps.max_burst_samples:
            raise ValueError(f"tx_burst has {x.shape[1]} samples per antenna; at most "
                             f"{self.caps.max_burst_samples} fit one cyclic buffer")
        g = self.profile.guard_samples
        padded = np.zeros((x.shape[0], x.shape[1] + 2 * g), np.complex64)
        padded[:, g : g + x.shape[1]] = x
        m = int(rx_samples) if rx_samples is not None else 2 * padded.shape[1]
        if m < padded.shape[1]:
            raise ValueError(f"rx_samples = {m} cannot hold the padded burst ({padded.shape[1]} samples)")
        data = self._to_int16(padded)
        # [Note: a deadline per call] libiio's timeout applies per operation, and a failed call still
        # closes its buffers (one more timeout each), so the I/O runs in a worker thread and the
        # caller gets RadioTimeout at the deadline even when libiio is still unwinding.
        p = self.profile
        deadline_s = p.timeout_ms / 1000 + (p.flush_captures + 1) * m / p.sample_rate_hz
        box: dict = {}

        def work() -> None:
            try:
                box["y"] = self._transceive_io(data, m)
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                box["e"] = e

        t = threading.Thread(target=work, name=f"pluto-transceive {self.uri}", daemon=True)
        self._worker = t
        t.start()
        t.join(deadline_s)
        if t.is_alive():
            self._broken = (f"a transceive did not finish within {deadline_s:.2f} s "
                            f"(timeout_ms = {p.timeout_ms} plus the capture time)")
            raise RadioTimeout(f"Pluto at {self.uri}" + (f" -> {self.rx_uri}" if self.rx_uri != self.uri else "")
                               + f": {self._broken}. Is the board (or `hil emu pluto`) still reachable? "
                               f"Try `iio_info -u {self.uri}`; then create a new PlutoRadio")
        if "e" in box:
            raise box["e"]
        g = p.guard_samples
        if rx_samples is None and g > 0:
            return np.ascontiguousarray(self._one_burst(box["y"], x.shape[1], g))
        return box["y"]

    def _transceive_io(self, data: list[np.ndarray], m: int) -> np.ndarray:
        """Cyclic TX of ``data``, capture ``m`` samples, TX buffer destroyed whatever happens."""
        tx, rx = self._tx_dev, self._rx_dev
        try:
            with self._errors(self.uri, "transmitting"):
                tx.tx_destroy_buffer()
                tx.tx_cyclic_buffer = True
                tx.tx(data[0] if len(data) == 1 else data)
            with self._errors(self.rx_uri, "receiving"):
                return self._capture(rx, self.rx_uri, m)
        finally:
            try:
                tx.tx_destroy_buffer()  # never leave the radio transmitting
            except Exception as e:  # the link may be gone already; the RadioError above says why
                log.debug("tx_destroy_buffer on %s failed: %s", self.uri, e)

    def reverse(self) -> "PlutoRadio":
        """The opposite wiring over the same boards: TX on ``rx_uri``, RX on ``uri``."""
        if self._reverse is None:
            r = PlutoRadio(self.rx_uri, self.profile, self.uri, _pair=(self._rx_dev, self._tx_dev))
            r._ranges = getattr(self, "_ranges", {})
            r._reverse = self
            self._reverse = r
        return self._reverse

    def close(self) -> None:
        """Stop transmitting and drop the buffers and contexts. Idempotent."""
        if self._closed:
            return
        self._closed = True
        w = self._worker
        if w is not None and w.is_alive():
            w.join(self.profile.timeout_ms / 1000)  # its finally destroys the TX buffer
            if w.is_alive():
                log.warning("PlutoRadio %s: a transceive is still blocked in libiio; its TX buffer is "
                            "destroyed when it returns", self.uri)
                return
        for dev in {id(d): d for d in (self._tx_dev, self._rx_dev) if d is not None}.values():
            for fn in ("tx_destroy_buffer", "rx_destroy_buffer"):
                try:
                    getattr(dev, fn)()
                except Exception as e:
                    log.debug("%s failed on close: %s", fn, e)
        if self._reverse is not None:
            self._reverse._closed = True
        if self._owns:
            self._tx_dev = self._rx_dev = None


def _clear_frames(e: BaseException) -> None:
    """Clear the locals of the finished frames of ``e``'s traceback and of its causes/contexts."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        traceback.clear_frames(e.__traceback__)
        e = e.__cause__ or e.__context__


def _fmt(x: float) -> str:
    """One number format for ``hil pluto check``: integers in full (``2500000``), others with ``:g``."""
    x = float(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:g}"


def check_board(uri: str, profile: dict | str | Path | None = None,
                board: BoardInfo | None = None) -> list[tuple[str, str, str]]:
    """Read a board and list what differs from ``profile`` (never writes anything).

    ``profile`` None: the one matching the board ([Note: board detection]). ``board``: a
    :func:`read_board` result to reuse.

    Returns:
        ``[(setting, expected, found)]``; empty when the board matches.
    """
    board = board or read_board(uri)
    if profile is None:
        profile = board.profile()
        if profile is None:
            raise BoardMismatch(f"the board at {uri} is {board.describe()}; no shipped profile matches it: "
                                "give --profile with a TOML of your own", board)
    prof = PlutoRadio._as_profile(profile)
    diffs: list[tuple[str, str, str]] = []
    with _board_context(uri, prof.timeout_ms) as ctx:
        phy = ctx.find_device("ad9361-phy")
        if board.mode != prof.mode:
            diffs.append(("mode (ADC/DAC channel pairs)", prof.mode, board.mode))
        if board.two_channel_env is not None:
            want = "1" if BOARD_MODES[prof.mode] >= 2 else "0"
            if board.two_channel_env != want:
                diffs.append(("debug adi,2rx-2tx-mode-enable", want, board.two_channel_env))

        def ch(cid, out):
            return phy.find_channel(cid, out)

        def num(text):
            return float(text.split()[0])

        # (shown name, profile key, profile value, text read from the board)
        reads = [("sample_rate_hz", "sample_rate_hz", prof.sample_rate_hz, ch("voltage0", False).attrs["sampling_frequency"].value),
                 ("rx_lo_hz", "rx_lo_hz", prof.rx_lo_hz, ch("altvoltage0", True).attrs["frequency"].value),
                 ("tx_lo_hz", "tx_lo_hz", prof.tx_lo_hz, ch("altvoltage1", True).attrs["frequency"].value),
                 ("rx_rf_bandwidth_hz", "rx_rf_bandwidth_hz", prof.rx_rf_bandwidth_hz, ch("voltage0", False).attrs["rf_bandwidth"].value),
                 ("tx_rf_bandwidth_hz", "tx_rf_bandwidth_hz", prof.tx_rf_bandwidth_hz, ch("voltage0", True).attrs["rf_bandwidth"].value)]
        for c, g in zip(prof.tx_enabled_channels, prof.tx_gain_db):
            t = ch(f"voltage{c}", True)
            if t is not None:
                reads.append((f"tx_gain_db[{c}]", "tx_gain_db", g, t.attrs["hardwaregain"].value))
        for c in prof.rx_enabled_channels:
            r = ch(f"voltage{c}", False)
            if r is None:
                diffs.append((f"rx channel {c}", "present", "missing"))
                continue
            m = r.attrs["gain_control_mode"].value.strip()
            if m != prof.gain_control_mode:
                diffs.append((f"gain_control_mode[{c}]", prof.gain_control_mode, m))
        if prof.gain_control_mode == "manual":
            for c, g in zip(prof.rx_enabled_channels, prof.rx_gain_db):
                r = ch(f"voltage{c}", False)
                if r is not None:
                    reads.append((f"rx_gain_db[{c}]", "rx_gain_db", g, r.attrs["hardwaregain"].value))
        for name, key, want, text in reads:
            if abs(num(text) - float(want)) > readback_tolerance(key, want):
                diffs.append((name, _fmt(want), _fmt(num(text))))
    return diffs
