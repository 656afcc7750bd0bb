#!/usr/bin/env bash
# deploy/compose.yaml's topology from local binaries, for a machine where
# containers cannot run: a PostgreSQL primary and a streaming replica
# (initdb, pg_basebackup -R), Redis, three `biblio serve` replicas and
# HAProxy in front of them with deploy/haproxy.cfg. It seeds the
# 10,000-book data set, sends a mixed workload through the balancer
# (70% book by id, 25% list pages, 5% retitles by a signed-in librarian),
# SIGKILLs one replica in the middle and restarts it, and prints:
#
# - throughput and errors (non-2xx answers, GraphQL errors, socket errors)
#   before, during and after the kill;
# - how long HAProxy kept the dead replica in rotation (from its admin
#   socket), and how long the restarted one took to come back;
# - staleness: a writer retitles a book of its own through replica 1 every
#   WRITE_EVERY_MS, while a reader per replica reads it from that replica
#   directly. A read is stale at D when it started more than D after a
#   newer title's write was acknowledged and answered an older title (as
#   tests/api/history.rs counts it); also whether any replica answered an
#   older title after a newer one, and how long until every replica
#   answered each new title.
#
# It exits nonzero when a read is stale at STALENESS_BOUND_MS (default 500,
# docs/caching.md's bound with Redis up), when a replica served an older title
# after a newer one, or when HAProxy kept the killed replica in rotation
# longer than its check interval (`inter` in deploy/haproxy.cfg).
#
#   bash bench/cluster.sh                          # builds the release binary first
#   BIN=target/release/biblio DURATION=20 bash bench/cluster.sh
#
# Needs, and installs with apt-get when run as root: haproxy, wrk,
# redis-server, postgresql. PostgreSQL refuses to run as root, so as root
# its servers run as the `postgres` user. Everything listens on 127.0.0.1,
# on free ports, under a temporary directory removed at the end
# (KEEP=1 keeps it, with every log).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}            # seconds per phase: before, during, after
WARMUP=${WARMUP:-3}                 # seconds of the workload before them, not counted
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
KILL_AFTER=${KILL_AFTER:-2}         # seconds into the "during" phase
DOWN_FOR=${DOWN_FOR:-3}             # seconds the killed replica stays dead
WRITE_EVERY_MS=${WRITE_EVERY_MS:-100}
STALENESS_BOUND_MS=${STALENESS_BOUND_MS:-500}

WORK=$(mktemp -d /tmp/biblio-cluster.XXXXXX)
chmod 755 "$WORK"
STARTED=()                          # pids of the processes this script started
PG_CLUSTERS=()                      # data directories of the postgres servers it started

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# PostgreSQL's servers and tools run as `postgres` when this runs as root.
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
    local status=$?
    for pid in "${STARTED[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${STARTED[@]}"; do wait "$pid" 2>/dev/null || true; done
    for data in "${PG_CLUSTERS[@]}"; do
        as_pg "$PGBIN/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
    done
    if [ -n "${KEEP:-}" ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    exit $status
}
trap cleanup EXIT

need() { # need COMMAND DEBIAN-PACKAGE
    command -v "$1" >/dev/null && return 0
    if [ "$(id -u)" = 0 ]; then
        log "installing $2"
        apt-get install -y "$2" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y "$2" >/dev/null; }
    else
        echo "cluster: $1 is missing: install it with \`sudo apt-get install $2\`" >&2
        exit 1
    fi
}
need haproxy haproxy
need wrk wrk
need redis-server redis-server
need python3 python3
need curl curl
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
if [ ! -x "$PGBIN/initdb" ]; then
    need /usr/lib/postgresql/15/bin/initdb postgresql
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
fi

if [ -z "${BIN:-}" ]; then
    log "building the release binary"
    cargo build --release --locked --quiet --bin biblio
    BIN=target/release/biblio
