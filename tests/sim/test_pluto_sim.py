"""The virtual Pluto end to end: real libiio tools and real pyadi-iio over TCP to a server process.

Every server runs in its own process on a free port (``sim_fallback.pluto.serve.spawn``). Levels:
the virtual bench's path loss is 40 dB (``AirConfig``), so a DAC amplitude ``a`` (of int16 full
scale) arrives at ``20 log10(a) + tx_gain_db - 40 + rx_gain_db`` dBFS; the ADC quantizes to 12 bits.
"""

from __future__ import annotations

import errno
import gc
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from hil.errors import RadioError
from hil.radio.pluto import PlutoRadio
from sim_fallback.pluto.serve import spawn
from tests.hardware import pluto_bodies as b

pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def vp():
    with spawn("1r1t") as p:
        yield p


@pytest.fixture(scope="module")
def vp2():
    with spawn("2r2t") as p:
        yield p


def _hostport(uri: str) -> tuple[str, int]:
    _, host, port = uri.split(":")
    return host, int(port)


def test_iio_info_lists_the_four_devices_with_values(vp):
    out = subprocess.run(["iio_info", "-u", vp.uri], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "IIO context has 4 devices:" in text
    for dev in ("iio:device0: ad9361-phy", "iio:device1: xadc", "iio:device2: cf-ad9361-dds-core-lpc (buffer capable)",
                "iio:device3: cf-ad9361-lpc (buffer capable)"):
        assert dev in text
    assert "attr  5: frequency value: 2400000000" in text  # RX_LO
    assert "hardwaregain_available value: [-89.750000 0.250000 0.000000]" in text
    assert "voltage0:  (input, index: 0, format: le:S12/16>>0)" in text
    assert "Backend version: 0.24" in text


def test_iio_attr_write_readback_and_out_of_range(vp):
    ok = subprocess.run(["iio_attr", "-u", vp.uri, "-c", "ad9361-phy", "altvoltage1", "frequency", "915000000"],
                        capture_output=True, text=True, timeout=20)
    assert ok.returncode == 0, ok.stderr
    rd = subprocess.run(["iio_attr", "-u", vp.uri, "-c", "ad9361-phy", "altvoltage1", "frequency"],
                        capture_output=True, text=True, timeout=20)
    assert rd.stdout.strip() == "915000000"
    bad = subprocess.run(["iio_attr", "-u", vp.uri, "-c", "ad9361-phy", "altvoltage1", "frequency", "5000000000"],
                         capture_output=True, text=True, timeout=20)
    assert bad.returncode != 0 and "Invalid argument (22)" in bad.stdout + bad.stderr


def test_iio_readdev_streams_12_bit_samples(vp):
    out = subprocess.run(["iio_readdev", "-u", vp.uri, "-s", "1024", "cf-ad9361-lpc"], capture_output=True, timeout=20)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout) == 1024 * 2 * 2  # I and Q, 16-bit words
    words = np.frombuffer(out.stdout, "<i2")
    assert words.min() >= -2048 and words.max() <= 2047


def _cmd(f, sock, line: bytes) -> bytes:
    sock.sendall(line)
    return f.readline()


