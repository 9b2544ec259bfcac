#!/usr/bin/env bash
# statesrvd and Redis side by side on this machine (issue 4). Run it with
# `make bench` (or `make bench QUICK=1` for a short development run), which
# builds everything, installs redis-server and redis-tools, and sets:
#   STATESRVD, STATECTL, STATESRV_BENCH  absolute paths of the binaries
#   QUICK                                1 for the short run
# Both servers run on 127.0.0.1 (random free ports), each in its own mktemp
# directory, and are stopped by PID at the end. Every row runs REPS times and
# the median is reported. The table goes to stdout and to
# build/bench/bench-<date>.md (and build/bench/latest.md).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
STATESRVD=${STATESRVD:-$root/build/statesrvd}
STATECTL=${STATECTL:-$root/build/statectl}
STATESRV_BENCH=${STATESRV_BENCH:-$root/build/statesrv-bench}
LIMIT_SERVER=${LIMIT_SERVER:-$root/build/bench/limit_server}
QUICK=${QUICK:-}
# PARTS="1 2 3" (default): 1 = throughput and latency rows, 2 = the snapshot,
# restore and their side effects (10 M entries), 3 = incremental checkpoints
# (10 M entries, 1 % overwritten between checkpoints; statesrvd only), 4 =
# state TTL (churn, PUT with a TTL, GET p99 during the sweep); one alone for
# a re-run. INC_BIG overrides part 3's entry count (a smoke run).
PARTS=${PARTS:-1 2 3 4}
want_part() { [[ " $PARTS " == *" $1 "* ]]; }
for b in "$STATESRVD" "$STATECTL" "$STATESRV_BENCH" "$LIMIT_SERVER"; do
    [ -x "$b" ] || { echo "bench: $b is missing (run make bench)" >&2; exit 2; }
done
want_part 1 || want_part 2 || NO_REDIS=1
for b in redis-server redis-benchmark redis-cli; do
    [ -z "${NO_REDIS:-}" ] || break
    command -v $b >/dev/null || { echo "bench: $b is missing (apt-get install redis-server redis-tools)" >&2; exit 2; }
done

# --- sizes ------------------------------------------------------------------
if [ "$QUICK" = 1 ]; then
    REPS=1
    KEYS=100000          # key space of the throughput rows
    N_P1=100000          # requests per run, pipeline 1
    N_P16=500000         # pipeline 16, 64 B
    N_1K=200000          # pipeline 16, 1 KiB
    N_SYNC=20000         # sync = always
    N_LAT=20000          # 1 connection
    BIG=1000000          # entries of the snapshot / restore rows
    PUT_SECS=3           # PUT before / after a snapshot
else
    REPS=3
    KEYS=1000000
    N_P1=1000000
    N_P16=5000000
    N_1K=2000000
    N_SYNC=100000
    N_LAT=100000
    BIG=10000000
    PUT_SECS=5
fi
BIG_VALUE=100

outdir=$root/build/bench
mkdir -p "$outdir"
stamp=$(date -u +%Y%m%d-%H%M%S)
out=$outdir/bench-$stamp.md
t_start=$(date +%s)

# --- helpers ----------------------------------------------------------------
pids=()
dirs=()
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    for d in "${dirs[@]}"; do
        rm -rf "$d"
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s\n' "bench: $*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# A loopback port nothing listens on (bounded tries).
free_port() {
    local p i
    for i in $(seq 1 50); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
            echo $p
            return 0
        fi
    done
    echo "bench: no free port found" >&2
    return 1
}

