"""Metadata key names of the ``hil:`` SigMF extension namespace (constants, no magic strings).

[Note: hil SigMF extension]
A channel recording is a SigMF recording (``NAME.sigmf-meta`` + ``NAME.sigmf-data``, ``cf32_le``,
``core:num_channels`` = receive antennas, samples interleaved across channels as SigMF requires)
plus one companion array file ``NAME.hil-channel.npy`` named in the global object under
:data:`CHANNEL_FILE`. The companion holds the channel estimate of every detected frame,
complex64 ``[frames, subcarriers, n_rx, n_tx]`` (``subcarriers`` = 1 for a flat sounder), in the
order of the frame annotations. Its sha512 is stored under :data:`CHANNEL_SHA512` next to SigMF's
own ``core:sha512`` of the dataset. The namespace is declared in ``core:extensions`` as optional, so
any SigMF tool reads the IQ and ignores the rest.

Global: ``hil:channel_file``, ``hil:channel_sha512``, ``hil:channel_shape``, ``hil:n_tx``, ``hil:n_rx``,
``hil:sounder`` (the sounder's parameters), ``hil:subcarrier_spacing_hz``, ``hil:radio``.
Capture segment (one per LO step): ``core:frequency``, ``core:datetime``, ``hil:lo_step``,
``hil:tx_gain_db``, ``hil:rx_gain_db``, ``hil:rf_applied`` (whether the radio was tuned to them).
Annotation (one per detected frame): ``hil:frame`` (row in the companion array), ``hil:slot``
(sounding slot index, consecutive slots are one frame interval apart; a missed frame leaves a gap),
``hil:t_s`` (time of the frame since the start of the recording), ``hil:snr_db``, ``hil:cfo_hz``,
``hil:timing`` (sample index of the frame start inside its burst), ``hil:noise_var`` (noise power
per sample per receive antenna, full-scale units), ``hil:estimate_var`` (variance of the channel
estimate's error per coefficient).
"""

NAMESPACE = "hil"
EXTENSION_VERSION = "0.1.0"

CHANNEL_SUFFIX = ".hil-channel.npy"

# global
CHANNEL_FILE = "hil:channel_file"
CHANNEL_SHA512 = "hil:channel_sha512"
CHANNEL_SHAPE = "hil:channel_shape"
N_TX = "hil:n_tx"
N_RX = "hil:n_rx"
SOUNDER = "hil:sounder"
SUBCARRIER_SPACING_HZ = "hil:subcarrier_spacing_hz"
RADIO = "hil:radio"
COMPLETE = "hil:complete"
STOPPED = "hil:stopped"

# capture segment
LO_STEP = "hil:lo_step"
TX_GAIN_DB = "hil:tx_gain_db"
RX_GAIN_DB = "hil:rx_gain_db"
RF_APPLIED = "hil:rf_applied"  # True: LO/gains were set on the radio; False: labels only (simulated radio)

# annotation
FRAME = "hil:frame"
SLOT = "hil:slot"
T_S = "hil:t_s"
SNR_DB = "hil:snr_db"
CFO_HZ = "hil:cfo_hz"
TIMING = "hil:timing"
NOISE_VAR = "hil:noise_var"
ESTIMATE_VAR = "hil:estimate_var"