def test_raw_protocol_answers_like_iiod(vp):
    with socket.create_connection(_hostport(vp.uri), timeout=5) as s:
        f = s.makefile("rb")
        assert _cmd(f, s, b"VERSION\r\n") == b"0.24.hilemu0\n"
        assert _cmd(f, s, b"ZPRINT\r\n") == b"%d\n" % -errno.EINVAL  # the client falls back to PRINT
        assert _cmd(f, s, b"BINARY\r\n") == b"%d\n" % -errno.EINVAL  # libiio 1.x then stays on text
        assert _cmd(f, s, b"TIMEOUT 1000\r\n") == b"0\n"
        n = int(_cmd(f, s, b"PRINT\r\n"))
        xml = f.read(n + 1)
        assert xml.endswith(b"</context>\n") and b'name="cf-ad9361-lpc"' in xml
        assert _cmd(f, s, b"READ iio:device0 OUTPUT altvoltage0 frequency_available\r\n") == b"24\n"
        assert f.readline() == b"[325000000 1 3800000000]\n"
        s.sendall(b"WRITE iio:device0 OUTPUT altvoltage0 frequency 10\r\n9999999999")
        assert f.readline() == b"%d\n" % -errno.EINVAL
        s.sendall(b"WRITE ad9361-phy INPUT voltage0 gain_control_mode 6\r\nmanual")
        assert f.readline() == b"6\n"
        assert _cmd(f, s, b"READ iio:device0 INPUT voltage0 no_such_attr\r\n") == b"%d\n" % -errno.ENOENT
        assert _cmd(f, s, b"GETTRIG iio:device3\r\n") == b"%d\n" % -errno.ENOENT
        assert _cmd(f, s, b"SET iio:device3 BUFFERS_COUNT 4\r\n") == b"0\n"
        assert _cmd(f, s, b"READBUF iio:device3 64\r\n") == b"%d\n" % -errno.EBADF  # not opened
        assert _cmd(f, s, b"OPEN iio:device3 16 00000003\r\n") == b"0\n"
        assert _cmd(f, s, b"READBUF iio:device3 64\r\n") == b"64\n"
        assert f.readline() == b"00000003\n" and len(f.read(64)) == 64
        assert _cmd(f, s, b"CLOSE iio:device3\r\n") == b"0\n"
        assert _cmd(f, s, b"NONSENSE\r\n") == b"%d\n" % -errno.EINVAL
        s.sendall(b"EXIT\r\n")
        assert f.read() == b""  # the server closed the connection


def test_tone_through_adi_pluto(vp):
    # DAC amplitude 2**14 of 32768 (-6.02 dB), TX -10 dB, path -40 dB, RX +30 dB
    b.body_tone_through_adi_pluto(vp.uri, expected_level_dbfs=20 * np.log10(0.5) - 20.0)


def test_profile_roundtrip(vp):
    import adi

    sdr = adi.Pluto(vp.uri)  # a state no profile of the round trip uses: it must be back afterwards
    sdr.sample_rate, sdr.rx_lo, sdr.tx_lo = 3_000_000, 1_000_000_000, 1_100_000_000
    sdr.gain_control_mode_chan0, sdr.tx_hardwaregain_chan0 = "manual", -3.0
    sdr.rx_hardwaregain_chan0 = 11.0
    sdr.close()
    before = b.rf_state(vp.uri)
    b.body_profile_roundtrip(vp.uri, "pluto_1r1t")  # asserts the restore itself
    after = b.rf_state(vp.uri)
    assert after["rx_lo"] == 1_000_000_000 and after["sample_rate"] == 3_000_000 and after["rx_hardwaregain_chan0"] == 11
    b.assert_same_rf_state(after, before)


def test_out_of_range(vp):
    b.body_out_of_range(vp.uri)


def test_manual_gain_is_not_silently_dropped(vp):
    with pytest.raises(ValueError, match="only applied when gain_control_mode = 'manual'"):
        PlutoRadio(vp.uri, {"rf": {"gain_control_mode": "slow_attack", "rx_gain_db": [20]}})
    with PlutoRadio(vp.uri, {"rf": {"gain_control_mode": "slow_attack"}}) as r:
        assert r._tx_dev.gain_control_mode_chan0 == "slow_attack"
        y = r.transceive((0.5 * np.exp(2j * np.pi * 0.01 * np.arange(1000))).astype(np.complex64))
        peak = np.abs(y).max()  # the virtual AGC puts the peak near -12 dBFS
        assert 0.12 < peak < 0.5, peak


def test_transceive_1r1t(vp):
    # x amplitude 0.5 at tx_scale 2**14 -> DAC 0.25 (-12.04 dB); -10 - 40 + 30 dB
    b.body_transceive_tone(vp.uri, "pluto_1r1t", [20 * np.log10(0.25) - 20.0])


def test_transceive_2x2_in_2r2t(vp2):
    b.body_transceive_tone(vp2.uri, "pluto_2r2t", [20 * np.log10(0.25) - 20.0] * 2)
    import adi

    sdr = adi.ad9361(vp2.uri)
    assert sdr._rxadc.name == "cf-ad9361-lpc" and len([c for c in sdr._rxadc.channels if c.scan_element]) == 4


