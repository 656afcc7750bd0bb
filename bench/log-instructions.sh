#!/usr/bin/env bash
# The access log's cost in instructions, which do not swing with the
# machine as throughput does: runs `biblio serve` under callgrind with
# instrumentation off, sends N book-by-id requests (answered by the response
# tier) over one keep-alive connection to warm it, then counts the next N
# with instrumentation on (every thread of the process, the log writer's
# too), and prints instructions per request.
#
#   BIN=target/release/biblio bash bench/log-instructions.sh default   # RUST_LOG unset
#   BIN=target/release/biblio bash bench/log-instructions.sh warn      # no access log
#
# The difference between the two starts is what the access line costs.
# Needs valgrind (Debian: apt-get install valgrind; installed if missing
# when running as root), redis-server, python3, curl.
set -euo pipefail
cd "$(dirname "$0")/.."
LOG=${1:-default} N=${N:-2000} PORT=${PORT:-18999} REDIS_PORT=${REDIS_PORT:-16399}
BIN=${BIN:-target/release/biblio}
if ! command -v valgrind >/dev/null; then
    [ "$(id -u)" = 0 ] || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }
    apt-get install -y -qq valgrind >/dev/null
fi
W=$(mktemp -d /tmp/biblio-callgrind.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$W/redis.pid" ] && kill "$(cat "$W/redis.pid")" 2>/dev/null; rm -rf "$W"' EXIT
redis-server --port "$REDIS_PORT" --save "" --appendonly no --daemonize yes --pidfile "$W/redis.pid" >/dev/null
export DATABASE_URL="sqlite://$W/db.sqlite?mode=rwc" REDIS_URL=redis://127.0.0.1:$REDIS_PORT
export BIBLIO_BIND=127.0.0.1:$PORT BIBLIO_SEED_PASSWORD=bench-password
"$BIN" seed --books 2000 --authors 400 --members 100 --borrows 1000 --seed 42 >/dev/null 2>&1
if [ "$LOG" = warn ]; then export RUST_LOG=warn; else unset RUST_LOG; fi
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$W/cg.out" "$BIN" serve 2>"$W/stderr.log" &
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
python3 - "$N" "$PORT" <<'PY'
import http.client, json, subprocess, sys
n, port = int(sys.argv[1]), int(sys.argv[2])
c = http.client.HTTPConnection("127.0.0.1", port)
def post(query, variables):
    c.request("POST", "/graphql", json.dumps({"query": query, "variables": variables}),
              {"content-type": "application/json"})
    return json.loads(c.getresponse().read())
book = post("{ books(page: 1, pageSize: 1) { items { id } } }", {})["data"]["books"]["items"][0]["id"]
BOOK = "query Book($id: ID!) { book(id: $id) { id title isbn price publishedYear author { id name } category { id name } } }"
for _ in range(n): post(BOOK, {"id": book})
subprocess.run(["callgrind_control", "-i", "on"], check=True, capture_output=True)
for _ in range(n): post(BOOK, {"id": book})
subprocess.run(["callgrind_control", "-i", "off"], check=True, capture_output=True)
PY
callgrind_control -d >/dev/null 2>&1
sleep 1
kill %1 2>/dev/null; wait 2>/dev/null || true
total=$(grep -h "^totals:" "$W"/cg.out* | awk '{s += $2} END {print s}')
echo "$LOG: $((total / N)) instructions per request ($total over $N); $(stat -c %s "$W/stderr.log") bytes of log"
