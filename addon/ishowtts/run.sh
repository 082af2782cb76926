#!/usr/bin/with-contenv bashio
# shellcheck shell=bash
# ==============================================================================
# Start wyoming-ishowtts with the app's options and announce it to Home Assistant.
#
# The option -> flag mapping is in ishowtts::build_args so tests can source this file with
# stand-in bashio functions and check it; main runs only when the file is executed.
# ==============================================================================

ISHOWTTS_BIN=${ISHOWTTS_BIN:-/opt/venv/bin/wyoming-ishowtts}
ISHOWTTS_PYTHON=${ISHOWTTS_PYTHON:-/opt/venv/bin/python}
ISHOWTTS_PORT=10200
ISHOWTTS_INGRESS_PORT=8099
ISHOWTTS_INGRESS_PROXY=172.30.32.2
ISHOWTTS_DATA_DIR=${ISHOWTTS_DATA_DIR:-/data}
ISHOWTTS_SHARE_DIR=${ISHOWTTS_SHARE_DIR:-/share/ishowtts}
ISHOWTTS_ANNOUNCE_TIMEOUT=${ISHOWTTS_ANNOUNCE_TIMEOUT:-3600}

# Fills the global array ISHOWTTS_ARGS with the server's command-line arguments.
function ishowtts::build_args() {
    local voices_dir="${ISHOWTTS_SHARE_DIR}/voices"

    # The voice studio (the Voices panel). The Supervisor's ingress proxy, at its fixed address on the
    # add-on network, connects to this container's own address, so the studio listens on every address
    # of the container; the port is not published on the host (config.yaml `ports` leaves it out). Home
    # Assistant has authenticated the user; --http-proxy refuses every other client on that network.
    ISHOWTTS_ARGS=(
        --uri "tcp://0.0.0.0:${ISHOWTTS_PORT}"
        --data-dir "${ISHOWTTS_DATA_DIR}"
        --http-port "${ISHOWTTS_INGRESS_PORT}"
        --http-host 0.0.0.0
        --http-proxy "${ISHOWTTS_INGRESS_PROXY}"
    )

    # Voices saved from the Voices panel land here, beside hand-made ones.
    if mkdir -p "${voices_dir}" 2> /dev/null && [[ -d "${voices_dir}" ]]; then
        ISHOWTTS_ARGS+=(--voices-dir "${voices_dir}")
    else
        bashio::log.info "No ${voices_dir} folder; create it (Samba or File editor app) to add voices."
    fi

    if bashio::config.has_value 'voice'; then
        ISHOWTTS_ARGS+=(--voice "$(bashio::config 'voice')")
    fi

    if bashio::config.has_value 'model_dir'; then
        ISHOWTTS_ARGS+=(--model-dir "$(bashio::config 'model_dir')")
    elif bashio::config.has_value 'model'; then
        ISHOWTTS_ARGS+=(--model "$(bashio::config 'model')")
    fi

    if bashio::config.has_value 'nfe'; then
        ISHOWTTS_ARGS+=(--nfe "$(bashio::config 'nfe')")
    fi

    if bashio::config.has_value 'precision'; then
        ISHOWTTS_ARGS+=(--precision "$(bashio::config 'precision')")
    fi

    if bashio::config.true 'debug'; then
        ISHOWTTS_ARGS+=(--debug)
    fi
}

# The discovery payload Home Assistant's Wyoming integration reads.
function ishowtts::discovery_config() {
    local host=${1}
    printf '{"uri":"tcp://%s:%s"}' "${host}" "${ISHOWTTS_PORT}"
}

# Waits until the server answers a Wyoming describe, then tells the Supervisor about it.
function ishowtts::announce() {
    local deadline=$((SECONDS + ISHOWTTS_ANNOUNCE_TIMEOUT))
    local config

    until "${ISHOWTTS_PYTHON}" -m wyoming_ishowtts.healthcheck \
        --uri "tcp://127.0.0.1:${ISHOWTTS_PORT}" --timeout 5 --quiet 2> /dev/null; do
        if ((SECONDS >= deadline)); then
            bashio::log.error "Server did not answer within ${ISHOWTTS_ANNOUNCE_TIMEOUT} s; not announced."
            return 1
        fi
        sleep 2
    done

    config=$(ishowtts::discovery_config "${HOSTNAME:-$(hostname)}")
    if bashio::discovery "wyoming" "${config}" > /dev/null; then
        bashio::log.info "Sent discovery information to Home Assistant."
    else
        bashio::log.error "Discovery message to Home Assistant failed!"
    fi
}

function ishowtts::main() {
    ishowtts::build_args
    ishowtts::announce &
    bashio::log.info "Starting wyoming-ishowtts ${ISHOWTTS_ARGS[*]}"
    exec "${ISHOWTTS_BIN}" "${ISHOWTTS_ARGS[@]}"
}

if [[ "${BASH_SOURCE[0]}" == "${0}" ]]; then
    set -euo pipefail
    ishowtts::main
fi