def _idle_server_sockets(vp) -> int:
    """The server's socket count with no client: its listening sockets, once every earlier client
    (including objects only a GC pass frees) is gone. Read as a fixed number, not 'whatever is open
    now': the server closes its side of an earlier test's connection a moment after the client did."""
    gc.collect()
    idle = len(vp.uris)
    assert b.wait_for_sockets(vp.proc.pid, idle) == idle, "an earlier test left a connection open"
    return idle


def test_hundred_transceives_leave_nothing_open(vp):
    idle = _idle_server_sockets(vp)
    b.body_no_leaks(vp.uri, n=100)
    assert b.wait_for_sockets(vp.proc.pid, idle) == idle


def test_a_refused_profile_leaves_no_connection_open(vp):
    """Both devices are opened before the profile is checked against the board's ranges; a refused
    profile must close them, also while the caller still holds the exception (and its traceback)."""
    before = _idle_server_sockets(vp)
    with pytest.raises(ValueError, match="rx_lo_hz = 10000000000 is outside") as excinfo:
        PlutoRadio(vp.uri, {"rf": {"rx_lo_hz": 10_000_000_000}})
    assert b.wait_for_sockets(vp.proc.pid, before) == before, "the refused PlutoRadio left its libiio context open"
    assert excinfo.value.__traceback__ is not None  # still held while we counted


def test_closed_radio_refuses(vp):
    b.body_closed_radio_refuses(vp.uri)


def _run_until_error(r: PlutoRadio, x: np.ndarray):
    """Transceive in a thread until it raises; returns (thread, completed list, errors list)."""
    done, errors = [], []

    def loop():
        try:
            while True:
                r.transceive(x)
                done.append(1)
        except Exception as e:  # noqa: BLE001 - recorded and checked by the caller
            errors.append(e)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while len(done) < 3 and time.monotonic() < deadline and t.is_alive():
        time.sleep(0.01)
    assert len(done) >= 3, errors
    return t, errors


