"""hil.ota: over-the-air layers (precoder x channel x combiner) and the autograd bridge over any Radio.

Public API: :class:`OTALink`, :class:`OTALinear`, :class:`OTAConv2d`, the transports
:class:`IdealTransport` and :class:`PhyTransport`, :class:`ReciprocityCalibration` and
:func:`calibrate_reciprocity`. See docs/ota.md.
"""

from hil.ota.layers import OTAConv2d, OTALinear
from hil.ota.link import GRADIENT_MODES, OTALink, ReciprocityCalibration, calibrate_reciprocity
from hil.ota.transport import IdealTransport, PhyTransport, Reception, Transport

__all__ = [
    "GRADIENT_MODES",
    "IdealTransport",
    "OTAConv2d",
    "OTALink",
    "OTALinear",
    "PhyTransport",
    "Reception",
    "ReciprocityCalibration",
    "Transport",
    "calibrate_reciprocity",
]