median() { # numbers as arguments
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

json_field() { # FIELD JSON: the first "FIELD":value (a manifest's own fields come before its states')
    printf '%s' "$2" | grep -o "\"$1\":[-0-9.e+a-z]*" | head -n 1 | cut -d: -f2
}

ratio() { # A B -> A/B with 2 decimals
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
}

fmt_int() { awk -v v="$1" 'BEGIN { printf "%.0f", v }'; }

stop_pid() {
    local p=$1 i
    kill "$p" 2>/dev/null || true
    for i in $(seq 1 300); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    wait "$p" 2>/dev/null || true
    local keep=()
    for q in "${pids[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
    pids=("${keep[@]}")
}

# --- statesrvd ----------------------------------------------------------------
S_PID=
S_DIR=
S_PORT=
S_ADDR=
new_statesrvd_dir() {
    S_DIR=$(mktemp -d /tmp/statesrvd-bench.XXXXXX)
    dirs+=("$S_DIR")
}
start_statesrvd() { # SYNC
    S_PORT=$(free_port)
    S_ADDR=127.0.0.1:$S_PORT
    "$STATESRVD" ${S_CONF:+--config "$S_CONF"} --listen "$S_ADDR" --data-dir "$S_DIR/data" --checkpoint-dir "$S_DIR/checkpoints" \
        --sync "$1" --log-level warn 2>>"$S_DIR/log" &
    S_PID=$!
    pids+=("$S_PID")
    local i
    for i in $(seq 1 100); do
        "$STATECTL" -a "$S_ADDR" ping >/dev/null 2>&1 && return 0
        kill -0 "$S_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench: statesrvd did not start:" >&2
    cat "$S_DIR/log" >&2
    exit 1
}
stop_statesrvd() { [ -z "$S_PID" ] || stop_pid "$S_PID"; S_PID=; }

# statesrv-bench ARGS...: prints its JSON line; fails the run on any error.
sbench() {
    local j
    if ! j=$("$STATESRV_BENCH" -a "$S_ADDR" --json "$@"); then
        echo "bench: statesrv-bench $* reported errors:" >&2
        echo "$j" >&2
        exit 1
    fi
    echo "$j"
}

# --- Redis ------------------------------------------------------------------------
R_PID=
R_DIR=
R_PORT=
new_redis_dir() {
    R_DIR=$(mktemp -d /tmp/redis-bench.XXXXXX)
    dirs+=("$R_DIR")
}
rcli() { redis-cli -h 127.0.0.1 -p "$R_PORT" "$@"; }
# rinfo_has PATTERN...: INFO persistence matches every pattern. (No `| grep -q`:
# with pipefail, grep quitting early can fail the pipeline.)
rinfo_has() {
    local info p
    info=$(rcli info persistence 2>/dev/null | tr -d '\r') || return 1
    for p in "$@"; do
        grep -q "^$p\$" <<<"$info" || return 1
    done
}
start_redis() { # extra redis-server args
    R_PORT=$(free_port)
    redis-server --port "$R_PORT" --bind 127.0.0.1 --dir "$R_DIR" --dbfilename dump.rdb \
        --save '' --appendonly no --daemonize no --logfile "$R_DIR/log" "$@" &
    R_PID=$!
    pids+=("$R_PID")
}
# Until it answers and has finished loading its data.
wait_redis() {
    local i
    for i in $(seq 1 6000); do
        if rinfo_has loading:0; then
            return 0
        fi
        kill -0 "$R_PID" 2>/dev/null || break
        sleep 0.02
    done
    echo "bench: redis-server did not come up:" >&2
    tail -20 "$R_DIR/log" >&2
    exit 1
}
stop_redis() { [ -z "$R_PID" ] || stop_pid "$R_PID"; R_PID=; }

# redis-benchmark ARGS...: prints the CSV line of the one test.
rbench() {
    local csv
    csv=$(redis-benchmark -h 127.0.0.1 -p "$R_PORT" --csv "$@" 2>"$R_DIR/rbench.err" | tail -n 1)
    if grep -qi error "$R_DIR/rbench.err"; then
        echo "bench: redis-benchmark $*: errors:" >&2
        head -5 "$R_DIR/rbench.err" >&2
        exit 1
    fi
    echo "$csv"
}
csv_field() { # N CSV (1-based)
    printf '%s' "$2" | tr -d '"' | cut -d, -f"$1"
}

# Loads keys 0..N-1 with VALUE-byte values: the same bytes into both servers.
preload() { # N VALUE
    log "preloading $1 keys of $2 B into statesrvd"
    sbench -t put --sequential -n "$1" -d "$2" -c 8 -P 256 >/dev/null
    log "preloading $1 keys of $2 B into Redis (redis-cli --pipe)"
    local res
    res=$("$STATESRV_BENCH" --resp-out --sequential -n "$1" -d "$2" |
        redis-cli -h 127.0.0.1 -p "$R_PORT" --pipe 2>&1 | tail -n 1)
    case $res in
    *"errors: 0, replies: $1"*) ;;
    *) echo "bench: Redis preload failed: $res" >&2; exit 1 ;;
    esac
    local s r
    s=$("$STATECTL" -a "$S_ADDR" states | awk '$1 == "bench0" { print $2 }')
    r=$(rcli dbsize)
    [ "$s" = "$1" ] && [ "$r" = "$1" ] || {
        echo "bench: after the preload statesrvd holds ${s:-0} and Redis $r keys, not $1" >&2
        exit 1
    }
}

