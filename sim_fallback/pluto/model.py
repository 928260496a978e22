"""The virtual Pluto's device model: ad9361-phy, xadc, cf-ad9361-dds-core-lpc, cf-ad9361-lpc.

[Note: the device model]
The model is declared, not programmed: each device lists its channels and each channel lists its
attributes as *sysfs files*. State is kept per file name (``in_voltage_rf_bandwidth`` is one file
shared by every RX channel, as in the kernel driver), so a write through one channel is seen through
every channel that shares the file. The context XML (``PRINT``) is generated from this declaration,
and a test checks it against the ``pluto.xml`` that pytest-libiio ships (recorded on a real board).

Writes are validated the way the AD9361 driver validates them: a value outside a ``[min step max]``
range or outside a list of choices in the sibling ``*_available`` file fails with ``-EINVAL``; a
read-only file fails with ``-EACCES``; a file that is not there fails with ``-ENOENT``. Readbacks are
formatted as the driver formats them (``"71.000000 dB"`` for gains, ``"FIR Rx: 128,4 Tx: 128,4"``
for the FIR configuration, ``"BBPLL:... DAC:... TXSAMP:..."`` for the path rates).

Modes: ``1r1t`` is a stock Pluto (one RX and one TX; ad9361-phy still exposes the second RX/TX
channels' shared files, as the AD9363 driver does), ``2r2t`` is a Pluto rev C/D with the firmware
environment set for two channels (``adi,2rx-2tx-mode-enable`` = 1): four ADC and four DAC scan
channels, the layout ``adi.ad9361`` expects.

Boards (``--model``): ``pluto`` (= mode ``1r1t``) and ``pluto-2r2t`` (= ``2r2t``) carry an AD9363A
(LOs 325 MHz-3.8 GHz); ``fmcomms2`` and ``fmcomms3`` carry an AD9361 with two channels (LOs
70 MHz-6 GHz) and report the context attributes of an FMCOMMS2/3 on a Zynq carrier (no ``hw_model``;
``local,kernel`` and ``ip,ip-addr``), as in the ``fmcomms2-3.xml`` recording pytest-libiio ships. The
carrier's other devices of that recording (``ad7291``, the optional ``adf4351`` PMODs) are not modelled.

[Note: registers]
``direct_reg_access`` (debug attribute of ad9361-phy and of both DMA cores) works as in the kernel:
writing ``"0xADDR"`` selects a register, ``"0xADDR 0xVALUE"`` writes one, reading returns the selected
register as ``"0x%X"``. Addresses with bit 31 set (``0x80000000 | offset``) are the HDL core's registers.
Offset 0x88 is the DMA status (register 0x22 of ADI HDL's ``library/common/up_adc_common.v`` and
``up_dac_common.v``): on cf-ad9361-lpc bit 2 = RX overflow (``{29'd0, up_status_ovf, 2'b0}``), on
cf-ad9361-dds-core-lpc bit 0 = TX underflow; writing a 1 to a set bit clears it (write-one-to-clear),
as libiio's ``tests/iio_adi_xflow_check.c`` (v0.24) does (it clears with 0x6 and tests 4 for RX, 1
for TX). The DAC's bit 4 (interface busy) reads 0 here. Other addresses are plain storage (0 until written), except
the AD9361's product id (SPI 0x037 = 0x0A).
"""

from __future__ import annotations

import errno
import math
import re
import threading
from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr

#: sample rate limits of the AD9361 baseband without and with the FIR decimating by 4 (Hz)
RATE_MIN_NO_FIR_HZ = 2083333
RATE_MIN_FIR_HZ = 520833
RATE_MAX_HZ = 61440000

MODES = ("1r1t", "2r2t")
#: boards of ``--model``: (channels, part)
BOARDS = {"pluto": (1, "ad9363a"), "pluto-2r2t": (2, "ad9363a"), "fmcomms2": (2, "ad9361"),
          "fmcomms3": (2, "ad9361")}
#: LO range of each part, the ``frequency_available`` text
LO_RANGE = {"ad9363a": "[325000000 1 3800000000]", "ad9361": "[70000000 1 6000000000]"}
#: the HDL cores' DMA status register (offset 0x88 with the core-register bit 31) and its bits
REG_DMA_STATUS = 0x80000088
RX_OVERFLOW_BIT = 0x4
TX_UNDERFLOW_BIT = 0x1


@dataclass(frozen=True)
class ChannelAttr:
    """One channel attribute: its name in libiio and the sysfs file that holds it."""

    name: str
    filename: str


@dataclass
class Channel:
    """An IIO channel. ``scan`` is ``(index, format)`` for a buffer channel, else None."""

    id: str
    output: bool
    name: str | None = None
    scan: tuple[int, str] | None = None
    attrs: list[ChannelAttr] = field(default_factory=list)

    def attr(self, name: str) -> ChannelAttr | None:
        for a in self.attrs:
            if a.name == name:
                return a
        return None