def test_a_dead_or_frozen_virtual_pluto_raises_radio_error_naming_the_uri():
    """SIGSTOP (a frozen board) and SIGKILL (a crash) in the middle of a run: RadioError, no hang.

    The deadline of a call is timeout_ms plus the capture time (4096 + 512 samples, twice, at 1 Msps:
    about 18 ms). The promise is "RadioError within the timeout, never a hang", so the bound has a
    generous margin (MARGIN_S = 5 s): on the shared 2-core machine other test processes can delay the
    worker thread, the join and the exception by seconds, and a tight bound would fail for reasons
    that have nothing to do with the radio. The frozen server stays frozen for the whole wait
    (HANG_S = 30 s): a call without a working timeout would still be blocked there, far beyond the
    bound, so the bound still tells a timeout from a hang.
    """
    x = (0.5 * np.exp(2j * np.pi * 0.01 * np.arange(4096))).astype(np.complex64)
    timeout_s = 1.0
    MARGIN_S, HANG_S = 5.0, 30.0
    assert timeout_s + MARGIN_S < HANG_S / 4
    with spawn("1r1t") as p:
        prof = {"buffers": {"timeout_ms": int(timeout_s * 1000)}}
        # frozen: libiio's timeout fires
        r = PlutoRadio(p.uri, prof)
        t, errors = _run_until_error(r, x)
        os.kill(p.proc.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            t.join(timeout=HANG_S)
            elapsed = time.monotonic() - stopped
        finally:
            os.kill(p.proc.pid, signal.SIGCONT)
        assert not t.is_alive(), f"transceive hung on a frozen server for {HANG_S} s"
        assert elapsed < timeout_s + MARGIN_S, f"RadioError after {elapsed:.2f} s, timeout {timeout_s} s"
        assert len(errors) == 1 and isinstance(errors[0], RadioError) and p.uri in str(errors[0]), errors
        r.close()
        # killed: the connection drops
        r = PlutoRadio(p.uri, prof)
        t, errors = _run_until_error(r, x)
        p.kill()
        killed = time.monotonic()
        t.join(timeout=HANG_S)
        elapsed = time.monotonic() - killed
        assert not t.is_alive(), f"transceive hung for {HANG_S} s after the server died"
        assert elapsed < timeout_s + MARGIN_S, f"RadioError after {elapsed:.2f} s, timeout {timeout_s} s"
        assert len(errors) == 1 and isinstance(errors[0], RadioError), errors
        assert p.uri in str(errors[0])
        r.close()


def test_two_node_bench_lo_offset_and_reverse_link():
    """Two virtual Plutos: A.tx -> B.rx; an LO difference shows as the frequency offset."""
    with spawn("1r1t", boards=2) as p:
        a, bb = p.uris
        # a refused profile on a two-board wiring closes both boards' contexts
        before = _idle_server_sockets(p)
        with pytest.raises(ValueError, match="tx_gain_db") as excinfo:
            PlutoRadio(a, {"rf": {"tx_gain_db": [5]}}, rx_uri=bb)
        assert b.wait_for_sockets(p.proc.pid, before) == before
        del excinfo
        with PlutoRadio(a, "pluto_1r1t", rx_uri=bb) as r:
            fs = r.profile.sample_rate_hz
            n = 4000
            x = (0.5 * np.exp(2j * np.pi * 100e3 / fs * np.arange(n))).astype(np.complex64)
            y = r.transceive(x)
            f, df, _ = b.tone_peak(y[0, :n], fs)
            assert abs(f - 100e3) <= df
            r._tx_dev.tx_lo = 2_400_000_000 + 20_000  # A transmits 20 kHz high
            y = r.transceive(x)
            seg = y[0][b.burst_start(y[0]):][:n]
            f, df, _ = b.tone_peak(seg, fs)
            assert abs(f - 120e3) <= df, f
            rev = r.reverse()
            assert rev.uri == bb and rev.rx_uri == a
            y = rev.transceive(x)  # B -> A, LOs equal on that path
            seg = y[0][b.burst_start(y[0]):][:n]
            f, df, _ = b.tone_peak(seg, fs)
            assert abs(f - 100e3) <= df, f


def test_hil_pluto_check_cli(vp):
    with PlutoRadio(vp.uri, "pluto_1r1t"):
        pass
    ok = subprocess.run([sys.executable, "-m", "hil.cli", "pluto", "check", "--uri", vp.uri, "--profile", "pluto_1r1t"],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    diff = subprocess.run([sys.executable, "-m", "hil.cli", "pluto", "check", "--uri", vp.uri, "--profile", "pluto_2r2t"],
                          capture_output=True, text=True, timeout=60)
    assert diff.returncode == 1 and "2r2t" in diff.stdout and "1r1t" in diff.stdout


# ---------------------------------------------------------------- the board's behaviour, pyadi-iio as the client
def _adi_manual(uri: str, rx_gain: float, tx_gain: float = -10.0, fs: int = 30_720_000, n: int = 16384):
    import adi

    sdr = adi.Pluto(uri)
    sdr.sample_rate = fs
    sdr.rx_lo = sdr.tx_lo = 2_400_000_000
    sdr.gain_control_mode_chan0 = "manual"
    sdr.rx_hardwaregain_chan0 = rx_gain
    sdr.tx_hardwaregain_chan0 = tx_gain
    sdr.rx_buffer_size = n
    return sdr


def _power_dbfs(rx: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.abs(rx / 2048.0) ** 2)))


def test_rx_without_tx_is_noise_that_follows_the_gain_table(vp):
    """No TX: never all zeros; power = thermal noise of the gain table (NF 3 dB above the 40 dB knee,
    +10 dBm full scale) plus the 12-bit ADC's noise, within 1 dB at each gain."""
    fs = 30_720_000
    sdr = _adi_manual(vp.uri, 71.0, fs=fs)
    try:
        for g in (71.0, 60.0, 50.0, 45.0):
            sdr.rx_hardwaregain_chan0 = g
            sdr.rx()  # the first buffer after a change
            rx = sdr.rx()
            assert np.count_nonzero(rx) > 0.9 * rx.size
            thermal = -174 + 3 + max(0.0, 40 - g) + 10 * np.log10(fs) - 10 + g
            want = 10 * np.log10(10 ** (thermal / 10) + 2 * (1 / 2048) ** 2 / 12)
            assert abs(_power_dbfs(rx) - want) < 1.0, (g, _power_dbfs(rx), want)
    finally:
        sdr.rx_destroy_buffer()


