"""The virtual Pluto: an iiod (libiio v0.24 network protocol) server whose RF goes through the
project's channel models. See :mod:`sim_fallback.pluto.iiod`, :mod:`~sim_fallback.pluto.model`,
:mod:`~sim_fallback.pluto.air`; run it with ``hil emu pluto`` or ``python -m sim_fallback.pluto``.
"""