fi
BIN=$(realpath "$BIN")

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PG_PORT=$(free_port) PG_REPLICA_PORT=$(free_port) REDIS_PORT=$(free_port)
LB_PORT=$(free_port) STATS_PORT=$(free_port)
PORTS=("" "$(free_port)" "$(free_port)" "$(free_port)")
PRIMARY_URL="postgres://postgres@127.0.0.1:$PG_PORT/biblio"
REPLICA_URL="postgres://postgres@127.0.0.1:$PG_REPLICA_PORT/biblio"

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/ {print $2}') GiB; $("$BIN" --version), $("$PGBIN/postgres" --version), $(redis-server --version | cut -d' ' -f3), $(haproxy -v | head -n1 | cut -d' ' -f1-3)"

# --- PostgreSQL: a primary and a streaming replica of it -------------------
mkdir -p "$WORK/pg"
[ "$(id -u)" != 0 ] || chown postgres: "$WORK/pg"
pg_start() { # pg_start DATA PORT [SETTING...]
    local data=$1 port=$2
    shift 2
    local options="-c port=$port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$WORK/pg"
    for setting in "$@"; do options+=" -c $setting"; done
    as_pg "$PGBIN/pg_ctl" -D "$data" -l "$data.log" -w -o "$options" start >/dev/null
    PG_CLUSTERS+=("$data")
}
log "PostgreSQL primary on port $PG_PORT"
# The C locale orders text by bytes, as biblio's range invalidation wants
# (docs/caching.md, "How it stays exact"); any other works, with coarser invalidation.
as_pg "$PGBIN/initdb" -D "$WORK/pg/primary" -U postgres --auth=trust --locale=C -E UTF8 >/dev/null
pg_start "$WORK/pg/primary" "$PG_PORT" wal_level=replica max_wal_senders=4 max_connections=200
as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres biblio
log "PostgreSQL streaming replica on port $PG_REPLICA_PORT (pg_basebackup -R)"
as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PG_PORT" -U postgres -D "$WORK/pg/replica" -R -X stream -c fast
pg_start "$WORK/pg/replica" "$PG_REPLICA_PORT" hot_standby=on max_connections=200
streaming=$(as_pg "$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -Atc "SELECT state FROM pg_stat_replication")
[ "$streaming" = streaming ] || { echo "cluster: the replica is not streaming (pg_stat_replication: '$streaming')" >&2; exit 1; }

# --- Redis, the schema, the data --------------------------------------------
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >"$WORK/redis.log" 2>&1 &
STARTED+=($!)

export RUST_LOG=${RUST_LOG:-warn}
export BIBLIO_SEED_PASSWORD=cluster-password
"$BIN" migrate --database-url "$PRIMARY_URL" >/dev/null
log "seeding 10,000 books"
"$BIN" seed --database-url "$PRIMARY_URL" --authors 2000 --books 10000 --members 1000 --borrows 30000 --seed 42 >"$WORK/seed.log"
head -n1 "$WORK/seed.log"

# --- three biblio replicas ----------------------------------------------------
READ_ARGS=()
# (Read whole first: grep -q would close the pipe on biblio, and pipefail fail it.)
SERVE_HELP=$("$BIN" serve --help)
if grep -q -- '--database-read-url' <<<"$SERVE_HELP"; then
    READ_ARGS=(--database-read-url "$REPLICA_URL")
    echo "reads: cache misses go to the streaming replica (--database-read-url $REPLICA_URL)"
else
    echo "reads: all go to the primary (this build of biblio has no --database-read-url); the streaming replica only follows"
fi
# One key for every replica, as a deployment sets it.
SIGNING_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
PIDS=()
start_replica() { # start_replica N
    BIBLIO_TOKEN_SIGNING_KEY=$SIGNING_KEY "$BIN" serve --database-url "$PRIMARY_URL" "${READ_ARGS[@]}" \
        --redis-url "redis://127.0.0.1:$REDIS_PORT" --bind "127.0.0.1:${PORTS[$1]}" \
        --client-address-header X-Forwarded-For >>"$WORK/biblio-$1.log" 2>&1 &
    PIDS[$1]=$!
    STARTED+=($!)
}
wait_ready() { # wait_ready URL
    for _ in $(seq 1 200); do curl -sf "$1/readyz" >/dev/null && return 0; sleep 0.1; done
    echo "cluster: $1 never became ready: $(curl -s "$1/readyz")" >&2
    exit 1
}
for n in 1 2 3; do start_replica $n; done
for n in 1 2 3; do wait_ready "http://127.0.0.1:${PORTS[$n]}"; done
log "replicas on ports ${PORTS[1]} ${PORTS[2]} ${PORTS[3]}"

# --- HAProxy, with the deployment's own configuration -----------------------
export LB_LISTEN=127.0.0.1:$LB_PORT LB_STATS_LISTEN=127.0.0.1:$STATS_PORT
export LB_STATS_SOCKET=$WORK/haproxy.sock
export LB_REPLICA_1=127.0.0.1:${PORTS[1]} LB_REPLICA_2=127.0.0.1:${PORTS[2]} LB_REPLICA_3=127.0.0.1:${PORTS[3]}
haproxy -c -q -f deploy/haproxy.cfg
haproxy -db -f deploy/haproxy.cfg >"$WORK/haproxy.log" 2>&1 &
STARTED+=($!)
# The check interval the bound is held to, as the configuration states it.
CHECK_INTERVAL_MS=$(sed -nE 's/^ *default-server .* inter ([0-9]+)(m?s).*/\1 \2/p' deploy/haproxy.cfg |
    awk '{ print ($2 == "s") ? $1 * 1000 : $1 }')
LB="http://127.0.0.1:$LB_PORT"
log "HAProxy on port $LB_PORT (checks /readyz every $CHECK_INTERVAL_MS ms)"

cat >"$WORK/cluster.py" <<'PY'
"""The measuring side of bench/cluster.sh: inputs, the monitor, the report."""
import csv, http.client, io, json, os, random, socket, sys, threading, time

BOOK = "query($id: ID!) { book(id: $id) { title } }"
UPDATE = "mutation($id: ID!, $title: String!) { updateBook(id: $id, input: { title: $title }) { title } }"
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }"