def test_loopback_1_returns_the_tx_buffer_bit_exact(vp):
    """Digital loopback: RX codes are the TX words >> 4 (the DAC's 12 MSBs), no gain, no noise."""
    sdr = _adi_manual(vp.uri, 10.0, n=4096)
    sdr._ctrl.debug_attrs["loopback"].value = "1"
    try:
        k = np.arange(1024)
        words = (16 * (k - 512)).astype(np.int16)  # a ramp: every sample unique
        sdr.tx_cyclic_buffer = True
        sdr.tx((words - 1j * words[::-1]).astype(np.complex64))
        rx = sdr.rx()
        i, q = rx.real.astype(np.int64), rx.imag.astype(np.int64)
        shift = int(np.flatnonzero(words >> 4 == i[0])[0])  # a cyclic buffer starts anywhere in its cycle
        idx = (shift + np.arange(rx.size)) % 1024
        assert np.array_equal(i, (words >> 4)[idx]) and np.array_equal(q, (-(words[::-1]) >> 4)[idx])
    finally:
        sdr._ctrl.debug_attrs["loopback"].value = "0"
        sdr.tx_destroy_buffer()
        sdr.rx_destroy_buffer()


def test_dds_tone_at_its_frequency_and_scale(vp):
    """dds_single_tone: the tone arrives at 20 log10(scale) + tx - 40 + rx dBFS (+-0.5 dB)."""
    fs, n = 30_720_000, 16384
    sdr = _adi_manual(vp.uri, 30.0, fs=fs, n=n)
    try:
        f0 = 533 * fs / n  # on an FFT bin
        sdr.dds_single_tone(int(f0), 0.5, 0)
        sdr.rx()
        spec = np.fft.fft(sdr.rx() / 2048.0) / n
        kmax = int(np.argmax(np.abs(spec)))
        assert abs(kmax - 533) <= 1
        level = 20 * np.log10(np.abs(spec[kmax]))
        assert abs(level - (20 * np.log10(0.5) - 10 - 40 + 30)) < 0.5, level
    finally:
        sdr.disable_dds()
        sdr.rx_destroy_buffer()


def test_rssi_tracks_received_power(vp):
    sdr = _adi_manual(vp.uri, 30.0, n=8192)
    try:
        sdr.tx_cyclic_buffer = True
        sdr.tx((2**14 * np.exp(2j * np.pi * 0.01 * np.arange(1000))).astype(np.complex64))
        seen = []
        for tx in (-10.0, -30.0):
            sdr.tx_hardwaregain_chan0 = tx
            sdr.rx()
            rx = sdr.rx()
            rssi = float(sdr._ctrl.find_channel("voltage0").attrs["rssi"].value.split()[0])
            want = 30.0 - _power_dbfs(rx)  # the received power referred to the input, as the driver reports
            assert abs(rssi - want) < 1.0, (tx, rssi, want)
            seen.append(rssi)
        assert abs(seen[1] - seen[0] - 20) < 1.0  # 20 dB weaker: RSSI 20 dB larger
    finally:
        sdr.tx_destroy_buffer()
        sdr.rx_destroy_buffer()


def test_realtime_slow_reader_overflows_and_the_bit_clears():
    """--realtime: a reader that sleeps longer than the ring (4 x 65536 samples at 2.5 MS/s = 105 ms)
    sees bit 2 of 0x80000088 set; writing it back clears it (libiio's iio_adi_xflow_check)."""
    with spawn("1r1t", extra_args=("--realtime",)) as p:
        sdr = _adi_manual(p.uri, 30.0, fs=2_500_000, n=65536)
        try:
            sdr.rx()
            sdr.rx()
            st = sdr._rxadc.reg_read(0x80000088)
            if st & 4:  # the first reads may lag behind on a loaded machine: clear once
                sdr._rxadc.reg_write(0x80000088, st)
            time.sleep(0.5)
            sdr.rx()
            st = sdr._rxadc.reg_read(0x80000088)
            assert st & 4, hex(st)
            sdr._rxadc.reg_write(0x80000088, st)  # write one to clear
            assert sdr._rxadc.reg_read(0x80000088) & 4 == 0
        finally:
            sdr.rx_destroy_buffer()


