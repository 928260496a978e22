"""Channel models as generate/apply pairs (see hil.channel.base)."""

from hil.channel.base import Cascade, ChannelModel

__all__ = ["Cascade", "ChannelModel"]
