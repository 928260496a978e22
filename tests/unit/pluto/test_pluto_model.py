"""The virtual Pluto's device model: XML cross-checked against recordings of real boards, and the
driver's write rules. No sockets (fast)."""

from __future__ import annotations

import errno
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sim_fallback.pluto.model import PlutoModel

pytest_libiio = pytest.importorskip("pytest_libiio")
DEVICES = Path(pytest_libiio.__file__).parent / "resources" / "devices"


def _describe(xml_text: str, names: set[str] | None = None) -> dict:
    """{device name: {channels: {(id, type, name): (scan, {(attr, filename)})}, attrs, buffer, debug}}."""
    root = ET.fromstring(xml_text.split("]>", 1)[1] if "]>" in xml_text else xml_text)
    out = {}
    for d in root.iter("device"):
        if names is not None and d.get("name") not in names:
            continue
        chans = {}
        for c in d.findall("channel"):
            se = c.find("scan-element")
            scan = (se.get("index"), se.get("format")) if se is not None else None
            chans[(c.get("id"), c.get("type"), c.get("name"))] = (
                scan, {(a.get("name"), a.get("filename")) for a in c.findall("attribute")})
        out[d.get("name")] = {
            "id": d.get("id"),
            "channels": chans,
            "attrs": {a.get("name") for a in d.findall("attribute")},
            "buffer": {a.get("name") for a in d.findall("buffer-attribute")},
            "debug": {a.get("name") for a in d.findall("debug-attribute")},
        }
    return out


def test_1r1t_xml_matches_pytest_libiio_pluto_xml():
    ours = _describe(PlutoModel("1r1t").xml())
    real = _describe((DEVICES / "pluto.xml").read_text())
    assert set(ours) == set(real) == {"ad9361-phy", "xadc", "cf-ad9361-dds-core-lpc", "cf-ad9361-lpc"}
    for name in real:
        o, r = ours[name], real[name]
        assert o["id"] == r["id"], name
        assert set(o["channels"]) == set(r["channels"]), name
        for key, (scan, attrs) in r["channels"].items():
            assert o["channels"][key][0] == scan, (name, key)
            assert o["channels"][key][1] == attrs, (name, key, o["channels"][key][1] ^ attrs)
        assert o["attrs"] == r["attrs"], name
        assert o["buffer"] == r["buffer"], name
        assert o["debug"] <= r["debug"], (name, o["debug"] - r["debug"])
        assert bool(o["debug"]) == bool(r["debug"]), name


def test_2r2t_layout_matches_fmcomms2_3_recording():
    """A 2r2t Pluto exposes the AD9361 layout of an FMCOMMS2/3 (what adi.ad9361 expects)."""
    names = {"ad9361-phy", "cf-ad9361-dds-core-lpc", "cf-ad9361-lpc"}
    ours = _describe(PlutoModel("2r2t").xml(), names)
    real = _describe((DEVICES / "fmcomms2-3.xml").read_text(), names)
    for name in names:
        assert set(ours[name]["channels"]) == set(real[name]["channels"]), name
        for key, (scan, attrs) in real[name]["channels"].items():
            assert ours[name]["channels"][key][0] == scan, (name, key)
            if name == "ad9361-phy":
                assert ours[name]["channels"][key][1] == attrs, (key, ours[name]["channels"][key][1] ^ attrs)
    adc = [k for k, v in ours["cf-ad9361-lpc"]["channels"].items() if v[0]]
    assert len(adc) == 4


def test_xml_values_are_the_readbacks():
    m = PlutoModel()
    root = ET.fromstring(m.xml(values=True).split("]>", 1)[1])
    lo = [a for a in root.iter("attribute") if a.get("filename") == "out_altvoltage0_RX_LO_frequency"]
    assert lo[0].get("value") == "2400000000"


PHY = "ad9361-phy"
RX0, TX0, RXLO = ("voltage0", False), ("voltage0", True), ("altvoltage0", True)


