"""Radio backends. ``pluto`` is the only module that imports ``adi``; import it explicitly."""

from hil.radio.base import Radio, RadioCaps, as_samples

__all__ = ["Radio", "RadioCaps", "as_samples"]
