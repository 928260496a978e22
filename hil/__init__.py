"""hil: a hardware-in-the-loop SDR testbed for over-the-air split deep learning.

Samples everywhere inside the package are ``numpy.complex64`` arrays shaped
``(antennas, samples)`` with full scale ``|x| <= 1``.
"""

__version__ = "0.1.0"
