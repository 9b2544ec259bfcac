#!/usr/bin/env bash
# Upload and ranged restore of a checkpoint through a real S3-compatible
# store (issue 14's numbers). Run it with `make bench-s3`, which builds
# statesrvd, statectl, statesrv-bench and versitygw and sets:
#   STATESRVD, STATECTL, STATESRV_BENCH, VERSITYGW  absolute paths
# Settings (environment):
#   ENTRIES      entries of 100 B in the checkpoint (default 10,000,000)
#   REPS         A/B pairs (default 5; the order alternates)
#   CONCURRENCY  s3_upload_concurrency (default: statesrvd's own default)
#   PART_SIZE    s3_part_size (default: statesrvd's own default)
#   THRESHOLD    s3_multipart_threshold (default: statesrvd's own default)
#   CHECKSUM     s3_checksum, md5 or crc32c (default: statesrvd's own default)
#   KEEP         1: leave the temporary directory (logs, store) behind
# One versitygw (the tests' store, tests/s3/objstore.c) serves a temporary
# directory on 127.0.0.1. The same checkpoint's data file goes up through
# statesrvd's upload thread (A: the time of its log line "checkpoint N is
# remote ... (X ms)", from the first request to the MANIFEST) and through
# curl --aws-sigv4 in one PUT (B: curl's time_total), interleaved, and the
# medians' ratio is printed (throughput of A over B; >= 1.0 means statesrvd
# is at least as fast), and the median of the pairs' own ratios. Then a second sidecar restores key groups 0..K/2-1
# of that checkpoint from the store and the share of its bytes it read is
# printed (the server's "restore: downloaded" log line). Everything it
# starts is stopped by PID at the end, and its directories are removed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
STATESRVD=${STATESRVD:-$root/build/statesrvd}
STATECTL=${STATECTL:-$root/build/statectl}
STATESRV_BENCH=${STATESRV_BENCH:-$root/build/statesrv-bench}
VERSITYGW=${VERSITYGW:-$root/build/tools/versitygw}
ENTRIES=${ENTRIES:-10000000}
REPS=${REPS:-5}
VALUE=100
KEY_GROUPS=128
ACCESS=statesrv-bench
SECRET=statesrv-bench-secret-0123456789
BUCKET=ckpts
for b in "$STATESRVD" "$STATECTL" "$STATESRV_BENCH" "$VERSITYGW"; do
    [ -x "$b" ] || { echo "bench-s3: $b is missing (run make bench-s3)" >&2; exit 2; }
done
command -v curl >/dev/null || { echo "bench-s3: needs curl" >&2; exit 2; }

pids=()
work=$(mktemp -d /tmp/statesrv-bench-s3.XXXXXX)
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s\n' "bench-s3: $*" >&2; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
free_port() {
    local p i
    for i in $(seq 1 50); do
        p=$((20000 + RANDOM % 12000)) # below the ephemeral ports
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
            echo $p
            return 0
        fi
    done
    echo "bench-s3: no free port found" >&2
    return 1
}
forget_pid() {
    local keep=() q
    for q in "${pids[@]}"; do [ "$q" = "$1" ] || keep+=("$q"); done
    pids=("${keep[@]}")
}
stop_pid() {
    local i
    kill "$1" 2>/dev/null || true
    for i in $(seq 1 600); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    wait "$1" 2>/dev/null || true
    forget_pid "$1"
}

# --- the store ----------------------------------------------------------------
store=$work/store
mkdir -p "$store/$BUCKET"
gw_port=$(free_port)
endpoint=http://127.0.0.1:$gw_port
"$VERSITYGW" --access "$ACCESS" --secret "$SECRET" --port "127.0.0.1:$gw_port" --quiet \
    posix "$store" >"$work/versitygw.log" 2>&1 &
