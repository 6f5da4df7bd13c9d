#!/usr/bin/env bash
# Overload run of issue 8: 500 stream subscribers (10 readings/s) and 4 controllers offering
# 2,000 readings/s at once against one default `webmacs serve` on a fresh PostgreSQL database,
# with GET /health probed every 100 ms. The controllers are bench/ws_ingest.py (paced frames of
# 10 with seq, up to 64 unacked each: it times every ack); the subscribers are the shared
# loadgen's fanout. Prints the health latency, the ingest result (ack latency, acked readings),
# count(*) of the datapoints table, and the fan-out result.
#   usage: bench/overload.sh [with-subscribers: 1|0]   (LOADGEN_PYTHON: interpreter with
#          ../shared/bench/requirements.txt installed; default python3)
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
LG="${LOADGEN_PYTHON:-python3} $ROOT/../shared/bench/loadgen.py"
WITH=${1:-1}
PORT=${PORT:-8130}
OUT=$(mktemp -d /tmp/overload-XXXX)
DB=wm_overload_$$
createdb -h 127.0.0.1 -U postgres "$DB"
(cd "$OUT" && DATABASE_URL="postgresql://postgres@127.0.0.1:5432/$DB" PORT=$PORT \
  "$ROOT/.venv/bin/webmacs" serve > server.log 2>&1) &
SPID=$!
for _ in $(seq 100); do grep -q listening "$OUT/server.log" 2>/dev/null && break; sleep 0.1; done
SPID=$(pgrep -f "webmacs serve" -n)
COMMON="--base-url http://127.0.0.1:$PORT --email admin@webmacs.io --password admin123 --no-auth-probe \
  --pg-dsn postgresql://postgres@127.0.0.1:5432/$DB"
if [ "$WITH" = 1 ]; then
  $LG fanout --subscribers 500 --rate 10 --duration 40 $COMMON > "$OUT/fanout.txt" 2>&1 &
  FP=$!
  sleep 8
fi
"$ROOT/.venv/bin/python" "$HERE/ws_ingest.py" --base-url "http://127.0.0.1:$PORT" --controllers 4 \
  --batch 10 --window 64 --rate 2000 --duration 25 > "$OUT/ingest.txt" 2> "$OUT/ingest.log" &
IP=$!
python3 - "$PORT" <<'PY'
import sys, time, urllib.request
lat, end = [], time.time() + 25
while time.time() < end:
    t = time.perf_counter()
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=10).read()
    lat.append((time.perf_counter() - t) * 1000)
    time.sleep(0.1)
lat.sort()
print({"health_n": len(lat), "p50_ms": round(lat[len(lat) // 2], 1),
       "p99_ms": round(lat[int(len(lat) * 0.99) - 1], 1), "max_ms": round(lat[-1], 1)})
PY
wait $IP
[ "$WITH" = 1 ] && wait $FP
echo "count(*) of datapoints (the ingest's acked readings plus the fan-out controller's): $(
  psql -h 127.0.0.1 -U postgres -d "$DB" -Atc 'SELECT count(*) FROM datapoints')"
kill -TERM "$SPID"; sleep 2
dropdb -h 127.0.0.1 -U postgres --force "$DB"
tail -n 1 "$OUT/ingest.txt"
[ "$WITH" = 1 ] && tail -n 1 "$OUT/fanout.txt"
echo "outputs in $OUT"