# --- the table ------------------------------------------------------------------
rows=()
add_row() { # ROW STATESRVD REDIS RATIO [LIMIT LIMIT_RATIO]
    rows+=("| $1 | $2 | $3 | $4 | ${5:-—} | ${6:-—} |")
    log "$1: statesrvd $2, Redis $3, ratio $4${5:+, limit $5, of the limit $6}"
}
extra=()
add_extra() { # ROW VALUE BASELINE RATIO TARGET
    extra+=("| $1 | $2 | $3 | $4 | $5 |")
    log "$1: $2 vs $3 -> $4 (target $5)"
}

# The limit server (tests/bench/limit_server.c): the protocol, the codec and
# the loop with no store, so each throughput row shows how close statesrvd
# is to what this machine and the load generator allow.
L_PID=
L_ADDR=
start_limit() {
    local port i
    port=$(free_port)
    L_ADDR=127.0.0.1:$port
    "$LIMIT_SERVER" --listen "$L_ADDR" &
    L_PID=$!
    pids+=("$L_PID")
    for i in $(seq 1 100); do
        "$STATESRV_BENCH" -a "$L_ADDR" -t get -c 1 -n 1 >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "bench: the limit server did not start" >&2
    exit 1
}
stop_limit() { [ -z "$L_PID" ] || stop_pid "$L_PID"; L_PID=; }
lbench() {
    local j
    j=$("$STATESRV_BENCH" -a "$L_ADDR" --json "$@") || { echo "bench: limit run failed: $j" >&2; exit 1; }
    echo "$j"
}

# One throughput row: REPS runs on each server (and the limit server, when
# it runs), interleaved, median ops/s.
# tput_row LABEL TEST(get|put) CONNS PIPELINE VALUE N
tput_row() {
    local label=$1 t=$2 c=$3 p=$4 d=$5 n=$6 i j r s=() q=() l=()
    local rt=$t
    [ "$t" = put ] && rt=set
    for i in $(seq 1 "$REPS"); do
        j=$(sbench -t "$t" -c "$c" -P "$p" -d "$d" -r "$KEYS" -n "$n")
        s+=("$(json_field ops_per_sec "$j")")
        r=$(rbench -t "$rt" -c "$c" -P "$p" -d "$d" -r "$KEYS" -n "$n")
        q+=("$(csv_field 2 "$r")")
        if [ -n "$L_PID" ]; then
            j=$(lbench -t "$t" -c "$c" -P "$p" -d "$d" -r "$KEYS" -n "$n")
            l+=("$(json_field ops_per_sec "$j")")
        fi
    done
    local ms mr ml=
    ms=$(median "${s[@]}")
    mr=$(median "${q[@]}")
    [ -z "$L_PID" ] || ml=$(median "${l[@]}")
    add_row "$label" "$(fmt_int "$ms") ops/s" "$(fmt_int "$mr") ops/s" "$(ratio "$ms" "$mr")" \
        ${ml:+"$(fmt_int "$ml") ops/s"} ${ml:+"$(ratio "$ms" "$ml")"}
}

# ================================================================================
log "QUICK=${QUICK:-0}: $REPS repetition(s), key space $KEYS, $BIG entries for snapshot/restore"

if want_part 1; then
# --- part 1: throughput and latency on KEYS keys of 64 B ---------------------
new_statesrvd_dir
start_statesrvd none
new_redis_dir
start_redis
wait_redis
preload "$KEYS" 64
start_limit

tput_row "GET, 50 conns, P1, 64 B" get 50 1 64 "$N_P1"
tput_row "PUT, 50 conns, P1, 64 B, sync=none" put 50 1 64 "$N_P1"
tput_row "GET, 50 conns, P16, 64 B" get 50 16 64 "$N_P16"
tput_row "PUT, 50 conns, P16, 64 B" put 50 16 64 "$N_P16"
tput_row "PUT, 50 conns, P16, 1 KiB" put 50 16 1024 "$N_1K"