@pytest.mark.parametrize(
    "chn, attr, value",
    [
        (RXLO, "frequency", "3800000001"),  # above [325000000 1 3800000000]
        (RXLO, "frequency", "70000000"),
        (RX0, "sampling_frequency", "70000000"),
        (RX0, "rf_bandwidth", "60000000"),
        (TX0, "hardwaregain", "0.5"),  # above [-89.75 0.25 0]
        (TX0, "hardwaregain", "-90"),
        (RX0, "gain_control_mode", "turbo"),
        (RX0, "rf_port_select", "Z"),
        (RXLO, "frequency", "nan"),
        (RXLO, "frequency", "two GHz"),
    ],
)
def test_out_of_range_write_is_einval_and_keeps_the_value(chn, attr, value):
    m = PlutoModel()
    before = m.read(PHY, "dev", chn, attr)
    assert m.write(PHY, "dev", chn, attr, value) == -errno.EINVAL
    assert m.read(PHY, "dev", chn, attr) == before


def test_manual_rx_gain_needs_manual_mode_and_is_formatted_like_the_driver():
    m = PlutoModel()
    assert m.write(PHY, "dev", RX0, "hardwaregain", "20") == -errno.EINVAL  # slow_attack owns it
    assert m.write(PHY, "dev", RX0, "gain_control_mode", "manual") == len("manual")
    assert m.write(PHY, "dev", RX0, "hardwaregain", "20.0") == 4
    assert m.read(PHY, "dev", RX0, "hardwaregain") == "20.000000 dB"
    assert m.write(PHY, "dev", RX0, "hardwaregain", "72") == -errno.EINVAL
    assert m.write(PHY, "dev", TX0, "hardwaregain", "-10.3") == 5
    assert m.read(PHY, "dev", TX0, "hardwaregain") == "-10.250000 dB"  # 0.25 dB steps


def test_shared_files_and_derived_values():
    m = PlutoModel()
    assert m.write(PHY, "dev", RX0, "sampling_frequency", "3000000") > 0
    # one rate for RX and TX (shared in_/out_ files), the DMA cores follow, path rates are recomputed
    assert m.read(PHY, "dev", TX0, "sampling_frequency") == "3000000"
    assert m.read("cf-ad9361-lpc", "dev", ("voltage1", False), "sampling_frequency") == "3000000"
    assert m.read(PHY, "dev", None, "tx_path_rates").endswith("TXSAMP:3000000")
    assert m.read(PHY, "dev", RX0, "rf_bandwidth") == m.read(PHY, "dev", ("voltage2", False), "rf_bandwidth")


def test_fir_config_readback_and_low_rates():
    m = PlutoModel()
    assert m.write(PHY, "dev", ("out", False), "voltage_filter_fir_en", "1") == -errno.EINVAL  # no FIR loaded
    assert m.write(PHY, "dev", RX0, "sampling_frequency", "1000000") == -errno.EINVAL  # needs the FIR
    fir = "RX 3 GAIN -6 DEC 4\nTX 3 GAIN 0 INT 4\n" + "1,1\n" * 128 + "\n"
    assert m.write(PHY, "dev", None, "filter_fir_config", fir) == len(fir)
    assert m.read(PHY, "dev", None, "filter_fir_config") == "FIR Rx: 128,4 Tx: 128,4"
    assert m.write(PHY, "dev", ("out", False), "voltage_filter_fir_en", "1") == 1
    assert m.write(PHY, "dev", RX0, "sampling_frequency", "1000000") > 0
    assert m.read(PHY, "dev", None, "rx_path_rates") == (
        "BBPLL:983040000 ADC:32000000 R2:16000000 R1:8000000 RF:4000000 RXSAMP:1000000")
    assert m.write(PHY, "dev", None, "filter_fir_config", "RX 3 GAIN -6 DEC 3\n1,1\n") == -errno.EINVAL


