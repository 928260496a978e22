#!/usr/bin/env bash
# Installs everything the testbed needs on a fresh Debian machine with Python 3.11, as root.
# Idempotent. Set HIL_SKIP_GNURADIO=1 to skip GNU Radio (only the interoperability tests use it).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
PY=${PYTHON:-python3}

if command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq
  # libiio 0.24 (C library + iio_info/iio_attr/iio_readdev) for pyadi-iio and the virtual-Pluto tests.
  pkgs=(libiio0 libiio-utils)
  if [ "${HIL_SKIP_GNURADIO:-0}" != 1 ]; then pkgs+=(gnuradio); fi
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

# torch first, pinned: a looser requirement would pull a multi-GB CUDA build.
"$PY" -m pip install -q torch==2.13.0
"$PY" -m pip install -q -e '.[pluto,test,log]'
