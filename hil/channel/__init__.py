"""Channel models as generate/apply pairs (see hil.channel.base).

Build from a plain dict (TOML) with :func:`build_channel` / :func:`build_reciprocal_link`;
docs/channels.md lists the models, keys, units and the theory the tests check.
"""

from hil.channel.awgn import AWGN, Chain, active_power
from hil.channel.base import Cascade, ChannelModel
from hil.channel.config import CHANNEL_KEYS, LINK_KEYS, build_channel, build_reciprocal_link, link_generator
from hil.channel.fading import FixedMatrix, FlatFading, exponential_correlation
from hil.channel.impairments import (
    CarrierFrequencyOffset,
    Clipper,
    DCOffset,
    FractionalDelay,
    IQImbalance,
    Passthrough,
    PhaseNoise,
    Quantizer,
    SamplingClockOffset,
)
from hil.channel.memory import TimeBehaviour, rho_from_doppler
from hil.channel.random import complex_normal
from hil.channel.reciprocity import ReciprocalLink
from hil.channel.replay import ReplayChannel
from hil.channel.tdl import TDL, load_tdl_profile

__all__ = [
    "AWGN",
    "CHANNEL_KEYS",
    "Cascade",
    "CarrierFrequencyOffset",
    "Chain",
    "ChannelModel",
    "Clipper",
    "DCOffset",
    "FixedMatrix",
    "FlatFading",
    "FractionalDelay",
    "IQImbalance",
    "LINK_KEYS",
    "Passthrough",
    "PhaseNoise",
    "Quantizer",
    "ReciprocalLink",
    "ReplayChannel",
    "SamplingClockOffset",
    "TDL",
    "TimeBehaviour",
    "active_power",
    "build_channel",
    "build_reciprocal_link",
    "complex_normal",
    "exponential_correlation",
    "link_generator",
    "load_tdl_profile",
    "rho_from_doppler",
]