# sync=always: statesrvd restarted on the same data with --sync always; Redis
# switched at run time to appendonly yes + appendfsync always (the AOF is
# rewritten from the loaded data first; the row waits for that to finish).
stop_statesrvd
start_statesrvd always
rcli config set appendfsync always >/dev/null
rcli config set appendonly yes >/dev/null
for i in $(seq 1 600); do
    if rinfo_has aof_enabled:1 aof_rewrite_in_progress:0 aof_rewrite_scheduled:0; then
        break
    fi
    sleep 0.1
done
tput_row "PUT, 50 conns, P1, 64 B, sync=always" put 50 1 64 "$N_SYNC"
stop_limit
stop_statesrvd
start_statesrvd none
rcli config set appendonly no >/dev/null

# Single connection: latency.
s50=() s99=() r50=() r99=()
for i in $(seq 1 "$REPS"); do
    j=$(sbench -t get -c 1 -P 1 -r "$KEYS" -n "$N_LAT")
    s50+=("$(json_field p50 "$j")")
    s99+=("$(json_field p99 "$j")")
    r=$(rbench -t get -c 1 -P 1 -r "$KEYS" -n "$N_LAT" --precision 3)
    r50+=("$(csv_field 5 "$r")")
    r99+=("$(csv_field 7 "$r")")
done
a=$(median "${s50[@]}") b=$(median "${s99[@]}") c=$(median "${r50[@]}") d=$(median "${r99[@]}")
add_row "GET, 1 conn, P1: latency p50 / p99 (ms, lower is better)" \
    "$(printf '%.3f / %.3f' "$a" "$b")" "$(printf '%.3f / %.3f' "$c" "$d")" \
    "$(ratio "$a" "$c") / $(ratio "$b" "$d")"
stop_statesrvd
stop_redis
fi

if want_part 2; then
# --- part 2: BIG entries of 100 B: snapshot, restore, and their side effects -------
new_statesrvd_dir
start_statesrvd none
new_redis_dir
start_redis
wait_redis
preload "$BIG" "$BIG_VALUE"

snapshot() { # prints "ID SECONDS"
    local t0 t1 o
    t0=$(now)
    o=$("$STATECTL" -a "$S_ADDR" snapshot --full) # the row is about a whole copy
    t1=$(now)
    echo "$(printf '%s' "$o" | sed -n 's/^checkpoint \([0-9]*\):.*/\1/p') $(elapsed "$t0" "$t1")"
}

put_probe() {
    local j
    j=$(sbench -t put -c 50 -P 16 -d "$BIG_VALUE" -r "$BIG" --duration "$PUT_SECS")
    json_field ops_per_sec "$j"
}

# PUT before a snapshot, the snapshot (timed), PUT right after it.
log "PUT throughput before and after a snapshot (${PUT_SECS} s each)"
put_before=$(put_probe)
read -r ckpt_id t <<<"$(snapshot)"
snap_times=("$t")
put_after=$(put_probe)

# GET p99, idle and while a snapshot runs, from 1 connection and from 50
# (the load of the first row). Each "during" probe gets its own snapshot,
# started just before it; the probe lasts 80% of the timed snapshot.
snap_secs=${snap_times[0]}
probe_secs=$(awk -v s="$snap_secs" 'BEGIN { p = s * 0.8; if (p < 0.5) p = 0.5; printf "%.2f", p }')
log "GET p99 idle and during a snapshot (${probe_secs} s each, 1 and 50 connections)"
get_p99() { # CONNS
    local j
    j=$(sbench -t get -c "$1" -P 1 -r "$BIG" --duration "$probe_secs")
    json_field p99 "$j"
}
get_p99_during() { # CONNS
    local j sp
    "$STATECTL" -a "$S_ADDR" snapshot --full >/dev/null &
    sp=$!
    sleep 0.05
    j=$(sbench -t get -c "$1" -P 1 -r "$BIG" --duration "$probe_secs")
    wait "$sp"
    json_field p99 "$j"
}
idle1=$(get_p99 1)
during1=$(get_p99_during 1)
idle50=$(get_p99 50)
during50=$(get_p99_during 50)

for i in $(seq 2 "$REPS"); do
    read -r ckpt_id t <<<"$(snapshot)"
    snap_times+=("$t")
done
# Retention (checkpoint_retain) has removed the first ones by now: the
# size and restore rows use the newest, of the same 10 M entries.

