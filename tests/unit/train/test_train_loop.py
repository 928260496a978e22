"""Config parsing, checkpoint/resume of the loop, and a whole experiment in process."""

import json

import numpy as np
import pytest
import torch

from hil.errors import ConfigError
from hil.ota import IdealTransport, OTALink
from hil.train.config import from_dict, load_config, to_toml
from hil.data import load_digits
from hil.train.loop import train_model
from hil.train.models import build_model, unsplit
from hil.train.run import run_experiment


def test_packaged_configs_load_and_round_trip(tmp_path):
    for name in ("digits_mlp", "digits_cnn", "demo"):
        cfg = load_config(name)
        p = tmp_path / f"{name}.toml"
        p.write_text(to_toml(cfg))
        assert load_config(p) == cfg


@pytest.mark.parametrize(
    "raw,match",
    [
        ({"ota": {"snr": 3}}, r"^\[ota\]\.snr: unknown key; valid: .*snr_db"),
        ({"otta": {}}, r"^\[otta\]: unknown section; valid: data, model, ota, train, sweep"),
        ({"ota": {"gradient_mode": "exact", "transport": "zmq"}}, "exact.*ideal"),
        ({"data": {"name": "mnist"}}, "needs path"),
        ({"ota": {"rho": 1.5}}, r"^\[ota\]\.rho: out of range \(got 1\.5\); valid: >= 0\.0 and <= 1\.0"),
        # each of these ended in a traceback or a bare TypeError before the config dialect
        ({"ota": {"snr_db": "ten"}}, r"^\[ota\]\.snr_db: must be a number \(got 'ten'\)"),
        ({"train": {"lr": -1}}, r"^\[train\]\.lr: out of range \(got -1\); valid: > 0"),
        ({"train": {"lr": float("nan")}}, r"^\[train\]\.lr: must be finite \(not NaN or Inf\) \(got nan\)"),
        ({"model": {"hidden": 0}}, r"^\[model\]\.hidden: out of range \(got 0\); valid: >= 1"),
        ({"ota": {"channel_uses": "16"}}, r"^\[ota\]\.channel_uses: must be an integer \(got '16'\)"),
        ({"sweep": {"channel_uses": [8, "16"]}}, r"^\[sweep\]\.channel_uses\[1\]: must be an integer"),
        ({"train": {"epochs": True}}, r"^\[train\]\.epochs: must be an integer \(got True\)"),
        ({"train": []}, r"^\[train\]: must be a table"),
    ],
)
def test_bad_configs_are_named(raw, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(raw)


def _digits():
    return load_digits(limit_train=256, limit_test=128)


def test_resume_continues_exactly_where_it_stopped(tmp_path):
    # 2 epochs, then a new process-like restart to 4 epochs == 4 epochs straight (digital model, CPU, seeded).
    data = _digits()

    def model():
        torch.manual_seed(0)
        return build_model("mlp", data.image_shape, 10, ota=False)

    straight = train_model(model(), data, 4, 32, 0.01, 0, checkpoint=tmp_path / "a.pt")
    m = model()
    try:
        train_model(m, data, 4, 32, 0.01, 0, checkpoint=tmp_path / "b.pt", on_epoch=lambda r: _stop_after(r, 2))
    except KeyboardInterrupt:
        pass
    resumed = train_model(model(), data, 4, 32, 0.01, 0, checkpoint=tmp_path / "b.pt")
    assert [r.epoch for r in resumed] == [1, 2, 3, 4]
    assert [r.loss for r in resumed] == [r.loss for r in straight]
    assert [r.test_accuracy for r in resumed] == [r.test_accuracy for r in straight]


def _stop_after(rec, n):
    if rec.epoch == n:
        raise KeyboardInterrupt  # as Ctrl-C right after the checkpoint of epoch n


def test_split_model_over_identity_channel_equals_unsplit():
    # Identity channel, no noise: the split model (edge -> OTA link -> server) equals the unsplit one.
    data = _digits()
    for kind in ("mlp", "cnn"):
        t = IdealTransport(2, 2, None, np.random.default_rng(0), channel=np.eye(2))
        torch.manual_seed(0)
        m = build_model(kind, data.image_shape, 10, hidden=8, cut_out=8, ota=True, link=OTALink(t, "reciprocity"), channel_uses=4)
        train_model(m, data, 1, 64, 0.01, 0)
        m.eval()
        ref = unsplit(m, np.eye(2))
        with torch.no_grad():
            torch.testing.assert_close(m(data.x_test), ref(data.x_test), rtol=1e-4, atol=1e-4)


def test_experiment_writes_report(tmp_path):
    cfg = from_dict({
        "data": {"limit_train": 256, "limit_test": 128},
        "ota": {"transport": "ideal", "snr_db": 20.0, "channel_uses": 4},
        "train": {"epochs": 2},
        "sweep": {"snr_db": [0.0, 20.0], "epochs": 1},
    })
    run_experiment(cfg, tmp_path, sweeps=True)
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert (on_disk["snr_db"], on_disk["gradient_mode"], on_disk["transport"]) == (20.0, cfg.ota.gradient_mode, "ideal")
    # the reported accuracies are the models' own: the last epoch's test accuracy, and the digital
    # model rebuilt from its checkpoint and evaluated again on the same test split
    acc = on_disk["accuracy"]
    assert acc["ota"] == on_disk["history"]["ota"][-1]["test_accuracy"]
    assert acc["digital"] == on_disk["history"]["digital"][-1]["test_accuracy"]
    from hil.data import load_dataset
    from hil.train.loop import evaluate, load_checkpoint
    from hil.train.run import _build

    d = cfg.data
    data = load_dataset(d.name, d.path, d.test_fraction, cfg.train.seed, d.limit_train, d.limit_test)
    model = _build(cfg, data, False, None)
    model.load_state_dict(load_checkpoint(tmp_path / "checkpoints" / "digital.pt")["model"])
    assert evaluate(model, data.x_test, data.y_test, cfg.train.batch_size) == pytest.approx(acc["digital"])
    assert 20.0 < acc["digital"] <= 100.0  # 10 classes: chance is 10 %
    assert on_disk["transport"] == "ideal" and on_disk["epochs"] == 2
    # 2 epochs x 4 steps x 2 frames (forward + echo) + 2 x 2 eval frames; the 8 calibration frames
    # are counted apart, never in the per-epoch training frames
    assert on_disk["frames"] == 2 * 4 * 2 + 2 * 2
    assert on_disk["calibration_frames"] == 8
    assert [h["frames"] for h in on_disk["history"]["ota"]] == [10, 20]
    assert [p["snr_db"] for p in on_disk["sweeps"]["snr_db"]] == [0.0, 20.0]
    for png in ("history.png", "accuracy_vs_snr_db.png"):
        assert (tmp_path / png).stat().st_size > 1000
    assert "Gap to digital" in (tmp_path / "report.md").read_text()
    assert load_config(tmp_path / "config.toml") == cfg


def test_rerunning_a_finished_run_does_not_calibrate_again(tmp_path, monkeypatch):
    # A finished checkpoint: the rerun sends no frame at all (no calibration, no epoch) and reports
    # the same numbers, calibration included (restored from the checkpoint).
    import hil.train.run as run

    cfg = from_dict({"data": {"limit_train": 128, "limit_test": 64}, "ota": {"channel_uses": 2, "snr_db": 20.0},
                     "train": {"epochs": 1, "digital": False}})
    first = run_experiment(cfg, tmp_path)
    calls = []
    real = run.calibrate_reciprocity
    monkeypatch.setattr(run, "calibrate_reciprocity", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = run_experiment(cfg, tmp_path)
    assert calls == []
    for key in ("frames", "calibration_frames", "calibration", "accuracy", "history"):
        assert again[key] == first[key], key


def test_resuming_with_a_different_config_is_refused(tmp_path):
    base = {"data": {"limit_train": 128, "limit_test": 64}, "ota": {"channel_uses": 2}, "train": {"epochs": 1, "digital": False}}
    run_experiment(from_dict(base), tmp_path)
    changed = from_dict({**base, "ota": {"channel_uses": 2, "snr_db": 0.0}})
    with pytest.raises(ConfigError, match="different config"):
        run_experiment(changed, tmp_path)


def test_demo_transport_check_and_quick_config():
    from hil.train.demo import check_transport, demo_config

    assert [check_transport(t) for t in ("ideal", "loopback", "zmq")] == ["ideal", "loopback", "zmq"]
    with pytest.raises(ValueError, match="demo transport must be one of"):
        check_transport("carrier-pigeon")
    cfg = demo_config(load_config("demo"), quick=True, transport="loopback", gradient_mode="estimated", snr_db=0.0)
    assert (cfg.ota.transport, cfg.ota.gradient_mode, cfg.ota.snr_db) == ("loopback", "estimated", 0.0)
    assert cfg.train.epochs < load_config("demo").train.epochs