@dataclass
class Device:
    """An IIO device: id (``iio:deviceN``), name, channels and device/debug/buffer attribute names."""

    id: str
    name: str
    channels: list[Channel] = field(default_factory=list)
    attrs: list[str] = field(default_factory=list)
    debug_attrs: list[str] = field(default_factory=list)
    buffer_attrs: list[str] = field(default_factory=list)

    def channel(self, chn_id: str, output: bool) -> Channel | None:
        for c in self.channels:
            if c.id == chn_id and c.output == output:
                return c
        return None


def _chan(chn_id: str, output: bool, own: list[str], shared: list[str], name: str | None = None,
          scan: tuple[int, str] | None = None, shared_type: str | None = None) -> Channel:
    """Declare a channel; file names follow the kernel's IIO naming.

    ``own`` attributes live in ``{in|out}_{id}[_{name}]_{attr}``; ``shared`` ones in
    ``{in|out}_{type}_{attr}`` (type: the id without its number), shared by all channels of the type.
    """
    d = "out" if output else "in"
    typ = shared_type or re.sub(r"\d+$", "", chn_id)
    stem = f"{d}_{chn_id}" + (f"_{name}" if name else "")
    attrs = [ChannelAttr(a, f"{stem}_{a}") for a in own] + [ChannelAttr(a, f"{d}_{typ}_{a}") for a in shared]
    attrs.sort(key=lambda a: a.name)
    return Channel(chn_id, output, name, scan, attrs)


_LO_ATTRS = ["external", "fastlock_load", "fastlock_recall", "fastlock_save", "fastlock_store",
             "frequency", "frequency_available", "powerdown"]
_RX_SHARED = ["bb_dc_offset_tracking_en", "filter_fir_en", "gain_control_mode_available",
              "quadrature_tracking_en", "rf_bandwidth", "rf_bandwidth_available",
              "rf_dc_offset_tracking_en", "rf_port_select_available", "sampling_frequency",
              "sampling_frequency_available"]
_TX_SHARED = ["filter_fir_en", "rf_bandwidth", "rf_bandwidth_available", "rf_port_select_available",
              "sampling_frequency", "sampling_frequency_available"]
_PHY_DEBUG = ["digital_tune", "calibration_switch_control", "multichip_sync", "gaininfo_rx2",
              "gaininfo_rx1", "bist_timing_analysis", "gpo_set", "bist_tone", "bist_prbs", "loopback",
              "initialize", "direct_reg_access", "adi,2rx-2tx-mode-enable",
              "adi,frequency-division-duplex-mode-enable", "adi,rx-rf-port-input-select",
              "adi,tx-rf-port-input-select"]
_PHY_ATTRS = ["calib_mode", "calib_mode_available", "dcxo_tune_coarse", "dcxo_tune_coarse_available",
              "dcxo_tune_fine", "dcxo_tune_fine_available", "ensm_mode", "ensm_mode_available",
              "filter_fir_config", "gain_table_config", "multichip_sync", "rssi_gain_step_error",
              "rx_path_rates", "trx_rate_governor", "trx_rate_governor_available", "tx_path_rates",
              "xo_correction", "xo_correction_available"]
_XADC = [("voltage5", "vccoddr", "1856"), ("voltage0", "vccint", "1387"), ("voltage4", "vccpaux", "2453"),
         ("voltage7", "vrefn", "14"), ("voltage1", "vccaux", "2455"), ("voltage2", "vccbram", "1383"),
         ("voltage3", "vccpint", "1387"), ("voltage6", "vrefp", "1721")]

#: files a write may not touch (read-only in the driver)
_READ_ONLY_SUFFIXES = ("_available", "_rssi", "rx_path_rates", "tx_path_rates", "temp0_input",
                       "rssi_gain_step_error", "samples_pps", "data_available", "length_align_bytes",
                       "gaininfo_rx1", "gaininfo_rx2")
#: on input channels these are measurements, read-only too
_READ_ONLY_INPUT_SUFFIXES = ("_raw", "_scale", "_offset")
#: files that exist but whose read fails in the driver (pluto.xml shows "ERROR")
_READ_FAILS = ("fastlock_recall", "gain_table_config", "multichip_sync", "samples_pps",
               "dcxo_tune_coarse", "dcxo_tune_fine", "gaininfo_rx2")


def _fmt_db(v: float) -> str:
    return f"{v:.6f} dB"