class Client:
    """One keep-alive connection to host:port, reopened after a failure."""

    def __init__(self, address):
        self.host, port = address.rsplit(":", 1)
        self.port = int(port)
        self.conn = None

    def gql(self, query, variables, token=None):
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        body = json.dumps({"query": query, "variables": variables})
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
            self.conn.request("POST", "/graphql", body, headers)
            response = self.conn.getresponse()
            answer = json.loads(response.read())
        except (OSError, http.client.HTTPException, ValueError):
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            raise
        if response.status != 200 or answer.get("errors"):
            raise RuntimeError(f"{response.status} {answer}")
        return answer["data"]


def inputs(lb, work):
    """The workload's ids (the first 1,000 books), the librarian's token,
    and a book of the writer's own that the workload never touches."""
    client = Client(lb)
    ids = []
    for page in range(1, 11):
        data = client.gql("query($p: Int!) { books(page: $p, pageSize: 100) { items { id } } }", {"p": page})
        ids += [b["id"] for b in data["books"]["items"]]
    probe = client.gql("{ books(page: 60, pageSize: 100) { items { id } } }", {})["books"]["items"][0]["id"]
    assert probe not in ids
    token = client.gql(LOGIN, {"e": "librarian@biblio.test", "p": os.environ["BIBLIO_SEED_PASSWORD"]})["login"]["token"]
    lua = lambda name, items: f"{name} = {{" + ",".join(json.dumps(i) for i in items) + "}\n"
    with open(f"{work}/data.lua", "w") as f:
        f.write(lua("ids", ids) + f"librarian = {json.dumps(token)}\n")
    with open(f"{work}/inputs.json", "w") as f:
        json.dump({"probe": probe, "token": token}, f)


