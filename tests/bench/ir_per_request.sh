#!/bin/sh
# Instructions statesrvd executes per request, under valgrind's callgrind:
# a count that does not move with the machine's load, for A/B comparisons
# of the server's code paths (throughput on shared machines moves ±15 %).
#
#   tests/bench/ir_per_request.sh [-b STATESRVD] [-s] [-T TTL] [-o CONF_LINE]... TEST PIPELINE
#
# Starts STATESRVD (default build/statesrvd) under callgrind in a temporary
# directory (loopback only), preloads KEYS keys (default 20000) of VALUE
# bytes (default 64), takes a checkpoint with -s (which turns change
# tracking on; -T gives the state a TTL first, e.g. 1h), runs N (default 40000) TEST requests (get, put or merge) over
# 10 connections at PIPELINE depth, and prints the instructions per request:
# the run's total less that of the same run with no measured requests.
set -eu
cd "$(dirname "$0")/../.."
BIN=build/statesrvd
SNAP=0
CONF=
TTL=
while getopts b:sT:o: opt; do
    case $opt in
    b) BIN=$OPTARG ;;
    s) SNAP=1 ;;
    T) TTL=$OPTARG ;;
    o) CONF="$CONF$OPTARG
" ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 2 ] || { sed -n '6,8p' "$0" >&2; exit 2; }
TEST=$1
PIPE=$2
KEYS=${KEYS:-20000}
VALUE=${VALUE:-64}
N=${N:-40000}
command -v valgrind >/dev/null || { echo "ir_per_request: valgrind is needed (make deps-dev)" >&2; exit 2; }
make -s build/statectl build/statesrv-bench

run() { # MEASURED: prints the total instructions of one server run
    dir=$(mktemp -d /tmp/statesrv-ir.XXXXXX)
    port=$((20000 + ($$ + $1) % 20000))
    printf '%s' "$CONF" >"$dir/conf"
    valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" "$BIN" -c "$dir/conf" \
        --listen 127.0.0.1:$port --data-dir "$dir/data" --checkpoint-dir "$dir/ckpt" \
        --log-level warn 2>"$dir/log" &
    pid=$!
    i=0
    until build/statectl -a 127.0.0.1:$port ping >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -lt 300 ] || { cat "$dir/log" >&2; kill $pid; exit 1; }
        sleep 0.1
    done
    [ -z "$TTL" ] || build/statectl -a 127.0.0.1:$port ttl bench0 "$TTL" >/dev/null
    build/statesrv-bench -a 127.0.0.1:$port -t put --sequential -n "$KEYS" -d "$VALUE" -c 4 -P 64 >/dev/null
    [ "$SNAP" = 0 ] || build/statectl -a 127.0.0.1:$port snapshot >/dev/null
    [ "$1" = 0 ] || build/statesrv-bench -a 127.0.0.1:$port -t "$TEST" -c 10 -P "$PIPE" \
        -r "$KEYS" -d "$VALUE" -n "$1" >/dev/null
    kill -TERM $pid
    wait $pid || true
    sed -n 's/^summary: //p' "$dir/cg.out"
    rm -rf "$dir"
}
with=$(run "$N")
without=$(run 0)
echo "$TEST P$PIPE: $(( (with - without) / N )) Ir/request ($with - $without over $N)"