class PlutoModel:
    """The state and the rules of one virtual Pluto (thread safe).

    Args:
        mode: ``"1r1t"`` or ``"2r2t"`` (see [Note: the device model]).
        serial: the ``hw_serial`` context attribute (lets two virtual Plutos be told apart).
        board: one of :data:`BOARDS`; overrides ``mode`` when given (``pluto-2r2t`` is mode 2r2t).
    """

    def __init__(self, mode: str = "1r1t", serial: str = "vpluto0", board: str | None = None):
        if board is None:
            if mode not in MODES:
                raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
            board = "pluto-2r2t" if mode == "2r2t" else "pluto"
        if board not in BOARDS:
            raise ValueError(f"board must be one of {sorted(BOARDS)}, got {board!r}")
        self.board = board
        self.n_chan, self.part = BOARDS[board]
        self.mode = "2r2t" if self.n_chan == 2 else "1r1t"
        self.serial = serial
        self.regs: dict[str, dict[int, int]] = {}  # per device id: address -> value (see [Note: registers])
        self._reg_sel: dict[str, int] = {}
        self.lock = threading.RLock()
        self.devices = self._declare()
        self.values: dict[tuple[str, str], str] = {}
        self._defaults()

    # ------------------------------------------------------------------ declaration
    def _declare(self) -> list[Device]:
        n = self.n_chan
        phy_ch = [
            _chan("altvoltage1", True, _LO_ATTRS, [], name="TX_LO"),
            _chan("altvoltage0", True, _LO_ATTRS, [], name="RX_LO"),
            _chan("temp0", False, ["input"], []),
            _chan("out", False, ["voltage_filter_fir_en"], []),
        ]
        for i in range(2):  # RX1/RX2 and TX1/TX2 controls exist on the AD9363 too
            phy_ch.append(_chan(f"voltage{i}", False,
                                ["gain_control_mode", "hardwaregain", "hardwaregain_available",
                                 "rf_port_select", "rssi"], _RX_SHARED))
            phy_ch.append(_chan(f"voltage{i}", True,
                                ["hardwaregain", "hardwaregain_available", "rf_port_select", "rssi"],
                                _TX_SHARED))
            if n == 1:
                break
        phy_ch.append(_chan("voltage2", False, ["offset", "raw", "scale"], _RX_SHARED))
        phy_ch.append(_chan("voltage2", True, ["raw", "scale"], _TX_SHARED))
        phy_ch.append(_chan("voltage3", True, ["raw", "scale"], _TX_SHARED))
        phy = Device("iio:device0", "ad9361-phy", phy_ch, list(_PHY_ATTRS), list(_PHY_DEBUG))

        xadc_ch = [_chan(cid, False, ["raw", "scale"], [], name=nm) for cid, nm, _ in _XADC]
        xadc_ch.append(_chan("temp0", False, ["offset", "raw", "scale"], []))
        xadc_ch.append(_chan("voltage8", False, ["raw", "scale"], []))
        xadc = Device("iio:device1", "xadc", xadc_ch, ["sampling_frequency"])

        dds_ch = [_chan(f"voltage{k}", True, ["calibphase", "calibscale"],
                        ["sampling_frequency", "sampling_frequency_available"],
                        scan=(k, "le:S16/16>>0")) for k in range(2 * n)]
        for tx in range(n):
            for k, (iq, f) in enumerate([("I", 1), ("I", 2), ("Q", 1), ("Q", 2)]):
                idx = 4 * tx + [0, 1, 2, 3][k]
                dds_ch.append(_chan(f"altvoltage{idx}", True, ["frequency", "phase", "raw", "scale"],
                                    ["sampling_frequency"], name=f"TX{tx + 1}_{iq}_F{f}"))
        bufattrs = ["data_available", "length_align_bytes", "watermark"]
        dds = Device("iio:device2", "cf-ad9361-dds-core-lpc", dds_ch, [], ["direct_reg_access"], bufattrs)

        adc_ch = [_chan(f"voltage{k}", False, ["calibbias", "calibphase", "calibscale"],
                        ["samples_pps", "sampling_frequency", "sampling_frequency_available"],
                        scan=(k, "le:S12/16>>0")) for k in range(2 * n)]
        adc = Device("iio:device3", "cf-ad9361-lpc", adc_ch, [],
                     ["pseudorandom_err_check", "direct_reg_access"], list(bufattrs))
        return [phy, xadc, dds, adc]

    def _defaults(self) -> None:
        v = self.values
        P, X, D, A = (d.id for d in self.devices)
        for lo, f, cal in (("altvoltage1_TX_LO", "2450000000", "193"), ("altvoltage0_RX_LO", "2400000000", "79")):
            s = f"out_{lo}_"
            v.update({(P, s + "external"): "0", (P, s + "fastlock_load"): "0",
                      (P, s + "fastlock_save"): "0 " + ",".join([cal] * 16),
                      (P, s + "fastlock_store"): "0", (P, s + "frequency"): f,
                      (P, s + "frequency_available"): LO_RANGE[self.part],
                      (P, s + "powerdown"): "0"})
        v[(P, "in_temp0_input")] = "36842"
        v[(P, "in_out_voltage_filter_fir_en")] = "0"
        for k in ("bb_dc_offset_tracking_en", "quadrature_tracking_en", "rf_dc_offset_tracking_en"):
            v[(P, f"in_voltage_{k}")] = "1"
        v[(P, "in_voltage_filter_fir_en")] = "0"
        v[(P, "out_voltage_filter_fir_en")] = "0"
        v[(P, "in_voltage_gain_control_mode_available")] = "manual fast_attack slow_attack hybrid"
        v[(P, "in_voltage_rf_bandwidth")] = "18000000"
        v[(P, "out_voltage_rf_bandwidth")] = "18000000"
        v[(P, "in_voltage_rf_bandwidth_available")] = "[200000 1 56000000]"
        v[(P, "out_voltage_rf_bandwidth_available")] = "[200000 1 40000000]"
        v[(P, "in_voltage_rf_port_select_available")] = (
            "A_BALANCED B_BALANCED C_BALANCED A_N A_P B_N B_P C_N C_P TX_MONITOR1 TX_MONITOR2 "
            "TX_MONITOR1_2")
        v[(P, "out_voltage_rf_port_select_available")] = "A B"
        for i in range(2):
            v[(P, f"in_voltage{i}_gain_control_mode")] = "slow_attack"
            v[(P, f"in_voltage{i}_hardwaregain")] = _fmt_db(71.0)
            v[(P, f"in_voltage{i}_hardwaregain_available")] = "[-3 1 71]"
            v[(P, f"in_voltage{i}_rf_port_select")] = "A_BALANCED"
            v[(P, f"in_voltage{i}_rssi")] = "115.00 dB"
            v[(P, f"out_voltage{i}_hardwaregain")] = _fmt_db(-10.0)
            v[(P, f"out_voltage{i}_hardwaregain_available")] = "[-89.750000 0.250000 0.000000]"
            v[(P, f"out_voltage{i}_rf_port_select")] = "A"
            v[(P, f"out_voltage{i}_rssi")] = "0.00 dB"
        v.update({(P, "in_voltage2_offset"): "57", (P, "in_voltage2_raw"): "975",
                  (P, "in_voltage2_scale"): "0.305250", (P, "out_voltage2_raw"): "306",
                  (P, "out_voltage2_scale"): "1.000000", (P, "out_voltage3_raw"): "306",
                  (P, "out_voltage3_scale"): "1.000000"})
        v.update({(P, "dev:calib_mode"): "auto",
                  (P, "dev:calib_mode_available"): "auto manual manual_tx_quad tx_quad rf_dc_offs rssi_gain_step",
                  (P, "dev:dcxo_tune_coarse_available"): "[0 0 0]",
                  (P, "dev:dcxo_tune_fine_available"): "[0 0 0]",
                  (P, "dev:ensm_mode"): "fdd",
                  (P, "dev:ensm_mode_available"): "sleep wait alert fdd pinctrl pinctrl_fdd_indep",
                  (P, "dev:rssi_gain_step_error"): "lna_error: 0 0 0 0 mixer_error: " + " ".join(["0"] * 16)
                  + " gain_step_calib_reg_val: 0 0 0 0 0",
                  (P, "dev:trx_rate_governor"): "nominal",
                  (P, "dev:trx_rate_governor_available"): "nominal highest_osr",
                  (P, "dev:xo_correction"): "40000000",
                  (P, "dev:xo_correction_available"): "[39992000 1 40008000]"})
        for name in _PHY_DEBUG:
            v[(P, "debug:" + name)] = "0"
        v[(P, "debug:direct_reg_access")] = "0x0"
        v[(P, "debug:gaininfo_rx1")] = "71 76 0 0 0 0 0 0"
        v[(P, "debug:adi,2rx-2tx-mode-enable")] = "1" if self.n_chan == 2 else "0"
        v[(P, "debug:adi,frequency-division-duplex-mode-enable")] = "1"
        self._fir = {"rx_taps": 0, "rx_dec": 0, "tx_taps": 0, "tx_int": 0}
        self._rate = 30720000
        # xadc
        for cid, nm, raw in _XADC:
            v[(X, f"in_{cid}_{nm}_raw")] = raw
            v[(X, f"in_{cid}_{nm}_scale")] = "0.732421875"
        v.update({(X, "in_temp0_offset"): "-2219", (X, "in_temp0_raw"): "2700",
                  (X, "in_temp0_scale"): "123.040771484", (X, "in_voltage8_raw"): "3296",
                  (X, "in_voltage8_scale"): "0.244140625", (X, "dev:sampling_frequency"): "961538"})
        # DMA cores
        for dev, d in ((D, "out"), (A, "in")):
            for k in range(2 * self.n_chan):
                v[(dev, f"{d}_voltage{k}_calibphase")] = "0.000000"
                v[(dev, f"{d}_voltage{k}_calibscale")] = "1.000000"
                if d == "in":
                    v[(dev, f"in_voltage{k}_calibbias")] = "0"
            for b, val in (("data_available", "0"), ("length_align_bytes", "8"), ("watermark", "2048")):
                v[(dev, "buffer:" + b)] = val
            v[(dev, "debug:direct_reg_access")] = "0x0"
        v[(A, "debug:pseudorandom_err_check")] = "CH0 : PN9 : Out of Sync : PN Error"
        for ch in self.device("cf-ad9361-dds-core-lpc").channels:
            if ch.id.startswith("altvoltage"):
                s = f"out_{ch.id}_{ch.name}_"
                v.update({(D, s + "frequency"): "9279985", (D, s + "raw"): "1", (D, s + "scale"): "0.000000",
                          (D, s + "phase"): "90000" if "_I_" in ch.name else "0"})
        self._dma_div = 1  # FPGA decimation/interpolation by 8 when 8
        self._refresh_rates()

    # ------------------------------------------------------------------ derived values
    def _refresh_rates(self) -> None:
        """Recompute the files that follow from the sample rate and the FIR state."""
        P, _, D, A = (d.id for d in self.devices)
        v, r = self.values, self._rate
        fir_on = v[(P, "in_voltage_filter_fir_en")] == "1" and self._fir["rx_dec"] > 0
        dec = self._fir["rx_dec"] if fir_on else 1
        lo = RATE_MIN_FIR_HZ if fir_on and dec == 4 else RATE_MIN_NO_FIR_HZ
        for d in ("in", "out"):
            v[(P, f"{d}_voltage_sampling_frequency")] = str(r)
            v[(P, f"{d}_voltage_sampling_frequency_available")] = f"[{lo} 1 {RATE_MAX_HZ}]"
        rf = r * dec
        v[(P, "dev:rx_path_rates")] = (f"BBPLL:983040000 ADC:{8 * rf} R2:{4 * rf} R1:{2 * rf} RF:{rf} "
                                       f"RXSAMP:{r}")
        v[(P, "dev:tx_path_rates")] = (f"BBPLL:983040000 DAC:{4 * rf} T2:{4 * rf} T1:{2 * rf} TF:{rf} "
                                       f"TXSAMP:{r}")
        if self._fir["rx_taps"]:
            v[(P, "dev:filter_fir_config")] = (f"FIR Rx: {self._fir['rx_taps']},{self._fir['rx_dec']} "
                                               f"Tx: {self._fir['tx_taps']},{self._fir['tx_int']}")
        else:
            v[(P, "dev:filter_fir_config")] = "FIR Rx: 0,0 Tx: 0,0"
        for dev, d in ((D, "out"), (A, "in")):
            v[(dev, f"{d}_voltage_sampling_frequency")] = str(r // self._dma_div)
            v[(dev, f"{d}_voltage_sampling_frequency_available")] = f"{r} {r // 8} "
        v[(D, "out_altvoltage_sampling_frequency")] = str(r)

    # ------------------------------------------------------------------ lookups
    def device(self, id_or_name: str) -> Device | None:
        for d in self.devices:
            if d.id == id_or_name or d.name == id_or_name:
                return d
        return None

    def _key(self, dev: Device, kind: str, chn: tuple[str, bool] | None, attr: str) -> tuple[str, str] | int:
        """The state key of an attribute, or ``-ENOENT``."""
        if chn is not None:
            c = dev.channel(*chn)
            a = c.attr(attr) if c else None
            return (dev.id, a.filename) if a else -errno.ENOENT
        names = {"dev": dev.attrs, "debug": dev.debug_attrs, "buffer": dev.buffer_attrs}[kind]
        return (dev.id, f"{kind}:{attr}") if attr in names else -errno.ENOENT

    # ------------------------------------------------------------------ typed accessors (for the RF path)
    def sample_rate_hz(self) -> float:
        with self.lock:
            return float(self._rate // self._dma_div)

    def lo_hz(self, tx: bool) -> float:
        f = "out_altvoltage1_TX_LO_frequency" if tx else "out_altvoltage0_RX_LO_frequency"
        with self.lock:
            return float(self.values[(self.devices[0].id, f)])

    def gain_db(self, tx: bool, chan: int) -> float:
        """TX attenuation (<= 0 dB) or RX gain in dB of ``chan``."""
        f = f"{'out' if tx else 'in'}_voltage{chan}_hardwaregain"
        with self.lock:
            return float(self.values[(self.devices[0].id, f)].split()[0])

    def rx_bandwidth_hz(self) -> float:
        with self.lock:
            return float(self.values[(self.devices[0].id, "in_voltage_rf_bandwidth")])

    def powered_down(self, tx: bool) -> bool:
        f = "out_altvoltage1_TX_LO_powerdown" if tx else "out_altvoltage0_RX_LO_powerdown"
        with self.lock:
            return self.values[(self.devices[0].id, f)] == "1"

    # ------------------------------------------------------------------ read / write
    def read(self, dev_id: str, kind: str, chn: tuple[str, bool] | None, attr: str) -> str | int:
        """Read an attribute; returns its text or a negative errno.

        Args:
            kind: ``"dev"``, ``"debug"`` or ``"buffer"`` (ignored when ``chn`` is given).
            chn: ``(channel id, is_output)`` or None for a device attribute.
        """
        dev = self.device(dev_id)
        if dev is None:
            return -errno.ENODEV
        with self.lock:
            key = self._key(dev, kind, chn, attr)
            if isinstance(key, int):
                return key
            if any(key[1].endswith(s) for s in _READ_FAILS) and key not in self.values:
                return -errno.EINVAL
            if key[1] == "debug:direct_reg_access":
                return f"0x{self.reg_read(dev.id, self._reg_sel.get(dev.id, 0)):X}"
            return self.values.get(key, "0")

    def write(self, dev_id: str, kind: str, chn: tuple[str, bool] | None, attr: str, value: str) -> int:
        """Write an attribute; returns the number of bytes taken or a negative errno."""
        dev = self.device(dev_id)
        if dev is None:
            return -errno.ENODEV
        nbytes = len(value.encode())
        value = value.strip("\x00").strip()
        with self.lock:
            key = self._key(dev, kind, chn, attr)
            if isinstance(key, int):
                return key
            f = key[1]
            if f == "debug:direct_reg_access":
                ret = self._reg_access(dev.id, value)
                return ret if ret < 0 else nbytes
            if (f.endswith(_READ_ONLY_SUFFIXES) or (f.startswith("in_") and f.endswith(_READ_ONLY_INPUT_SUFFIXES))) \
                    and not f.startswith("debug:"):
                return -errno.EACCES
            ret = self._store(dev, key, value)
            return ret if ret < 0 else nbytes

    # ------------------------------------------------------------------ registers
    def _reg_access(self, dev_id: str, text: str) -> int:
        """``"0xADDR"`` selects, ``"0xADDR 0xVALUE"`` writes (see [Note: registers])."""
        words = text.split()
        try:
            nums = [int(w, 0) for w in words]
        except ValueError:
            return -errno.EINVAL
        if len(nums) not in (1, 2) or not all(0 <= x <= 0xFFFFFFFF for x in nums):
            return -errno.EINVAL
        self._reg_sel[dev_id] = nums[0]
        if len(nums) == 2:
            self.reg_write(dev_id, nums[0], nums[1])
        return 0

    def reg_read(self, dev_id: str, addr: int) -> int:
        with self.lock:
            if dev_id == self.devices[0].id and addr == 0x037:
                return 0x0A  # AD9361 PRODUCT_ID
            return self.regs.get(dev_id, {}).get(addr, 0)

    def reg_write(self, dev_id: str, addr: int, value: int) -> None:
        with self.lock:
            r = self.regs.setdefault(dev_id, {})
            if addr == REG_DMA_STATUS and dev_id != self.devices[0].id:
                r[addr] = r.get(addr, 0) & ~value  # write-one-to-clear
            else:
                r[addr] = value

    def set_status(self, dev_name: str, bit: int) -> None:
        """Raise a DMA status bit (the RF path calls this on overflow/underflow)."""
        dev = self.device(dev_name)
        with self.lock:
            r = self.regs.setdefault(dev.id, {})
            r[REG_DMA_STATUS] = r.get(REG_DMA_STATUS, 0) | bit

    def debug_int(self, name: str) -> int:
        """An integer debug attribute of ad9361-phy (``loopback``), 0 if it does not parse."""
        with self.lock:
            try:
                return int(self.values.get((self.devices[0].id, "debug:" + name), "0"), 0)
            except ValueError:
                return 0

    def flag(self, filename: str) -> bool:
        """A 0/1 file of ad9361-phy, e.g. ``in_voltage_bb_dc_offset_tracking_en``."""
        with self.lock:
            return self.values.get((self.devices[0].id, filename), "0").strip() == "1"

    def set_rssi(self, chan: int, rssi_db: float) -> None:
        with self.lock:
            self.values[(self.devices[0].id, f"in_voltage{chan}_rssi")] = f"{rssi_db:.2f} dB"

    def dds_tones(self, tx: int) -> list[tuple[str, float, float, float]]:
        """The DDS tones of TX channel ``tx`` if the DDS is on: ``(I|Q, frequency Hz, scale, phase deg)``."""
        D = self.device("cf-ad9361-dds-core-lpc").id
        out, on = [], False
        with self.lock:
            for k, (iq, f) in enumerate([("I", 1), ("I", 2), ("Q", 1), ("Q", 2)]):
                s = f"out_altvoltage{4 * tx + k}_TX{tx + 1}_{iq}_F{f}_"
                on |= self.values.get((D, s + "raw"), "0").strip() == "1"
                out.append((iq, float(self.values[(D, s + "frequency")]), float(self.values[(D, s + "scale")]),
                            float(self.values[(D, s + "phase")]) / 1000.0))
        return out if on else []

    def _available(self, key: tuple[str, str]) -> str | None:
        dev, f = key
        for cand in (f + "_available", re.sub(r"^(in|out)_([a-z]+)\d+_", r"\1_\2_", f) + "_available"):
            if (dev, cand) in self.values:
                return self.values[(dev, cand)]
        return None

    @staticmethod
    def _check(value: str, avail: str | None) -> float | str | int:
        """Validate ``value`` against an ``*_available`` text; return the parsed value or -EINVAL."""
        if avail is None:
            return value
        avail = avail.strip()
        if avail.startswith("["):
            lo, _step, hi = (float(x) for x in avail.strip("[]").split())
            try:
                x = float(value.split()[0])
            except (ValueError, IndexError):
                return -errno.EINVAL
            if not math.isfinite(x) or x < lo or x > hi:
                return -errno.EINVAL
            return x
        return value if value in avail.split() else -errno.EINVAL

    def _store(self, dev: Device, key: tuple[str, str], value: str) -> int:
        P, _, D, A = (d.id for d in self.devices)
        v, f = self.values, key[1]
        if f == "dev:filter_fir_config":
            return self._store_fir(value)
        if f.endswith("_sampling_frequency") and not f.startswith("out_altvoltage"):
            if dev.id == P:
                x = self._check(value, self.values[(P, "in_voltage_sampling_frequency_available")])
                if isinstance(x, int):
                    return x
                self._rate = int(x)
                self._dma_div = 1
            else:
                if value.strip() not in v[(dev.id, f + "_available")].split():
                    return -errno.EINVAL
                self._dma_div = 8 if int(value) != self._rate else 1
            self._refresh_rates()
            return 0
        if f.endswith("filter_fir_en"):
            if value not in ("0", "1"):
                return -errno.EINVAL
            if value == "1" and self._fir["rx_taps"] == 0:
                return -errno.EINVAL  # the driver refuses to enable a FIR that was never loaded
            if f == "in_out_voltage_filter_fir_en":
                v[(P, "in_voltage_filter_fir_en")] = v[(P, "out_voltage_filter_fir_en")] = value
            v[key] = value
            if f != "in_out_voltage_filter_fir_en":
                both = v[(P, "in_voltage_filter_fir_en")] == "1" and v[(P, "out_voltage_filter_fir_en")] == "1"
                v[(P, "in_out_voltage_filter_fir_en")] = "1" if both else "0"
            self._refresh_rates()
            return 0
        if f.endswith("_hardwaregain"):
            x = self._check(value, self._available(key))
            if isinstance(x, int):
                return x
            if f.startswith("in_"):
                mode_key = (P, f.replace("_hardwaregain", "_gain_control_mode"))
                if v.get(mode_key) != "manual":
                    return -errno.EINVAL  # the AGC owns the gain (emulator's choice of errno)
                v[key] = _fmt_db(float(int(x)))
            else:
                v[key] = _fmt_db(round(x * 4) / 4)
            return 0
        if f.endswith("_frequency") and f.startswith("out_altvoltage") and dev.id == P:
            x = self._check(value, self._available(key))
            if isinstance(x, int):
                return x
            v[key] = str(int(x))
            return 0
        if f.endswith("_rf_bandwidth"):
            x = self._check(value, self._available(key))
            if isinstance(x, int):
                return x
            v[key] = str(int(x))
            return 0
        avail = self._available(key)
        if avail is not None:
            x = self._check(value, avail)
            if isinstance(x, int) and not isinstance(x, bool) and x < 0:
                return x
        v[key] = value
        return 0

    def _store_fir(self, text: str) -> int:
        """Parse a FIR configuration as the driver does (``RX 3 GAIN -6 DEC 4``, taps ``a,b``)."""
        rx_dec = tx_int = 0
        taps = 0
        for line in text.splitlines():
            line = line.strip()
            m = re.match(r"RX\s+\d+\s+GAIN\s+-?\d+\s+DEC\s+(\d+)", line)
            if m:
                rx_dec = int(m.group(1))
                continue
            m = re.match(r"TX\s+\d+\s+GAIN\s+-?\d+\s+INT\s+(\d+)", line)
            if m:
                tx_int = int(m.group(1))
                continue
            if re.match(r"^-?\d+\s*,\s*-?\d+$", line):
                taps += 1
            elif line and not line.startswith("#"):
                return -errno.EINVAL
        if rx_dec not in (1, 2, 4) or tx_int not in (1, 2, 4) or taps == 0 or taps > 128 or taps % 16:
            return -errno.EINVAL
        self._fir = {"rx_taps": taps, "rx_dec": rx_dec, "tx_taps": taps, "tx_int": tx_int}
        self._refresh_rates()
        return 0

    # ------------------------------------------------------------------ XML
    def scan_channels(self, dev_id: str) -> list[Channel]:
        """The buffer (scan) channels of a device, in index order."""
        dev = self.device(dev_id)
        return sorted((c for c in dev.channels if c.scan), key=lambda c: c.scan[0]) if dev else []

    def xml(self, values: bool = False) -> str:
        """The context description that ``PRINT`` sends (libiio v0.24 DTD).

        Args:
            values: also write each attribute's current value (as ``iio_genxml`` recordings do).
        """
        dtd = ('<?xml version="1.0" encoding="utf-8"?><!DOCTYPE context [<!ELEMENT context (device | '
               'context-attribute)*><!ELEMENT context-attribute EMPTY><!ELEMENT device (channel | '
               'attribute | debug-attribute | buffer-attribute)*><!ELEMENT channel (scan-element?, '
               'attribute*)><!ELEMENT attribute EMPTY><!ELEMENT scan-element EMPTY><!ELEMENT '
               'debug-attribute EMPTY><!ELEMENT buffer-attribute EMPTY><!ATTLIST context name CDATA '
               '#REQUIRED description CDATA #IMPLIED><!ATTLIST context-attribute name CDATA #REQUIRED '
               'value CDATA #REQUIRED><!ATTLIST device id CDATA #REQUIRED name CDATA #IMPLIED><!ATTLIST '
               'channel id CDATA #REQUIRED type (input|output) #REQUIRED name CDATA #IMPLIED><!ATTLIST '
               'scan-element index CDATA #REQUIRED format CDATA #REQUIRED scale CDATA #IMPLIED>'
               '<!ATTLIST attribute name CDATA #REQUIRED filename CDATA #IMPLIED value CDATA #IMPLIED>'
               '<!ATTLIST debug-attribute name CDATA #REQUIRED value CDATA #IMPLIED><!ATTLIST '
               'buffer-attribute name CDATA #REQUIRED value CDATA #IMPLIED>]>')
        out = [dtd, f'<context name="network" description="virtual {self.board} (hil sim_fallback)" >']
        if self.part == "ad9363a":
            hw = f"Analog Devices PlutoSDR Rev.C (Z7010-AD9363A) virtual {self.mode}"
            ctx = (("hw_model", hw), ("hw_model_variant", "1" if self.n_chan == 2 else "0"),
                   ("hw_serial", self.serial), ("fw_version", "v0.38-virtual"),
                   ("ad9361-phy,xo_correction", "40000000"), ("ad9361-phy,model", self.part),
                   ("local,kernel", "virtual"), ("ip,ip-addr", "127.0.0.1"))
        else:  # an FMCOMMS2/3 on a Zynq carrier reports only these (fmcomms2-3.xml)
            ctx = (("local,kernel", f"virtual-{self.board}"), ("ip,ip-addr", "127.0.0.1"))
        for k, val in ctx:
            out.append(f"<context-attribute name={quoteattr(k)} value={quoteattr(val)} />")
        with self.lock:
            for dev in self.devices:
                out.append(f'<device id="{dev.id}" name="{dev.name}" >')
                for c in dev.channels:
                    nm = f' name="{c.name}"' if c.name else ""
                    out.append(f'<channel id="{c.id}"{nm} type="{"output" if c.output else "input"}" >')
                    if c.scan:
                        out.append(f'<scan-element index="{c.scan[0]}" format="{c.scan[1]}" />')
                    for a in c.attrs:
                        val = ""
                        if values:
                            r = self.read(dev.id, "dev", (c.id, c.output), a.name)
                            val = f" value={quoteattr(r if isinstance(r, str) else 'ERROR')}"
                        out.append(f'<attribute name="{a.name}" filename="{a.filename}"{val} />')
                    out.append("</channel>")
                for kind, tag, names in (("dev", "attribute", dev.attrs), ("buffer", "buffer-attribute", dev.buffer_attrs),
                                         ("debug", "debug-attribute", dev.debug_attrs)):
                    for a in names:
                        val = ""
                        if values:
                            r = self.read(dev.id, kind, None, a)
                            val = f" value={quoteattr(r if isinstance(r, str) else 'ERROR')}"
                        out.append(f"<{tag} name={quoteattr(a)}{val} />")
                out.append("</device>")
        out.append("</context>")
        return "".join(out)
