"""hil.capture: channel sounding, SigMF recordings, statistics and reports (docs/capture.md).

    with open_radio(RadioSpec("zmq", endpoint="tcp://127.0.0.1:PORT")) as o:   # hil.radio.open
        res = run_capture(o.radio, CaptureSweep.from_file("sweep.toml"), "runs/cap", rng=np.random.default_rng(0),
                          hw=o.hw, radio_info=o.info)
    rec = load_recording(res.recordings[0])      # estimates [F, n_sc, n_rx, n_tx], frames, metadata
    stats = recording_stats(rec)                  # rho, coherence time, Rician K, SNR, delay spread
    # replay: hil.channel.build_channel("replay:runs/cap", rng) -> hil.channel.replay.ReplayChannel
"""

from hil.capture.run import CaptureResult, run_capture, stop_on_signals
from hil.capture.sigmf_io import (
    FrameTable,
    Recording,
    RecordingWriter,
    list_recordings,
    load_recording,
    load_recordings,
    remove_partials,
    validate_recording,
)
from hil.capture.sounder import PhySounder, Sounding, sounder_settings
from hil.capture.stats import ChannelStats, UndefinedStatistic, channel_stats, recording_stats
from hil.capture.sweep import CaptureSweep

__all__ = [
    "CaptureResult",
    "ChannelStats",
    "FrameTable",
    "PhySounder",
    "Recording",
    "RecordingWriter",
    "Sounding",
    "CaptureSweep",
    "UndefinedStatistic",
    "channel_stats",
    "list_recordings",
    "load_recording",
    "load_recordings",
    "recording_stats",
    "remove_partials",
    "run_capture",
    "sounder_settings",
    "stop_on_signals",
    "validate_recording",
]
