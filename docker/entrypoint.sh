#!/bin/sh
# Container entrypoint: serve Wyoming on every interface (port 10200), keep models, caches and
# voices in the data volume, and pass any extra arguments (compose `command:`) to the server.
# ISHOWTTS_URI and ISHOWTTS_DATA_DIR exist for tests/test_wheel_install.py; images leave them unset.
set -eu

data=${ISHOWTTS_DATA_DIR:-/data}
uri=${ISHOWTTS_URI:-tcp://0.0.0.0:10200}
voices="$data/voices"

if ! mkdir -p "$voices" 2>/dev/null || [ ! -w "$data" ]; then
    echo "error: $data is not writable by uid $(id -u) gid $(id -g);" \
        "give the volume to that user (e.g. sudo chown -R $(id -u):$(id -g) /path/on/host)" >&2
    exit 1
fi

exec wyoming-ishowtts \
    --uri "$uri" \
    --data-dir "$data" \
    --voices-dir "$voices" \
    "$@"
