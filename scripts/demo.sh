#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the main job: over-the-air split training of the digits model
# through the ZMQ channel server (2x2 quasi-static Rayleigh, 10 dB) beside the digital baseline.
# The report folder is runs/demo (report.json, report.md, plots). Extra arguments go to `hil demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
HIL_SKIP_GNURADIO=${HIL_SKIP_GNURADIO:-1} bash scripts/setup.sh
exec "${PYTHON:-python3}" -m hil.cli demo --out runs/demo "$@"
