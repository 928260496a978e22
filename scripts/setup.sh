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

# torch first, at the version of scripts/constraints.txt, which the package install below also gets
# (-c), so no later resolution moves torch. The pin chooses the version, not the build: pip takes
# whichever build of that version its index offers. Here pip's configuration reads a local index
# that holds the CPU build (2.13.0+cpu). From PyPI alone, Linux x86_64 gets the CUDA build, which pulls
# several GB of nvidia-* packages; to get the CPU build there, set HIL_TORCH_INDEX_URL to PyTorch's
# CPU wheel index, which is passed to this one install as --index-url.
torch_index=()
if [ -n "${HIL_TORCH_INDEX_URL:-}" ]; then torch_index=(--index-url "$HIL_TORCH_INDEX_URL"); fi
"$PY" -m pip install -q -c scripts/constraints.txt "${torch_index[@]}" torch
# extras: pluto (pyadi-iio), test (pytest, hypothesis), cluster (ray), log (tensorboard)
"$PY" -m pip install -q -c scripts/constraints.txt -e '.[pluto,test,cluster,log]'