# Redis: BGSAVE of the same data, timed until rdb_bgsave_in_progress:0.
bgsave() {
    local t0 t1 i
    t0=$(now)
    rcli bgsave >/dev/null
    for i in $(seq 1 30000); do
        rinfo_has rdb_bgsave_in_progress:0 && break
        sleep 0.02
    done
    t1=$(now)
    rinfo_has rdb_bgsave_in_progress:0 rdb_last_bgsave_status:ok || {
        echo "bench: BGSAVE failed:" >&2
        tail -5 "$R_DIR/log" >&2
        exit 1
    }
    elapsed "$t0" "$t1"
}
bg_times=()
for i in $(seq 1 "$REPS"); do
    bg_times+=("$(bgsave)")
done
# For reference: Redis GET p99 (50 connections) idle and during a BGSAVE.
j=$(rbench -t get -c 50 -P 1 -r "$BIG" -n "$N_P1" --precision 3)
r_idle_p99=$(csv_field 7 "$j")
rcli bgsave >/dev/null
j=$(rbench -t get -c 50 -P 1 -r "$BIG" -n "$N_P1" --precision 3)
r_during_p99=$(csv_field 7 "$j")
for i in $(seq 1 30000); do
    rinfo_has rdb_bgsave_in_progress:0 && break
    sleep 0.02
done

ms=$(median "${snap_times[@]}")
mr=$(median "${bg_times[@]}")
ck_size=$(du -sh "$S_DIR/checkpoints/chk-$ckpt_id" | cut -f1)
rdb_size=$(du -sh "$R_DIR/dump.rdb" | cut -f1)
add_row "snapshot of $BIG entries x $BIG_VALUE B (s, lower is better)" \
    "$ms s (statectl snapshot, $ck_size)" "$mr s (BGSAVE, $rdb_size)" "$(ratio "$ms" "$mr")"

# Restore: statectl restore of the newest checkpoint; Redis start-up loading
# that RDB (until it answers INFO with loading:0).
rs_times=()
for i in $(seq 1 "$REPS"); do
    t0=$(now)
    "$STATECTL" -a "$S_ADDR" restore "$ckpt_id" >/dev/null
    t1=$(now)
    rs_times+=("$(elapsed "$t0" "$t1")")
done
rl_times=()
for i in $(seq 1 "$REPS"); do
    stop_redis
    t0=$(now)
    start_redis
    wait_redis
    t1=$(now)
    rl_times+=("$(elapsed "$t0" "$t1")")
    n=$(rcli dbsize)
    [ "$n" = "$BIG" ] || { echo "bench: Redis loaded $n keys, not $BIG" >&2; exit 1; }
done
ms=$(median "${rs_times[@]}")
mr=$(median "${rl_times[@]}")
add_row "restore of that checkpoint (s, lower is better)" "$ms s (statectl restore)" \
    "$mr s (redis-server start-up)" "$(ratio "$ms" "$mr")"

add_extra "GET p99, 1 conn, during a snapshot vs idle (ms)" "$during1" "$idle1" \
    "$(ratio "$during1" "$idle1")" "<= 2.00"
add_extra "GET p99, 50 conns P1, during a snapshot vs idle (ms)" "$during50" "$idle50" \
    "$(ratio "$during50" "$idle50")" "<= 2.00"
add_extra "PUT ops/s, 50 conns P16 100 B, right after a snapshot vs before" \
    "$(fmt_int "$put_after")" "$(fmt_int "$put_before")" "$(ratio "$put_after" "$put_before")" ">= 0.90"
add_extra "(Redis, for reference) GET p99, 50 conns P1, during BGSAVE vs idle (ms)" \
    "$r_during_p99" "$r_idle_p99" "$(ratio "$r_during_p99" "$r_idle_p99")" "—"
stop_statesrvd
stop_redis
fi