def test_fmcomms2_model_has_the_ad9361_ranges():
    import adi

    with spawn("1r1t", extra_args=("--model", "fmcomms2")) as p:
        sdr = adi.ad9361(p.uri)
        sdr.rx_lo = 5_800_000_000  # beyond the AD9363's 3.8 GHz
        assert sdr.rx_lo == 5_800_000_000
        assert len([c for c in sdr._rxadc.channels if c.scan_element]) == 4
        assert "hw_model" not in sdr.ctx.attrs and "ip,ip-addr" in sdr.ctx.attrs
    with spawn("1r1t") as p, pytest.raises(Exception):  # the Pluto (AD9363) refuses it
        adi.Pluto(p.uri).rx_lo = 5_800_000_000


def _vm_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


#: resident memory bound of the virtual Pluto under the soak (docs/bench.md)
SOAK_RSS_BOUND_MB = 250


def test_soak_hostile_commands_then_pyadi_iio_still_works():
    """Hostile commands of every kind over raw TCP (bounded: 40 rounds), then pyadi-iio gets its
    tone at the right level and the server's VmRSS stays under SOAK_RSS_BOUND_MB."""
    hostile = [
        b"READBUF iio:device3 9223372036854775807\r\n",
        b"OPEN iio:device3 99999999999 3\r\n",
        b"OPEN iio:device3 1024 3\r\nREADBUF iio:device3 99999999999\r\n",
        b"WRITE iio:device0 DEBUG loopback -1\r\n",
        b"OPEN iio:device2 64 3\r\nWRITEBUF iio:device2 -1\r\n",
        b"WRITEBUF iio:device2 999999999\r\n",
        b"OPEN iio:device2 x y\r\n", b"READ\r\n", b"WRITE\r\n", b"SET a b c d e\r\n", b"\xff\xfe\x00garbage\r\n",
        b"A" * 20000 + b"\r\n", b"TIMEOUT nan\r\n", b"CLOSE iio:device2\r\n", b"GETTRIG\r\n",
        b"WRITE iio:device0 DEBUG direct_reg_access 10\r\n0xzz 0xqq\r",
    ]
    with spawn("1r1t") as p:
        host, port = _hostport(p.uri)
        base = _vm_rss_kb(p.proc.pid)
        holder = socket.create_connection((host, port), timeout=10)  # holds the TX buffer meanwhile
        hf = holder.makefile("rb")
        assert _cmd(hf, holder, b"OPEN iio:device2 64 3 CYCLIC\r\n") == b"0\n"
        for _ in range(40):
            with socket.create_connection((host, port), timeout=10) as s:
                f = s.makefile("rb")
                for msg in hostile:
                    s.sendall(msg)
                assert _cmd(f, s, b"OPEN iio:device2 64 3\r\n") is not None
                s.sendall(b"VERSION\r\n")
                deadline = time.monotonic() + 10
                while f.readline() != b"0.24.hilemu0\n":  # every answer before it, then ours
                    assert time.monotonic() < deadline
                f.close()  # else the file object keeps the socket open
        hf.close()
        holder.close()  # the server frees the TX buffer when it sees the connection end
        deadline = time.monotonic() + 10
        with socket.create_connection((host, port), timeout=10) as s:
            f = s.makefile("rb")
            while _cmd(f, s, b"OPEN iio:device2 64 3\r\n") != b"0\n":
                assert time.monotonic() < deadline, "the TX buffer stayed busy after its holder left"
                time.sleep(0.05)
            assert _cmd(f, s, b"CLOSE iio:device2\r\n") == b"0\n"
            f.close()
        peak = _vm_rss_kb(p.proc.pid)
        assert p.proc.poll() is None
        b.body_tone_through_adi_pluto(p.uri, expected_level_dbfs=20 * np.log10(0.5) - 20.0)
        assert peak / 1024 < SOAK_RSS_BOUND_MB, (base, peak)
        print(f"soak: VmRSS {base / 1024:.0f} MB before, {peak / 1024:.0f} MB after 40 rounds")
