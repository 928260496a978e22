"""The issue-5 promises on a real board: ``pytest tests/hardware --radio-uri ip:192.168.2.1``.

Cable TX1 -> RX1 (and TX2 -> RX2 for 2r2t) through at least 30 dB of attenuation (docs/bench.md).
"""

import pytest

from tests.hardware import pluto_bodies as b

pytestmark = pytest.mark.hardware


def test_profile_roundtrip(radio_uri):
    b.body_profile_roundtrip(radio_uri)


def test_out_of_range(radio_uri):
    b.body_out_of_range(radio_uri)


def test_tone_through_adi_pluto(radio_uri):
    b.body_tone_through_adi_pluto(radio_uri, expected_level_dbfs=None)


def test_transceive_tone(radio_uri):
    b.body_transceive_tone(radio_uri, "pluto_1r1t", None)


def test_no_leaks(radio_uri):
    b.body_no_leaks(radio_uri, n=20)


def test_closed_radio_refuses(radio_uri):
    b.body_closed_radio_refuses(radio_uri)


def test_transceive_2x2_when_the_board_is_2r2t(radio_uri):
    from hil.radio.pluto import check_board

    if any(setting.startswith("mode") for setting, _, _ in check_board(radio_uri, "pluto_2r2t")):
        pytest.skip("the board is not in 2r2t mode (see firmware_configs/README.md)")
    b.body_transceive_tone(radio_uri, "pluto_2r2t", None)