if want_part 3; then
# --- part 3: incremental checkpoints ------------------------------------------------
# INC_N entries (1 % of INC_BIG, random keys: some twice) overwritten between
# checkpoints; checkpoint_retain = 3 and the default chain bounds.
INC_BIG=${INC_BIG:-$BIG}
INC_N=$((INC_BIG / 100))
[ "$INC_N" -ge 1 ] || INC_N=1
new_statesrvd_dir
S_CONF=$S_DIR/statesrvd.conf
printf 'checkpoint_retain = 3\n' >"$S_CONF"
start_statesrvd none
log "part 3: preloading $INC_BIG keys of $BIG_VALUE B into statesrvd"
sbench -t put --sequential -n "$INC_BIG" -d "$BIG_VALUE" -c 8 -P 256 >/dev/null
ckpt() { # [--full]: prints "ID SECONDS ADDED_BYTES TOTAL_BYTES INCREMENTAL"
    local t0 t1 o
    t0=$(now)
    o=$("$STATECTL" -a "$S_ADDR" --json snapshot "$@")
    t1=$(now)
    echo "$(json_field checkpoint_id "$o") $(elapsed "$t0" "$t1") $(json_field added_bytes "$o")" \
        "$(json_field total_bytes "$o") $(json_field incremental "$o")"
}
inc_put_probe() {
    json_field ops_per_sec "$(sbench -t put -c 50 -P 16 -d "$BIG_VALUE" -r "$INC_BIG" --duration "$PUT_SECS")"
}
overwrite() { # SEED: INC_N random overwrites
    sbench -t put -c 8 -P 64 -d "$BIG_VALUE" -r "$INC_BIG" -n "$INC_N" --seed "$1" >/dev/null
}
# PUT throughput without change tracking (no checkpoint yet) and with it.
put_untracked=$(inc_put_probe)
ckpt --full >/dev/null
put_tracked=$(inc_put_probe)
# The base, then 10 incremental checkpoints.
read -r full_id full_s full_bytes _ _ <<<"$(ckpt --full)"
inc_s=()
inc_bytes=()
last_id=
for i in $(seq 1 10); do
    overwrite "$i"
    read -r last_id t added total incr <<<"$(ckpt)"
    [ "$incr" = true ] || { echo "bench: checkpoint $last_id is not incremental" >&2; exit 1; }
    inc_s+=("$t")
    inc_bytes+=("$added")
done
chain_total=$total
disk=$(du -sb "$S_DIR/checkpoints" | awk '{ print $1 }')
# A full checkpoint of the same state, for the restore row.
read -r full2_id full2_s full2_bytes _ _ <<<"$(ckpt --full)"
restore_s() { # ID
    local t0 t1
    t0=$(now)
    "$STATECTL" -a "$S_ADDR" restore "$1" >/dev/null
    t1=$(now)
    elapsed "$t0" "$t1"
}
rc_times=()
rf_times=()
for i in $(seq 1 "$REPS"); do
    rc_times+=("$(restore_s "$last_id")")
    rf_times+=("$(restore_s "$full2_id")")
done
mi=$(median "${inc_s[@]}")
mb=$(median "${inc_bytes[@]}")
mc=$(median "${rc_times[@]}")
mf=$(median "${rf_times[@]}")
add_extra "incremental checkpoint, $INC_N of $INC_BIG x $BIG_VALUE B overwritten, vs full (s)" \
    "$mi" "$full_s" "$(ratio "$mi" "$full_s")" "<= 0.03"
add_extra "incremental checkpoint vs full (bytes)" "$mb" "$full_bytes" \
    "$(ratio "$mb" "$full_bytes")" "<= 0.03"
add_extra "restore of base + 10 increments ($chain_total B) vs one full ($full2_bytes B) (s)" \
    "$mc" "$mf" "$(ratio "$mc" "$mf")" "<= 1.20"
add_extra "checkpoint_dir with checkpoint_retain = 3 after 10 increments vs 3 full copies (bytes)" \
    "$disk" "$((3 * full_bytes))" "$(ratio "$disk" "$((3 * full_bytes))")" "—"
add_extra "PUT ops/s, 50 conns P16 100 B, with change tracking vs without" \
    "$(fmt_int "$put_tracked")" "$(fmt_int "$put_untracked")" \
    "$(ratio "$put_tracked" "$put_untracked")" ">= 0.95"
stop_statesrvd
S_CONF=
fi

if want_part 4; then
# --- part 4: state TTL ----------------------------------------------------------------
# Churn: distinct keys (never written twice) put at full speed, 50 conns P16,
# into a state with a TTL, never read. Every second: the entries stored, the
# unexpired ones (the puts of the last TTL seconds: each made a new entry),
# and the data file's allocated size. Then PUT throughput with and without
# a TTL on the state (interleaved), and GET p99 from 1 connection while the
# sweep deletes a mass of expired entries vs the same store without sweep.
if [ "$QUICK" = 1 ]; then
    TTL_S=10; CHURN_S=40; GROW_AT=25; EXP_N=600000
else
    TTL_S=10; CHURN_S=90; GROW_AT=60; EXP_N=2000000
