#!/bin/sh
# Write throughput before, during and after a snapshot, on a fresh statesrvd
# in a temporary directory (loopback only). Usage:
#   tests/bench/snapshot_impact.sh [KEYS] [VALUE_BYTES] [SECONDS_PER_PHASE]
set -eu
cd "$(dirname "$0")/../.."
KEYS=${1:-2000000}
VALUE=${2:-100}
SECS=${3:-5}
make -s build/statesrvd build/statectl build/bench/snapshot_impact
dir=$(mktemp -d /tmp/statesrv-bench.XXXXXX)
port=$((20000 + $$ % 20000))
build/statesrvd --listen 127.0.0.1:$port --data-dir "$dir/data" \
    --checkpoint-dir "$dir/checkpoints" --log-level warn 2>"$dir/log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
i=0
until build/statectl -a 127.0.0.1:$port ping >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 100 ] || { cat "$dir/log"; exit 1; }; sleep 0.1
done
build/bench/snapshot_impact 127.0.0.1:$port build/statectl "$KEYS" "$VALUE" "$SECS"
echo "store: $(du -sh "$dir/data" | cut -f1), checkpoint: $(du -sh "$dir/checkpoints" | cut -f1)"
if command -v mdb_stat >/dev/null; then
    echo "LMDB free list after the run:"
    mdb_stat -ef "$dir/data/current" | grep -E "Free pages|Number of pages used|Max pages" || true
fi
