"""Metadata key names of the ``hil:`` SigMF extension namespace (constants, no magic strings).

They are defined in :mod:`hil._sigmf`, the one reader of recordings, which sits below
``hil.channel`` (the replay reads recordings too); see [Note: hil SigMF extension] there. This module
names them for the capture code.
"""

from hil._sigmf import (
    ANTENNA,
    CFO_HZ,
    CHANNEL_FILE,
    CHANNEL_SHA512,
    CHANNEL_SHAPE,
    CHANNEL_SUFFIX,
    COMPLETE,
    ESTIMATE_VAR,
    EXTENSION_VERSION,
    FRAME,
    LO_STEP,
    N_RX,
    N_SAMPLES,
    N_TX,
    NAMESPACE,
    NOISE_VAR,
    RADIO,
    RF_APPLIED,
    RX_GAIN_DB,
    SLOT,
    SNR_DB,
    SOUNDER,
    SOURCE,
    STOPPED,
    SUBCARRIER_SPACING_HZ,
    T_S,
    TIMING,
    TX_GAIN_DB,
)

__all__ = [
    "ANTENNA", "SOURCE", "CFO_HZ", "CHANNEL_FILE", "CHANNEL_SHA512", "CHANNEL_SHAPE", "CHANNEL_SUFFIX", "COMPLETE", "ESTIMATE_VAR",
    "EXTENSION_VERSION", "FRAME", "LO_STEP", "NAMESPACE", "NOISE_VAR", "N_RX", "N_SAMPLES", "N_TX", "RADIO",
    "RF_APPLIED", "RX_GAIN_DB", "SLOT", "SNR_DB", "SOUNDER", "STOPPED", "SUBCARRIER_SPACING_HZ", "T_S",
    "TIMING", "TX_GAIN_DB",
]
