#!/usr/bin/env bash
# The image, built and run with no Docker daemon: rootful podman builds the Dockerfile as it is, then runs what
# README.md's "Docker" section runs and checks it, on loopback only (every container shares the host's network).
#
#   docker/smoke.sh [all|sqlite|postgres]      (make image-smoke; .ci/run runs `all` with CI=true)
#   docker/smoke.sh prepare                    (podman and the stand-in only; .ci/run, beside `make lint`)
#
# 1. the base: python:3.11-slim cannot be pulled here, so a stand-in with the same Python and Debian (bookworm's
#    python3.11 by debootstrap, plus the `python` command the real image has) is imported once per machine and
#    kept in the smoke's own podman storage ($SMOKE_STATE_DIR) beside the build cache;
# 2. the image: `podman build --format docker` (podman's own format drops HEALTHCHECK) with one build argument,
#    PYTHON_IMAGE=<the stand-in>; the host's CA bundle is mounted read-only for pip during the build only;
# 3. sqlite: one container with a volume: /healthz, a batch to completion through the API, user and group 10001
#    for the process and /app/data, the HEALTHCHECK (run by hand: no systemd here), JSON logs, and a stop that
#    exits 0 within the stop timeout;
# 4. postgres: the README's replicas: an API-only container and a `worker` container on a database of the
#    smoke's own on the host's PostgreSQL ($SMOKE_POSTGRES_URL), created and dropped here.
# Everything it starts or makes is removed on exit, whatever the exit; the stand-in and the build cache stay.
# When podman cannot run, it fails (it never skips); only the postgres part skips, outside CI, with no server.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WHAT=${1:-all}
STATE_DIR=${SMOKE_STATE_DIR:-/var/lib/llm-batch-smoke}
POSTGRES_URL=${SMOKE_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432}
DEBIAN_MIRROR=${SMOKE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
STORAGE_DRIVER=${SMOKE_STORAGE_DRIVER:-overlay}
CA_BUNDLE=${SMOKE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
STANDIN=localhost/llm-batch-smoke/python:3.11-slim-bookworm
# What the stand-in is made of; a change to it (bump the last word too) makes the next run build a new one.
STANDIN_PACKAGES=python3,python3-venv,python3-pip,ca-certificates
STANDIN_RECIPE="debootstrap --variant=minbase bookworm +$STANDIN_PACKAGES; python -> python3; no docs or apt lists; v1"
REPOSITORY=localhost/llm-batch-smoke/llm-batch
STOP_TIMEOUT=35  # README's --stop-timeout: more than uvicorn's 30 s graceful shutdown and the workers' 25 s grace
FAST_EMULATOR=(-e POLL_INTERVAL_SECONDS=1 -e EMULATOR_TIME_SCALE=0.01)  # the README's quick start, as env

RUN_ID="$(date +%s)-$$"
IMAGE="$REPOSITORY:run-$RUN_ID"
WORK=""
CONTAINERS=()
VOLUMES=()
DATABASE=""
BUILT=false
STARTED=$SECONDS

say() { printf '[smoke %4ds] %s\n' "$((SECONDS - STARTED))" "$*"; }
fail() {
    printf '[smoke %4ds] FAILED: %s\n' "$((SECONDS - STARTED))" "$*" >&2
    exit 1
}

# podman without the lines it logs because there is no systemd to run healthcheck timers with (the smoke
# runs the check itself); everything else it says on stderr passes through.
pm() {
    local rc=0
    podman "$@" 2>"$WORK/podman.err" || rc=$?
    grep -v 'unable to get systemd connection' "$WORK/podman.err" >&2 || true
    return "$rc"
}

psql_admin() { psql "$POSTGRES_URL/postgres" -X -q -v ON_ERROR_STOP=1 "$@"; }

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [[ -n $WORK ]]; then
        local container
        for container in "${CONTAINERS[@]}"; do
            if ((rc != 0)); then
                echo "--- last lines of $container ---" >&2
                pm logs --tail 40 "$container" >&2
            fi
            pm rm --force --volumes --time 0 "$container" >/dev/null
        done
        local volume
        for volume in "${VOLUMES[@]}"; do pm volume rm --force "$volume" >/dev/null; done
        # The run's tag goes; the image stays only as $REPOSITORY:last, the next build's cache.
        if $BUILT; then pm rmi "$IMAGE" >/dev/null; fi
    fi
    if [[ -n $DATABASE ]]; then psql_admin -c "DROP DATABASE IF EXISTS $DATABASE WITH (FORCE)"; fi
    if [[ -n $WORK ]]; then rm -rf "$WORK"; fi
    if ((rc == 0)); then say "$([[ $WHAT == prepare ]] && echo ready || echo passed) in $((SECONDS - STARTED)) s"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# -- the tools and podman's configuration of the smoke's own ---------------------------------------------------
ensure_tools() {
    [[ $(id -u) -eq 0 ]] || fail "run as root: the smoke uses rootful podman and debootstrap"
    local missing=()
    command -v podman >/dev/null || missing+=(podman)
    command -v runc >/dev/null || missing+=(runc)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if ((${#missing[@]})); then
        command -v apt-get >/dev/null || fail "install ${missing[*]} (and runc, not crun)"
        say "installing ${missing[*]} from Debian's packages"
        apt-get update -qq
        # runc named beside podman, so that apt satisfies podman's `crun | runc` with it
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc debootstrap >/dev/null
    fi
}

hard_limit() {  # the smaller of a hard resource limit (ulimit's flag) and 16384
    local limit
    limit=$(ulimit -H "$1")
    if [[ $limit == unlimited ]] || ((limit > 16384)); then limit=16384; fi
    echo "$limit"
}

configure_podman() {
    mkdir -p "$STATE_DIR"
    # runc: crun refuses this machine's hybrid cgroup hierarchy. The ulimits: podman's defaults are above the
    # hard limits root has here, and raising them is refused. Host networking: nothing to set up, and every
    # connection stays on loopback. tmp_dir and the storage: apart from any other podman use on the machine.
    cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(hard_limit -n):$(hard_limit -n)", "nproc=$(hard_limit -u):$(hard_limit -u)"]
netns = "host"
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "/run/llm-batch-smoke/libpod"
EOF
    cat >"$WORK/storage.conf" <<EOF
[storage]
driver = "$STORAGE_DRIVER"
graphroot = "$STATE_DIR/storage"
runroot = "/run/llm-batch-smoke/storage"
EOF
    export CONTAINERS_CONF="$WORK/containers.conf" CONTAINERS_STORAGE_CONF="$WORK/storage.conf"
    pm info --format '{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}}' >"$WORK/info" ||
        fail "podman cannot run here (podman info failed)"
    say "podman $(podman version --format '{{.Client.Version}}'): runtime and storage $(cat "$WORK/info")"
}

# -- 1. the stand-in base --------------------------------------------------------------------------------------
ensure_standin() {
    local key have rootfs
    key=$(printf '%s' "$STANDIN_RECIPE" | sha256sum | cut -c1-16)
    exec 9>"$STATE_DIR/standin.lock"
    flock 9
    have=$(pm image inspect --format '{{index .Labels "llm-batch-smoke.recipe"}}' "$STANDIN" 2>/dev/null || true)
    if [[ $have == "$key" ]]; then
        say "stand-in base $STANDIN: cached"
    else
        say "stand-in base $STANDIN: debootstrap bookworm (once per machine)"
        rootfs="$WORK/rootfs"
        if ! debootstrap --variant=minbase --include="$STANDIN_PACKAGES" bookworm "$rootfs" "$DEBIAN_MIRROR" \
            >"$WORK/debootstrap.log" 2>&1; then
            tail -n 30 "$WORK/debootstrap.log" >&2
            fail "debootstrap"
        fi
        ln -s python3 "$rootfs/usr/bin/python"  # the real image's `python`; the Dockerfile calls it so
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* \
            "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
        tar --numeric-owner -C "$rootfs" -cf - . |
            pm import --quiet --change "LABEL llm-batch-smoke.recipe=$key" --change 'ENV LANG=C.UTF-8' \
                --change 'CMD ["python3"]' - "$STANDIN" >/dev/null
        rm -rf "$rootfs"
        say "stand-in base imported"
    fi
    flock -u 9
}

# -- 2. the image ----------------------------------------------------------------------------------------------
build_image() {
    [[ -r $CA_BUNDLE ]] || fail "no CA bundle at $CA_BUNDLE (SMOKE_CA_BUNDLE)"
    local build=(pm build --format docker --pull=never --network host --build-arg PYTHON_IMAGE="$STANDIN"
        --volume "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro")
    exec 8>"$STATE_DIR/build.lock"
    flock 8  # one build at a time on this storage, so that pruning never takes another build's layers
    # Working containers of an interrupted build (none is a running build's: this one holds the lock).
    local leftover
    for leftover in $(pm ps --all --external --format '{{.ID}} {{.Status}}' | awk '$2 == "Storage" {print $1}'); do
        pm rm --force "$leftover" >/dev/null
    done
    say "building $IMAGE from the Dockerfile"
    local started=$SECONDS
    # The build stage gets a tag of its own (the same steps, so the second build takes them from the cache):
    # with both stages tagged, the images prune removes are no cache of this Dockerfile's.
    if ! "${build[@]}" --target build --tag "$REPOSITORY:build-stage" "$ROOT" >"$WORK/build.log" 2>&1 ||
        ! "${build[@]}" --tag "$IMAGE" "$ROOT" >>"$WORK/build.log" 2>&1; then
        tail -n 60 "$WORK/build.log" >&2
        fail "podman build"
    fi
    BUILT=true
    pm tag "$IMAGE" "$REPOSITORY:last"
    local passes=0
    # A pass removes dangling leaves only; their parents dangle in the next.
    while [[ -n $(pm image prune --force) ]] && ((++passes < 8)); do :; done
    flock -u 8
    say "built in $((SECONDS - started)) s: $(pm image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=si)B"
}

check_image() {
    local health user
    health=$(pm image inspect --format '{{json .HealthCheck}}' "$IMAGE")
    [[ $health == *healthz* ]] || fail "the image has no HEALTHCHECK: $health"
    user=$(pm image inspect --format '{{.User}}' "$IMAGE")
    [[ $user == 10001:10001 ]] || fail "USER is $user"
    # No pip or setuptools in the runtime venv; the group of 10001 exists; the build's CA bundle stayed outside.
    pm run --rm --entrypoint python "$IMAGE" -c '
import grp, importlib.util, pwd, sys
assert sys.prefix == "/opt/venv", sys.prefix
assert importlib.util.find_spec("pip") is None and importlib.util.find_spec("setuptools") is None, "pip left"
assert grp.getgrgid(10001).gr_name == pwd.getpwuid(10001).pw_name == "llmbatch"
assert pwd.getpwuid(10001).pw_gid == 10001
' || fail "the image's contents"
    local inside base
    inside=$(pm run --rm --entrypoint sha256sum "$IMAGE" /etc/ssl/certs/ca-certificates.crt)
    base=$(pm run --rm --entrypoint sha256sum "$STANDIN" /etc/ssl/certs/ca-certificates.crt)
    [[ $inside == "$base" ]] || fail "the image's CA bundle is not its base's"
    say "image: HEALTHCHECK kept, USER 10001:10001, group llmbatch = 10001, no pip or setuptools, base CA bundle"
}

# -- the checks both smokes make -------------------------------------------------------------------------------
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {  # start NAME ARGS...: podman run -d, the container remembered for clean-up
    local name=$1
    shift
    CONTAINERS+=("$name")
    pm run --detach --name "$name" --network host --stop-timeout "$STOP_TIMEOUT" "$@" >/dev/null
}

wait_for() {  # wait_for CONTAINER URL: until the URL answers 2xx, the container still running
    local container=$1 url=$2 deadline=$((SECONDS + 90))
    until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
        [[ $(pm inspect --format '{{.State.Running}}' "$container") == true ]] || fail "$container exited"
        ((SECONDS < deadline)) || fail "$url did not answer within 90 s"
        sleep 0.5
    done
}

json_field() {  # json_field EXPRESSION: evaluate a Python expression on the JSON document read from stdin (`d`)
    python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

run_batch() {  # run_batch PORT: submit three items, wait until the batch completes, every item succeeded
    local port=$1 id status deadline=$((SECONDS + 120))
    id=$(curl -fsS -X POST "http://127.0.0.1:$port/batches?fallback=true" -H 'Content-Type: application/json' \
        --data-binary @- <<'EOF' | json_field 'd["id"]'
{"items": [
  {"custom_id": "smoke-1", "body": {"messages": [{"role": "user", "content": "Rate PR #1 as JSON."}], "max_completion_tokens": 512}},
  {"custom_id": "smoke-2", "body": {"messages": [{"role": "user", "content": "Rate PR #2 as JSON."}], "max_completion_tokens": 512}},
  {"custom_id": "smoke-3", "body": {"messages": [{"role": "user", "content": "Rate PR #3 as JSON."}], "max_completion_tokens": 512}}],
 "params": {"temperature": 0, "response_format": {"type": "json_schema", "json_schema": {"name": "rating",
   "schema": {"type": "object", "required": ["summary"], "properties": {"summary": {"type": "string"}}}}}}}
EOF
    )
    while :; do
        status=$(curl -fsS "http://127.0.0.1:$port/batches/$id" | json_field 'd["status"] + " " + json.dumps(d["counts"])')
        case $status in
            completed*) break ;;
            failed* | cancelled*) fail "batch $id: $status" ;;
        esac
        ((SECONDS < deadline)) || fail "batch $id not finished within 120 s: $status"
        sleep 1
    done
    [[ $status == *'"succeeded": 3'* ]] || fail "batch $id: $status"
    echo "$id"
}

check_user() {  # check_user CONTAINER: the process and /app/data (when mounted) belong to 10001:10001
    local who
    who=$(pm top "$1" huser hgroup | awk 'NR > 1 {print $1 ":" $2}' | sort -u)
    [[ $who == 10001:10001 ]] || fail "$1 runs as $who"
}

check_data_owner() {  # the volume and what the service wrote into it
    local owners
    owners=$(pm exec "$1" sh -c 'stat -c %u:%g /app/data /app/data/*' | sort -u)
    [[ $owners == 10001:10001 ]] || fail "/app/data and its files belong to $owners"
}

check_health() {
    pm healthcheck run "$1" >/dev/null || fail "$1: the HEALTHCHECK failed"
    [[ $(pm inspect --format '{{.State.Health.Status}}' "$1") == healthy ]] || fail "$1 is not healthy"
}

stop_within_grace() {  # stop_within_grace CONTAINER MARK: SIGTERM, exit 0 before the stop timeout, MARK logged
    local container=$1 mark=$2 started=$EPOCHREALTIME code took
    pm stop "$container" >/dev/null
    took=$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    code=$(pm inspect --format '{{.State.ExitCode}}' "$container")
    ((code == 0)) || fail "$container exited $code on stop (after $took s)"
    awk -v t="$took" -v limit="$STOP_TIMEOUT" 'BEGIN { exit !(t < limit) }' || fail "$container took $took s to stop"
    pm logs "$container" 2>&1 | grep -q "$mark" || fail "$container did not log: $mark"
    echo "$took"
}

check_json_logs() {  # every line the container printed (migrate's too) is one JSON object
    pm logs "$1" 2>&1 | python3 -c '
import json, sys
for number, line in enumerate(sys.stdin, 1):
    if line.strip():
        try:
            assert isinstance(json.loads(line), dict)
        except (ValueError, AssertionError):
            sys.exit(f"line {number} is not a JSON object: {line.rstrip()}")
' || fail "$1 logged a line that is not JSON"
}

# -- 3. one container on SQLite --------------------------------------------------------------------------------
smoke_sqlite() {
    local port name="llm-batch-smoke-$RUN_ID" volume="llm-batch-smoke-$RUN_ID-data" id took
    port=$(free_port)
    VOLUMES+=("$volume")
    pm volume create "$volume" >/dev/null
    # README: docker run -d --name llm-batch -p 8000:8000 -v llm-batch-data:/app/data --stop-timeout 35 llm-batch
    start "$name" -e PORT="$port" "${FAST_EMULATOR[@]}" -v "$volume:/app/data" "$IMAGE"
    wait_for "$name" "http://127.0.0.1:$port/healthz"
    [[ $(curl -fsS "http://127.0.0.1:$port/healthz" | json_field 'd["provider"]') == emulator ]] ||
        fail "/healthz does not name the emulator"
    check_user "$name"
    id=$(run_batch "$port")
    check_data_owner "$name"
    check_health "$name"
    took=$(stop_within_grace "$name" "Application shutdown complete")
    check_json_logs "$name"
    say "sqlite: batch $id completed (3/3); 10001:10001; healthy; stopped in ${took} s, exit 0; JSON logs"
}

# -- 4. an API-only replica and a worker on PostgreSQL ---------------------------------------------------------
postgres_answers() {  # before the build, so that CI fails early without one
    if command -v psql >/dev/null && psql_admin -c 'SELECT 1' >/dev/null 2>&1; then return 0; fi
    [[ ${CI:-} != true ]] || fail "no PostgreSQL answers at $POSTGRES_URL (or no psql)"
    say "postgres: will be skipped, no PostgreSQL answers at $POSTGRES_URL (or no psql); with CI=true this fails"
    return 1
}

smoke_postgres() {
    local port api="llm-batch-smoke-$RUN_ID-api" worker="llm-batch-smoke-$RUN_ID-worker" id workers took_api took_worker
    DATABASE="llm_batch_smoke_${RUN_ID//-/_}"
    psql_admin -c "CREATE DATABASE $DATABASE"
    port=$(free_port)
    # The same settings for every replica; WORKERS_ENABLED=false only on the API's.
    local settings=(-e DATABASE_URL="$POSTGRES_URL/$DATABASE" "${FAST_EMULATOR[@]}")
    start "$api" "${settings[@]}" -e PORT="$port" -e WORKERS_ENABLED=false "$IMAGE"
    start "$worker" "${settings[@]}" --no-healthcheck "$IMAGE" worker
    wait_for "$api" "http://127.0.0.1:$port/healthz"
    local deadline=$((SECONDS + 60))
    until workers=$(curl -fsS "http://127.0.0.1:$port/readyz" | json_field 'd["workers"]') && ((workers == 1)); do
        [[ $(pm inspect --format '{{.State.Running}}' "$worker") == true ]] || fail "$worker exited"
        ((SECONDS < deadline)) || fail "/readyz counts ${workers:-no} live workers, not the worker container's 1"
        sleep 0.5
    done
    check_user "$api"
    check_user "$worker"
    id=$(run_batch "$port")
    pm logs "$worker" 2>&1 | grep -q "\"batch_id\": \"$id\"" || fail "$worker did not log batch $id"
    if pm logs "$api" 2>&1 | grep -q '"logger": "service.workers'; then fail "the API-only replica ran workers"; fi
    check_health "$api"
    took_worker=$(stop_within_grace "$worker" "stopped")
    took_api=$(stop_within_grace "$api" "Application shutdown complete")
    check_json_logs "$api"
    check_json_logs "$worker"
    say "postgres: batch $id completed (3/3) by the worker container; API-only replica; 10001:10001;" \
        "stopped in ${took_worker} s and ${took_api} s, exit 0; JSON logs"
}

case $WHAT in
    all | sqlite | postgres | prepare) ;;
    *) fail "usage: $0 [all|sqlite|postgres|prepare]" ;;
esac
ensure_tools
POSTGRES=false
if [[ $WHAT == all || $WHAT == postgres ]] && postgres_answers; then POSTGRES=true; fi
WORK=$(mktemp -d /var/tmp/llm-batch-smoke.XXXXXX)
configure_podman
ensure_standin
if [[ $WHAT == prepare ]]; then exit 0; fi  # the tools and the stand-in only (.ci/run: while lint runs)
build_image
check_image
if [[ $WHAT != postgres ]]; then smoke_sqlite; fi
if $POSTGRES; then smoke_postgres; fi
