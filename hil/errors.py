"""The project's exception hierarchy.

Bad arguments raise ``ValueError``/``TypeError``. Failures of the radio, of synchronisation, of a
link or of placement raise a subclass of :class:`HilError`. Messages name the value that was wrong
and say how to fix it; wrap a lower-level cause with ``raise ... from e``.
"""


class HilError(Exception):
    """Base class of every error this package raises on purpose (other than ValueError/TypeError)."""


class ConfigError(HilError, ValueError):
    """A configuration file or profile is malformed or inconsistent."""


class RadioError(HilError):
    """A radio backend failed: no device, lost connection, timeout, overflow."""


class RadioTimeout(RadioError):
    """A radio operation did not complete within its timeout."""


class SyncError(HilError):
    """The PHY receiver could not find or decode a frame (no preamble, CRC failed, truncated)."""


class LinkError(HilError):
    """An over-the-air link failed (shape mismatch, gradient exchange failed)."""


class PlacementError(HilError):
    """The placement engine got an invalid problem."""


class PlacementInfeasible(PlacementError):
    """No placement satisfies the constraints; the message names the binding constraint."""


class CaptureError(HilError):
    """A channel capture or a SigMF recording is invalid or incomplete."""


class NodeError(HilError):
    """A node of a cluster run failed: its actor died, its host was lost, or it could not open its radio."""


class CheckpointError(HilError):
    """A checkpoint file cannot be read (truncated, corrupt, or not a checkpoint of this package)."""