def test_read_only_missing_and_failing_files():
    m = PlutoModel()
    assert m.write(PHY, "dev", RX0, "rssi", "1") == -errno.EACCES
    assert m.write(PHY, "dev", RX0, "hardwaregain_available", "[0 1 2]") == -errno.EACCES
    assert m.write(PHY, "dev", None, "rx_path_rates", "x") == -errno.EACCES
    assert m.read(PHY, "dev", RX0, "no_such_attr") == -errno.ENOENT
    assert m.read(PHY, "dev", ("voltage1", False), "hardwaregain") == -errno.ENOENT  # 1r1t
    assert m.read("no-such-device", "dev", None, "x") == -errno.ENODEV
    assert m.read(PHY, "dev", ("altvoltage1", True), "fastlock_recall") == -errno.EINVAL
    assert m.read(PHY, "debug", None, "adi,2rx-2tx-mode-enable") == "0"
    assert PlutoModel("2r2t").read(PHY, "debug", None, "adi,2rx-2tx-mode-enable") == "1"


def test_bad_mode():
    with pytest.raises(ValueError, match="mode must be one of"):
        PlutoModel("3r3t")


def test_fmcomms2_context_matches_the_recorded_fmcomms2_3_xml():
    import re

    real = (DEVICES / "fmcomms2-3.xml").read_text()
    m = PlutoModel(board="fmcomms2")
    xml = m.xml()
    names = set(re.findall(r'<device id="[^"]*" name="([^"]*)"', xml))
    assert names <= set(re.findall(r'<device id="[^"]*" name="([^"]*)"', real))
    ctx = set(re.findall(r'<context-attribute name="([^"]*)"', xml))
    assert ctx <= set(re.findall(r'<context-attribute name="([^"]*)"', real)) and "hw_model" not in ctx
    assert m.read("ad9361-phy", "dev", ("altvoltage0", True), "frequency_available") == "[70000000 1 6000000000]"
    assert m.write("ad9361-phy", "dev", ("altvoltage0", True), "frequency", "5800000000") > 0
    assert PlutoModel(board="pluto").write("ad9361-phy", "dev", ("altvoltage0", True), "frequency",
                                           "5800000000") == -errno.EINVAL
    assert m.n_chan == 2 and PlutoModel(board="pluto-2r2t").part == "ad9363a"
    with pytest.raises(ValueError, match="board must be one of"):
        PlutoModel(board="hackrf")


def test_dma_status_register_bits_and_write_one_to_clear_as_the_hdl():
    """0x80000088 is register 0x22 of ADI HDL's library/common/up_adc_common.v / up_dac_common.v
    (bit 31 selects the core's registers, 0x22 x 4 = 0x88): the ADC reads {29'd0, ovf, 2'b0} and
    clears ovf on a write with bit 2 set; the DAC reads unf in bit 0 and clears it on bit 0.
    libiio's tests/iio_adi_xflow_check.c clears with 0x6 and tests RX bit 2 (4), TX bit 0 (1)."""
    from sim_fallback.pluto.model import RX_OVERFLOW_BIT, TX_UNDERFLOW_BIT

    assert (RX_OVERFLOW_BIT, TX_UNDERFLOW_BIT) == (0x4, 0x1)
    m = PlutoModel()
    for dev, bit in (("cf-ad9361-lpc", 0x4), ("cf-ad9361-dds-core-lpc", 0x1)):
        m.set_status(dev, bit)
        assert m.write(dev, "debug", None, "direct_reg_access", "0x80000088") > 0
        assert m.read(dev, "debug", None, "direct_reg_access") == "0x%X" % bit
        m.write(dev, "debug", None, "direct_reg_access", "0x80000088 0x%x" % (0x6 & ~bit))
        assert m.read(dev, "debug", None, "direct_reg_access") == "0x%X" % bit  # other bits: no effect
        m.write(dev, "debug", None, "direct_reg_access", "0x80000088 0x%x" % bit)
        assert m.read(dev, "debug", None, "direct_reg_access") == "0x0"  # write one to clear