pids+=($!)
for i in $(seq 1 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$gw_port") 2>/dev/null && break
    sleep 0.1
done
creds=$work/creds
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$ACCESS" "$SECRET" >"$creds"
chmod 600 "$creds"

# --- statesrvd ------------------------------------------------------------------
S_PID=
S_ADDR=
start_statesrvd() { # NAME
    local d=$work/$1 port i
    mkdir -p "$d"
    {
        printf 'checkpoint_remote = s3://%s/bench\n' "$BUCKET"
        printf 'checkpoint_remote_node = %s\n' "$1"
        printf 's3_endpoint = %s\ns3_credentials_file = %s\n' "$endpoint" "$creds"
        printf 'checkpoint_retain = 100\n'
        [ -z "${CONCURRENCY:-}" ] || printf 's3_upload_concurrency = %s\n' "$CONCURRENCY"
        [ -z "${PART_SIZE:-}" ] || printf 's3_part_size = %s\n' "$PART_SIZE"
        [ -z "${THRESHOLD:-}" ] || printf 's3_multipart_threshold = %s\n' "$THRESHOLD"
        [ -z "${CHECKSUM:-}" ] || printf 's3_checksum = %s\n' "$CHECKSUM"
    } >"$d/statesrvd.conf"
    port=$(free_port)
    S_ADDR=127.0.0.1:$port
    "$STATESRVD" --config "$d/statesrvd.conf" --listen "$S_ADDR" --data-dir "$d/data" \
        --checkpoint-dir "$d/checkpoints" --key-groups "$KEY_GROUPS" --log-level info \
        2>>"$d/log" &
    S_PID=$!
    pids+=("$S_PID")
    for i in $(seq 1 300); do
        "$STATECTL" -a "$S_ADDR" ping >/dev/null 2>&1 && return 0
        kill -0 "$S_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench-s3: statesrvd did not start:" >&2
    cat "$d/log" >&2
    exit 1
}
stop_statesrvd() { [ -z "$S_PID" ] || stop_pid "$S_PID"; S_PID=; }

# The upload time (ms) of checkpoint ID from NAME's log into UP_MS, waiting
# for it (at most 20 minutes); the Nth such line (a restart logs it again).
upload_ms() { # NAME ID N
    local i line
    for i in $(seq 1 12000); do
        line=$(grep -E "checkpoint $2 is remote: .* \(([0-9]+) ms\)" "$work/$1/log" | sed -n "$3p" || true)
        if [ -n "$line" ]; then
            UP_MS=$(printf '%s\n' "$line" | sed -E 's/.*\(([0-9]+) ms\).*/\1/')
            return 0
        fi
        if grep -q "checkpoint $2: upload failed" "$work/$1/log"; then
            echo "bench-s3: the upload failed:" >&2
            grep "upload failed" "$work/$1/log" | tail -n 3 >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "bench-s3: checkpoint $2 was not uploaded in 20 minutes" >&2
    exit 1
}

log "$(uptime)"
start_statesrvd a
log "preloading $ENTRIES entries of $VALUE B"
"$STATESRV_BENCH" -a "$S_ADDR" --json -t put --sequential -n "$ENTRIES" -d "$VALUE" -c 8 -P 256 \
    >"$work/preload.json"
snap=$("$STATECTL" -a "$S_ADDR" --json snapshot --full --wait-remote)
id=$(printf '%s' "$snap" | grep -o '"checkpoint_id":[0-9]*' | head -n 1 | cut -d: -f2)
url=$(printf '%s' "$snap" | grep -o '"remote_url":"[^"]*"' | head -n 1 | cut -d'"' -f4)
data=$work/a/checkpoints/chk-$id/data
size=$(stat -c %s "$data")
log "checkpoint $id: $size bytes in its data file, remote at $url"
upload_ms a "$id" 1
log "first upload (with the snapshot): $UP_MS ms"

# A: statesrvd uploads chk-ID again (objects and marker removed, restarted).
nth=1
a_run() {
    stop_statesrvd
    rm -rf "${store:?}/$BUCKET/bench/a" "$work/a/checkpoints/chk-$id/REMOTE"
    start_statesrvd a
    nth=$((nth + 1))
    upload_ms a "$id" "$nth"
    a_ms+=("$UP_MS")
}
# B: curl, one PUT of the same file (SigV4; the payload unsigned, as curl
# 7.88 sends no x-amz-content-sha256 of its own).
b_run() {
    local t
    t=$(curl -sS -f --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ACCESS:$SECRET" \
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -H "Expect:" -T "$data" \
        -o /dev/null -w '%{time_total}' "$endpoint/$BUCKET/curl/data")
    rm -rf "${store:?}/$BUCKET/curl"
    b_ms+=("$(awk -v t="$t" 'BEGIN { printf "%.0f", t * 1000 }')")
}
a_ms=()
b_ms=()
for i in $(seq 1 "$REPS"); do
    if [ $((i % 2)) = 1 ]; then
        a_run
        b_run
    else
        b_run
        a_run
    fi
    log "pair $i: statesrvd ${a_ms[-1]} ms, curl ${b_ms[-1]} ms"
done
ma=$(median "${a_ms[@]}")
mb=$(median "${b_ms[@]}")
settings=$(grep -E '^s3_(upload_concurrency|part_size|multipart_threshold|checksum) ' "$work/a/statesrvd.conf" |
    awk '{ printf "%s%s = %s", (NR > 1 ? ", " : ""), $1, $3 }' || true)

# The ranged restore: half the key groups on a fresh sidecar, from the store.
stop_statesrvd
half=$((KEY_GROUPS / 2 - 1))
start_statesrvd b
"$STATECTL" -a "$S_ADDR" restore "$url" --key-groups "0-$half" >/dev/null
line=$(grep -E "restore: downloaded .* bytes" "$work/b/log" | tail -n 1)
fetched=$(printf '%s\n' "$line" | sed -E 's/.*: ([0-9]+) of ([0-9]+) bytes.*/\1/')
total=$(printf '%s\n' "$line" | sed -E 's/.*: ([0-9]+) of ([0-9]+) bytes.*/\2/')
r_ms=$(printf '%s\n' "$line" | sed -E 's/.* in ([0-9]+) ms.*/\1/')
stop_statesrvd

mib() { awk -v b="$1" -v ms="$2" 'BEGIN { printf "%.0f", b / 1048576 / (ms / 1000) }'; }
echo
echo "S3 checkpoint upload, $ENTRIES x $VALUE B: data file $size bytes, versitygw on 127.0.0.1"
echo "statesrvd: ${settings:-the default s3_* settings}; $REPS interleaved pairs"
echo "| | median ms | MiB/s | runs (ms) |"
echo "| --- | ---: | ---: | --- |"
echo "| statesrvd upload (data + MANIFEST) | $ma | $(mib "$size" "$ma") | ${a_ms[*]} |"
echo "| curl --aws-sigv4 PUT of the data file | $mb | $(mib "$size" "$mb") | ${b_ms[*]} |"
pair_ratios=()
for i in $(seq 0 $((REPS - 1))); do
    pair_ratios+=("$(awk -v a="${a_ms[$i]}" -v b="${b_ms[$i]}" 'BEGIN { printf "%.2f", b / a }')")
done
awk -v a="$ma" -v b="$mb" -v p="$(median "${pair_ratios[@]}")" -v all="${pair_ratios[*]}" 'BEGIN {
    printf "upload throughput, statesrvd / curl: %.2f of the medians, %.2f the median pair (pairs: %s; target >= 1.0)\n", b / a, p, all }'
awk -v f="$fetched" -v t="$total" -v ms="$r_ms" -v h="$half" 'BEGIN {
    printf "ranged restore of key groups 0-%d from the store: %d of %d bytes, %.1f %% (target <= 55 %%), %d ms\n",
        h, f, t, 100 * f / t, ms }'
echo "load: $(uptime)"
