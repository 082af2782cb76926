#!/bin/sh
# Install the wyoming-ishowtts wheel into a Python environment that already has torch.
#
#   install-wheel.sh PYTHON DIST_DIR
#
# PYTHON   the interpreter of the target environment (e.g. /opt/venv/bin/python)
# DIST_DIR a folder holding exactly one wyoming_ishowtts-*.whl
#
# Extras come from ISHOWTTS_EXTRAS (default "zh,zeroconf"; never "reference" or "dev").
# docker/Dockerfile, docker/Dockerfile.jetson and tests/test_wheel_install.py all call this
# script, so the test installs the package exactly the way the images do.  torch is installed
# (or inherited from the base image) before this runs; pip leaves an installed torch that
# satisfies the package's requirement alone, so this step never pulls a second torch.
set -eu

if [ "$#" -ne 2 ]; then
    echo "usage: $0 PYTHON DIST_DIR" >&2
    exit 2
fi
python=$1
dist=$2
extras=${ISHOWTTS_EXTRAS:-zh,zeroconf}

set -- "$dist"/wyoming_ishowtts-*.whl
if [ "$#" -ne 1 ] || [ ! -f "$1" ]; then
    echo "expected exactly one wyoming_ishowtts-*.whl in $dist" >&2
    exit 1
fi
wheel=$1

# SKIP_CYTHON=1: wyoming's zeroconf extra pins zeroconf 0.88.0, which PyPI has no wheel of for some targets
# (aarch64 with Python 3.10, the Jetson's); pip builds it from its sdist there, and this makes that build
# pure Python, the same on every machine and without a compiler (only mDNS runs through it).  It changes
# nothing where a wheel exists.  tests/test_images.py builds it this way.
SKIP_CYTHON=1 "$python" -m pip install --no-cache-dir --disable-pip-version-check "${wheel}[${extras}]"

# Fail the build here, not at container start, if the install is unusable.
"$python" -c "import torch, wyoming_ishowtts.healthcheck"
bindir=$(dirname "$python")
if [ ! -x "$bindir/wyoming-ishowtts" ]; then
    echo "console script $bindir/wyoming-ishowtts was not installed" >&2
    exit 1
fi