fi
new_statesrvd_dir
start_statesrvd none
"$STATECTL" -a "$S_ADDR" ttl bench0 "${TTL_S}s" >/dev/null
log "part 4: churn, ${CHURN_S} s of distinct keys with a ${TTL_S} s TTL"
samples=$S_DIR/churn.samples
: >"$samples"
"$STATESRV_BENCH" -a "$S_ADDR" --json -t put --sequential -n 1000000000 --duration "$CHURN_S" \
    -d 64 -c 50 -P 16 >"$S_DIR/churn.json" &
w_pid=$!
pids+=("$w_pid")
t0=$(now)
while kill -0 "$w_pid" 2>/dev/null; do
    st=$("$STATECTL" -a "$S_ADDR" --json stats 2>/dev/null) || break
    sts=$("$STATECTL" -a "$S_ADDR" --json states 2>/dev/null) || break
    puts=$(printf '%s' "$st" | grep -o '"op":"put","count":[0-9]*' | head -n 1 | cut -d: -f3)
    ent=$(json_field entries "$sts")
    alloc=$(stat -L -c '%b %B' "$S_DIR/data/current/data.mdb" 2>/dev/null | awk '{ print $1 * $2 }')
    echo "$(elapsed "$t0" "$(now)") ${puts:-0} ${ent:-0} ${alloc:-0}" >>"$samples"
    sleep 1
done
wait "$w_pid" || { echo "bench: the churn writer failed" >&2; cat "$S_DIR/churn.json" >&2; exit 1; }
churn_rate=$(json_field ops_per_sec "$(cat "$S_DIR/churn.json")")
# Worst stored / unexpired once a whole TTL has passed (+1 s), and the file
# at GROW_AT vs at the end.
read -r worst worst_t grow_a grow_b <<<"$(awk -v ttl="$TTL_S" -v at="$GROW_AT" '
    { t[NR] = $1; p[NR] = $2; e[NR] = $3; a[NR] = $4 }
    END {
        w = 0; wt = 0; ga = 0
        for (i = 1; i <= NR; i++) {
            if (t[i] < ttl + 1) continue
            # puts at t - ttl, interpolated between samples
            j = i; while (j > 1 && t[j] > t[i] - ttl) j--
            pw = p[j]
            if (j < i && t[j + 1] > t[j]) pw = p[j] + (p[j + 1] - p[j]) * (t[i] - ttl - t[j]) / (t[j + 1] - t[j])
            u = p[i] - pw
            if (u > 0 && e[i] / u > w) { w = e[i] / u; wt = t[i] }
            if (t[i] <= at) ga = a[i]
        }
        printf "%.2f %.0f %.0f %.0f\n", w, wt, ga, a[NR]
    }' "$samples")"
cp "$samples" "$outdir/churn-$stamp.samples"
st=$("$STATECTL" -a "$S_ADDR" --json stats)
sweep_s=$(json_field ttl_sweep_seconds "$st")
swept=$(json_field ttl_expired_sweep "$st")
stop_statesrvd
add_extra "TTL churn: worst stored / unexpired entries (${CHURN_S} s at $(fmt_int "$churn_rate") puts/s, TTL ${TTL_S} s; at ${worst_t} s)" \
    "$worst" "1" "$worst" "<= 1.30"
add_extra "TTL churn: data file at the end vs at ${GROW_AT} s (bytes; sweep $sweep_s s, $swept deleted)" \
    "$grow_b" "$grow_a" "$(ratio "$grow_b" "$grow_a")" "1.00 (stops growing)"

# PUT, 50 conns P16 64 B, KEYS random keys: a state with a TTL of an hour
# (every entry gets an expiry, the sweep walks them) vs none; interleaved.
ttl_put() { # TTL_SPEC or "" -> ops/s
    new_statesrvd_dir
    start_statesrvd none
    [ -z "$1" ] || "$STATECTL" -a "$S_ADDR" ttl bench0 "$1" >/dev/null
    sbench -t put -c 50 -P 16 -d 64 -r "$KEYS" --sequential -n "$KEYS" >/dev/null
    json_field ops_per_sec "$(sbench -t put -c 50 -P 16 -d 64 -r "$KEYS" -n "$N_P16")"
    stop_statesrvd
}
log "part 4: PUT with and without a TTL on the state ($REPS x 2, interleaved)"
p_ttl=()
p_none=()
for i in $(seq 1 "$REPS"); do
    p_none+=("$(ttl_put "")")
    p_ttl+=("$(ttl_put 1h)")