def stats(socket_path):
    """HAProxy's `show stat`, one dict per line."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(socket_path)
    s.sendall(b"show stat\n")
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    text = data.decode().lstrip("# ")
    return list(csv.DictReader(io.StringIO(text)))


def monitor(work, replicas, socket_path, write_every_ms):
    """Until WORK/stop exists: a writer retitling the probe book through
    replica 1, a reader per replica, and HAProxy's view of each server.
    Writes everything observed to WORK/monitor.json."""
    probe = json.load(open(f"{work}/inputs.json"))
    stop = lambda: os.path.exists(f"{work}/stop")
    writes, reads, states = [], {r: [] for r in replicas}, []

    def writer():
        client, n = Client(replicas[0]), 0
        while not stop():
            n += 1
            sent = time.time()
            try:
                client.gql(UPDATE, {"id": probe["probe"], "title": f"Probe {n:06d}"}, probe["token"])
                writes.append((n, sent, time.time()))
            except Exception as err:  # a failed write is reported, never retried as another
                writes.append((n, sent, None))
                print(f"write {n} failed: {err}", file=sys.stderr)
            time.sleep(write_every_ms / 1000)

    def reader(address):
        client = Client(address)
        while not stop():
            start = time.time()
            try:
                title = client.gql(BOOK, {"id": probe["probe"]})["book"]["title"]
                version = int(title.split()[1]) if title.startswith("Probe ") else 0
                reads[address].append((start, time.time(), version))
            except Exception:
                time.sleep(0.02)  # the replica is down (killed) or refusing
            time.sleep(0.005)

    def balancer():
        last = {}
        while not stop():
            now = time.time()
            for row in stats(socket_path):
                if row["pxname"] == "biblio" and row["svname"] not in ("FRONTEND", "BACKEND"):
                    status = row["status"].split()[0]
                    if last.get(row["svname"]) != status:
                        last[row["svname"]] = status
                        states.append((now, row["svname"], status))
            time.sleep(0.01)

    threads = [threading.Thread(target=writer), threading.Thread(target=balancer)]
    threads += [threading.Thread(target=reader, args=(r,)) for r in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    servers = {row["svname"]: {k: row[k] for k in ("stot", "econ", "eresp", "wretr", "wredis", "hrsp_5xx")}
               for row in stats(socket_path) if row["pxname"] == "biblio"}
    json.dump({"writes": writes, "reads": reads, "states": states, "servers": servers},
              open(f"{work}/monitor.json", "w"))


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))] if values else 0.0


def report(work, bound_ms, check_interval_ms, killed_server, killed_address):
    """Prints the staleness and balancer figures; returns what failed."""
    m = json.load(open(f"{work}/monitor.json"))
    kill = float(open(f"{work}/killed_at").read())
    restart = float(open(f"{work}/restarted_at").read())
    failures = []
    acked = [(n, ack) for n, _, ack in m["writes"] if ack is not None]
    failed_writes = len(m["writes"]) - len(acked)
    # Per (write, replica): how long after the acknowledgement a read still
    # started and answered an older title, and when the first answer with
    # it (or a newer one) arrived.
    stale_after, fresh_after, regressions = [], [], 0
    stale_at = {0: 0, 10: 0, 50: 0, 250: 0, bound_ms: 0}
    total_reads, while_down = 0, 0
    # When the killed replica answered again after its restart.
    back = min((s for s, _, _ in m["reads"][killed_address] if s >= restart), default=float("inf"))
    for address, reads in m["reads"].items():
        total_reads += len(reads)
        newest = 0
        for _, _, version in reads:
            if version < newest:
                regressions += 1
            newest = max(newest, version)
        for start, _, version in reads:
            # Stale at D: an older answer to a read started more than D
            # after a newer write's acknowledgement (the newest such write).
            lag = max((start - ack for n, ack in acked if n > version and ack < start), default=None)
            if lag is not None:
                for d in stale_at:
                    if lag * 1000 > d:
                        stale_at[d] += 1
        for n, ack in acked:
            # A write acknowledged while this replica was dead is not its
            # to answer until it is back: counted apart.
            if address == killed_address and kill <= ack <= back:
                while_down += 1
                continue
            later = [(s, e, v) for s, e, v in reads if e > ack]
            stale = [s - ack for s, e, v in later if v < n and s > ack]
            stale_after.append(max(stale, default=0.0))
            fresh = [e - ack for s, e, v in later if v >= n]
            if fresh:
                fresh_after.append(fresh[0])
    ms = lambda seconds: f"{seconds * 1000:.1f} ms"
    print(f"writes: {len(acked)} acknowledged through replica 1 ({failed_writes} failed); reads: {total_reads} on the three replicas")
    print(f"older title served after a newer one, on one replica: {regressions}")
    print(f"each write's last stale read on a replica (latest start of an older answer after the ack): "
          f"p50 {ms(percentile(stale_after, 50))}, p99 {ms(percentile(stale_after, 99))}, max {ms(max(stale_after, default=0))}")
    print(f"until a replica answered the new title (its first such answer's arrival after the ack, "
          f"{while_down} writes made while the killed replica was down left out for it): "
          f"p50 {ms(percentile(fresh_after, 50))}, p99 {ms(percentile(fresh_after, 99))}, max {ms(max(fresh_after, default=0))}")
    print("reads stale at D: " + ", ".join(f"D={d} ms: {c}" for d, c in sorted(stale_at.items())))
    if stale_at[bound_ms]:
        failures.append(f"{stale_at[bound_ms]} reads stale at the bound ({bound_ms} ms)")
    if regressions:
        failures.append(f"{regressions} reads answered an older title after a newer one")

    transitions = [(t, s) for t, name, s in m["states"] if name == killed_server]
    down = next((t for t, s in transitions if t >= kill and s != "UP"), None)
    up = next((t for t, s in transitions if t >= restart and s == "UP"), None)
    print(f"{killed_server}: SIGKILL at +0 ms; "
          + (f"out of rotation ({next(s for t, s in transitions if t == down)}) at +{(down - kill) * 1000:.0f} ms" if down else "never taken out of rotation")
          + f"; restarted at +{(restart - kill) * 1000:.0f} ms; "
          + (f"back in rotation at +{(up - kill) * 1000:.0f} ms ({(up - restart) * 1000:.0f} ms after its restart)" if up else "not back in rotation"))
    for name, counters in sorted(m["servers"].items()):
        name = "all (backend)" if name == "BACKEND" else name
        print(f"  haproxy {name}: sessions {counters['stot']}, connection errors {counters['econ']}, response errors {counters['eresp']}, "
              f"retries {counters['wretr']}, redispatches {counters['wredis']}, 5xx {counters['hrsp_5xx']}")
    if down is None or (down - kill) * 1000 > check_interval_ms:
        failures.append(f"HAProxy kept {killed_server} in rotation longer than its check interval ({check_interval_ms} ms)")
    return failures


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "inputs":
        inputs(*args)
    elif command == "monitor":
        work, socket_path, write_every_ms, *replicas = args
        monitor(work, replicas, socket_path, int(write_every_ms))
    elif command == "report":
        failures = report(args[0], int(args[1]), int(args[2]), args[3], args[4])
        for failure in failures:
            print(f"FAILED: {failure}")
        sys.exit(1 if failures else 0)
PY

cat >"$WORK/workload.lua" <<LUA
dofile("$WORK/data.lua")
local BOOK = "query Book(\$id: ID!) { book(id: \$id) { id title isbn price publishedYear author { id name } category { id name } } }"
local LIST = "query Books(\$page: Int!, \$pageSize: Int!) { books(page: \$page, pageSize: \$pageSize) { items { id title price author { name } category { name } } totalCount totalPages page pageSize hasNextPage } }"
local UPDATE = "mutation Update(\$id: ID!, \$title: String!) { updateBook(id: \$id, input: { title: \$title }) { id title } }"
local function enc(s) return (s:gsub('\\\\', '\\\\\\\\'):gsub('"', '\\\\"')) end
local function body(q, vars) return '{"query":"' .. enc(q) .. '","variables":' .. vars .. '}' end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init() math.randomseed(os.time() + math.random(100000)); graphql_errors = 0 end
function request()
  local headers = { ["Content-Type"] = "application/json" }
  local r, b = math.random(100)
  if r <= 70 then
    b = body(BOOK, '{"id":"' .. ids[math.random(#ids)] .. '"}')
  elseif r <= 95 then
    b = body(LIST, '{"page":' .. math.random(50) .. ',"pageSize":20}')
  else
    headers["Authorization"] = "Bearer " .. librarian
    b = body(UPDATE, '{"id":"' .. ids[math.random(#ids)] .. '","title":"Retitled ' .. math.random(1000000) .. '"}')
  end
  return wrk.format("POST", "/graphql", headers, b)
end
function response(status, headers, resp_body)
  if status == 200 and resp_body:find('"errors"', 1, true) then graphql_errors = graphql_errors + 1 end
end
function done(summary, latency, requests)
  local graphql = 0
  for _, thread in ipairs(threads) do graphql = graphql + thread:get("graphql_errors") end
  local e = summary.errors
  io.write(string.format("RESULT %.0f %.2f %.2f %d %d %d %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests, e.status, graphql,
    e.connect + e.read + e.write + e.timeout))
end
LUA

python3 "$WORK/cluster.py" inputs "127.0.0.1:$LB_PORT" "$WORK"

# phase NAME: the workload through the balancer for DURATION seconds; its
# RESULT line goes to WORK/NAME.result.
phase() {
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/workload.lua" "$LB/graphql" >"$WORK/$1.wrk" 2>&1
    grep '^RESULT' "$WORK/$1.wrk" >"$WORK/$1.result" || { cat "$WORK/$1.wrk" >&2; exit 1; }
}

python3 "$WORK/cluster.py" monitor "$WORK" "$LB_STATS_SOCKET" "$WRITE_EVERY_MS" \
    "127.0.0.1:${PORTS[1]}" "127.0.0.1:${PORTS[2]}" "127.0.0.1:${PORTS[3]}" &
MONITOR=$!
STARTED+=($MONITOR)

log "warm-up: ${WARMUP}s, not counted"
DURATION=$WARMUP phase warmup
log "phase before: ${DURATION}s"
phase before
log "phase during: ${DURATION}s, replica 3 SIGKILLed after ${KILL_AFTER}s, restarted ${DOWN_FOR}s later"
phase during &
WRK=$!
sleep "$KILL_AFTER"
date +%s.%N >"$WORK/killed_at"
kill -KILL "${PIDS[3]}"
wait "${PIDS[3]}" 2>/dev/null || true
sleep "$DOWN_FOR"
date +%s.%N >"$WORK/restarted_at"
start_replica 3
wait $WRK
log "phase after: ${DURATION}s"
phase after
touch "$WORK/stop"
wait $MONITOR

echo
echo "== workload through HAProxy: 70% book by id, 25% list pages, 5% retitles (librarian); $THREADS wrk threads, $CONNECTIONS connections, ${DURATION}s per phase"
echo
echo "| phase | req/s | p50 ms | p99 ms | requests | non-2xx | GraphQL errors | socket errors |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for name in before during after; do
    read -r _ rps p50 p99 requests status graphql socket <"$WORK/$name.result"
    echo "| $name | $rps | $p50 | $p99 | $requests | $status | $graphql | $socket |"
done
echo
echo "== staleness (a retitle every ${WRITE_EVERY_MS} ms through replica 1, each replica read directly), the bound: ${STALENESS_BOUND_MS} ms"
lag=$(as_pg "$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -Atc \
    "SELECT state || ', ' || pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) || ' bytes behind' FROM pg_stat_replication")
status=0
python3 "$WORK/cluster.py" report "$WORK" "$STALENESS_BOUND_MS" "$CHECK_INTERVAL_MS" biblio-3 "127.0.0.1:${PORTS[3]}" || status=$?
echo "PostgreSQL replica at the end: $lag"
exit $status
