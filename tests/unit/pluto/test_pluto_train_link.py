"""``hil train --radio pluto``: the Pluto profile follows the OTA layer's antenna count (no board needed)."""

from __future__ import annotations

import pytest

from hil.errors import ConfigError
from hil.train.config import OTAConfig


class _Opened(Exception):
    """Raised by the stand-in PlutoRadio: records what open_transport asked for, opens nothing."""


def _profile_asked(monkeypatch, **ota) -> str:
    import hil.radio.pluto as pluto
    from hil.train.links import open_transport

    def fake(uri, profile=None, *a, **k):
        raise _Opened(uri, profile)

    monkeypatch.setattr(pluto, "PlutoRadio", fake)
    with pytest.raises(_Opened) as e:
        open_transport(OTAConfig(transport="pluto", uri="ip:127.0.0.1:1", **ota))
    assert e.value.args[0] == "ip:127.0.0.1:1"
    return e.value.args[1]


def test_one_antenna_opens_the_1r1t_profile(monkeypatch):
    assert _profile_asked(monkeypatch, n_tx=1, n_rx=1) == "pluto_1r1t"


def test_two_antennas_open_the_2r2t_profile(monkeypatch):
    assert _profile_asked(monkeypatch, n_tx=2, n_rx=2) == "pluto_2r2t"


@pytest.mark.parametrize("n_tx, n_rx", [(1, 2), (4, 4)])
def test_other_antenna_counts_are_refused_naming_the_profiles(monkeypatch, n_tx, n_rx):
    with pytest.raises(ConfigError, match=rf"n_tx = n_rx = 1 \(pluto_1r1t\) or 2 \(pluto_2r2t\), got n_tx={n_tx}"):
        _profile_asked(monkeypatch, n_tx=n_tx, n_rx=n_rx)


def test_hil_train_takes_radio_and_uri(monkeypatch, tmp_path):
    """``--radio`` (alias of --transport) and ``--uri`` reach the [ota] table; a bad --radio is a config error."""
    from typer.testing import CliRunner

    import hil.cli.train as cli

    seen = {}
    monkeypatch.setattr(cli, "_run_training", lambda cfg, out, *a, **k: seen.setdefault("ota", cfg.ota))
    cfg = tmp_path / "t.toml"
    cfg.write_text('[data]\nname = "digits"\n[ota]\nn_tx = 1\nn_rx = 1\n')
    res = CliRunner().invoke(cli.app, ["train", "-c", str(cfg), "--radio", "pluto", "--uri", "ip:10.0.0.2"])
    assert res.exit_code == 0, res.output
    assert seen["ota"].transport == "pluto" and seen["ota"].uri == "ip:10.0.0.2"
    res = CliRunner().invoke(cli.app, ["train", "-c", str(cfg), "--radio", "b210"])
    assert res.exit_code == 2 and "transport" in res.output