done
m_none=$(median "${p_none[@]}")
m_ttl=$(median "${p_ttl[@]}")
add_extra "PUT ops/s, 50 conns P16 64 B, state with a TTL vs without" \
    "$(fmt_int "$m_ttl")" "$(fmt_int "$m_none")" "$(ratio "$m_ttl" "$m_none")" ">= 0.95"

# GET p99 (1 conn, P1) on a state without TTL while the sweep deletes EXP_N
# expired entries of another, vs the same store with the sweep off. The
# store is built once, then copied for each run.
log "part 4: GET p99 during a sweep of $EXP_N expired entries"
new_statesrvd_dir
base=$S_DIR
start_statesrvd none
"$STATECTL" -a "$S_ADDR" ttl bench1 2s >/dev/null
sbench -t put --states 2 --sequential -n "$((2 * EXP_N))" -d 64 -c 8 -P 256 >/dev/null
stop_statesrvd
sleep 2.5 # every entry of bench1 has expired
get_p99_sweep() { # BUDGET -> "p99_ms swept"
    new_statesrvd_dir
    cp -a "$base/data" "$S_DIR/data"
    S_CONF=$S_DIR/statesrvd.conf
    printf 'ttl_sweep_budget = %s\n' "$1" >"$S_CONF"
    start_statesrvd none
    local j st
    # bench0 holds the even keys (none expire): half the gets find nothing.
    j=$(sbench -t get -c 1 -P 1 -r "$((2 * EXP_N))" --allow-missing --duration "$PUT_SECS")
    st=$("$STATECTL" -a "$S_ADDR" --json stats)
    stop_statesrvd
    S_CONF=
    rm -rf "$S_DIR"
    echo "$(json_field p99 "$j") $(json_field ttl_expired_sweep "$st")"
}
g_off=()
g_on=()
swept_on=0
for i in $(seq 1 "$REPS"); do
    read -r p _ <<<"$(get_p99_sweep 0)"
    g_off+=("$p")
    read -r p n <<<"$(get_p99_sweep 5)"
    g_on+=("$p")
    swept_on=$n
done
m_off=$(median "${g_off[@]}")
m_on=$(median "${g_on[@]}")
add_extra "GET p99 (ms), 1 conn, while the sweep deletes expired entries ($swept_on of $EXP_N in ${PUT_SECS} s) vs no sweep" \
    "$m_on" "$m_off" "$(ratio "$m_on" "$m_off")" "<= 1.20"
fi

# --- report ------------------------------------------------------------------------
t_end=$(date +%s)
{
    echo "## statesrvd vs Redis, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Machine: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)),"
    echo "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr);"
    echo "statesrvd $("$STATESRVD" --version 2>&1 | head -1 | awk '{ print $2 }'), $(command -v redis-server >/dev/null && redis-server --version | awk '{ print $3 }' | tr -d 'v=')."
    echo "Load generators (statesrv-bench, redis-benchmark) share the cores with the servers."
    if [ "$QUICK" = 1 ]; then
        echo
        echo "**QUICK run**: scaled down — 1 repetition (not a median of 3), key space $KEYS"
        echo "(not 1,000,000), $N_P1 / $N_P16 / $N_1K / $N_SYNC / $N_LAT requests per row,"
        echo "$BIG entries (not 10,000,000) for the snapshot and restore rows, ${PUT_SECS} s PUT probes."
    else
        echo
        echo "Median of $REPS runs per row; key space $KEYS keys preloaded into both;"
        echo "requests per run: $N_P1 (P1), $N_P16 (P16, 64 B), $N_1K (P16, 1 KiB),"
        echo "$N_SYNC (sync=always), $N_LAT (1 connection)."
    fi
    echo
    echo "| row | statesrvd | Redis | statesrvd/Redis | limit | statesrvd/limit |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    printf '%s\n' "${rows[@]}"
    echo
    echo "| statesrvd on its own | value | baseline | ratio | target |"
    echo "| --- | ---: | ---: | ---: | --- |"
    printf '%s\n' "${extra[@]}"
    echo
    echo "Run took $((t_end - t_start)) s."
} >"$out"
cp "$out" "$outdir/latest.md"
echo
cat "$out"
echo
echo "(written to $out)"
