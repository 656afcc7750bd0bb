#!/usr/bin/env bash
# Load test: seeds the 10,000-book data set (BOOKS), starts a release build of biblio
# in each cache mode next to the raw-axum baseline, warms it, and runs each
# workload with wrk. Prints a markdown table (requests/s, p50, p99, and the
# ratio to the baseline), a fixed-rate latency run, and resident memory.
#
#   bash bench/run.sh                 # everything (about 10 minutes)
#   MODES="both" DURATION=5 bash bench/run.sh
#   BEFORE_BIN=/tmp/biblio-main MODES=both WORKLOADS="book list" bash bench/run.sh
#
# BEFORE_BIN runs a second build (of main, say) on the same workloads just
# before this one, mode by mode, so a change's cost is measured in one run
# on one machine state. BIN uses a prebuilt biblio instead of building it,
# BASELINE_BIN a prebuilt baseline.
#
#   MODES=both WORKLOADS=listsearch bash bench/run.sh
#
# `listsearch` is issue 16's list/search mix: 45% `books` pages 1-50 of 20
# in title order, 50% `searchBooks` over 100 terms, 5% `updateBook`
# retitling one of 1,000 books. After it runs, every one of those 150
# reads is compared with a replica that caches nothing (on the same
# database), and the table says how many answered the same ("exact"), and
# which share of the page reads and of the search reads (by the mix's
# proportions) loaded their list from the database.
#
#   TOPOLOGIES="single sentinel cluster" TOPOLOGY_ROUNDS=3 MODES="both l2-no-tier" \
#       WORKLOADS="book list" bash bench/run.sh
#
# TOPOLOGIES runs every mode and workload on each Redis deployment
# (issue 18): `single` (one redis-server), `sentinel` (a primary, a replica
# and three sentinels; biblio given `redis-sentinel://`) and `cluster`
# (three primaries and three replicas joined with `redis-cli --cluster
# create`; biblio given `redis-cluster://`), all started from redis-server
# on free ports under the run's temporary directory and kept up for the
# whole run, so every topology is measured on the same machine state. A
# replica is measured once its /readyz says its cache is up on that
# topology. Within a mode the topologies run one after the other, in
# TOPOLOGIES' order, and the table adds each row's req/s as a ratio to
# `single`'s (same mode, workload and round), printed once the mode's
# topologies all ran. TOPOLOGY_ROUNDS=N runs them N times within each
# mode, every other round in reverse order, and adds a table of the means.
# `off` and `l1` never talk to Redis and run once, on the first topology;
# so do the fixed-rate run and the memory figure. `l2-no-tier` (like
# `both-no-tier`) makes every read a Redis read. Each row also says what
# the run did, from the replica's /metrics: the share answered whole by
# the response tier, Redis calls per request, failed Redis calls, and the
# load average at its end (the machine may be shared).
#
# With `cluster` in TOPOLOGIES (and PUBSUB not 0), the run ends with the bus
# on the Cluster: plain PUBLISH against sharded SPUBLISH, on one channel
# and on a channel per shard (redis-benchmark, PUBSUB_MESSAGES each,
# PUBSUB_SUBSCRIBERS subscribers, PUBSUB_ROUNDS rounds), with the CPU every
# node spent, to show what plain pub/sub's broadcast over the cluster bus
# costs (docs/redis-topologies.md).
#
#   LOG_AB=1 bash bench/run.sh        # what the access log costs
#   DATABASE=postgres bash bench/run.sh
#
# DATABASE=postgres runs every replica on PostgreSQL instead of SQLite: a
# database of its own on $PGHOST:$PGPORT (default 127.0.0.1:5432, user
# postgres), created for the run and dropped after it.
#
# Every replica runs the default start, as users run it: RUST_LOG unset, so
# the access log is on, its lines going to a file under the run's
# directory. BENCH_LOG=warn starts them with RUST_LOG=warn instead (how
# figures before 2026-12-07 were taken).
#
# LOG_AB=1 measures logging instead of the table: book by id, answered by
# the response tier, with the default start (RUST_LOG unset: the access
# log at info) against RUST_LOG=warn (no access log), alternated twice
# (ROUNDS; even rounds in reverse order), each replica's stderr going to a
# file as a log collector's would, then each start's cost per round
# against that round's RUST_LOG=warn, with their mean and median. With
# BEFORE_BIN, that build's default start joins each round.
# LOG_SINK=null sends the replicas' stderr to /dev/null instead, which
# leaves out what the kernel spends putting the lines in a file (the page
# cache and its writeback to disk): the difference between the two is what
# the file costs, not biblio.
#
# Needs: redis-server, redis-cli and redis-benchmark (Debian: apt-get
# install redis-server redis-tools; Redis 7 for the cluster's SPUBLISH),
# wrk (installed with apt-get if missing), python3, curl, and cargo unless
# BIN and BASELINE_BIN are given; psql for DATABASE=postgres. No
# containers: every process it starts is killed when it exits.
set -euo pipefail
cd "$(dirname "$0")/.."

# A mode is a cache mode, or `both-no-tier`: both tiers with the response
# tier off (`--response-cache off`), to compare with the executor alone.
MODES=${MODES:-"off l1 l2 both-no-tier both"}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
RATE=${RATE:-10000}
BOOKS=${BOOKS:-10000}
WORKLOADS=${WORKLOADS:-"book list search statistics borrows mixed revalidate listsearch"}
PORT=${PORT:-18180}
BASELINE_PORT=${BASELINE_PORT:-18181}
ORACLE_PORT=${ORACLE_PORT:-18182}
REDIS_PORT=${REDIS_PORT:-18379}
DATABASE=${DATABASE:-sqlite}
TOPOLOGIES=${TOPOLOGIES:-single}
TOPOLOGY_ROUNDS=${TOPOLOGY_ROUNDS:-1}
PUBSUB=${PUBSUB:-1}
PUBSUB_MESSAGES=${PUBSUB_MESSAGES:-200000}
PUBSUB_SUBSCRIBERS=${PUBSUB_SUBSCRIBERS:-3}
for topology in $TOPOLOGIES; do
    case $topology in
        single | sentinel | cluster) ;;
        *) echo "TOPOLOGIES takes single, sentinel and cluster, not $topology" >&2; exit 1 ;;
    esac
done
WORK=$(mktemp -d /tmp/biblio-bench.XXXXXX)
PG_DATABASE=
cleanup() {
    kill $(jobs -p) 2>/dev/null || true
    wait 2>/dev/null || true
    [ -z "$PG_DATABASE" ] || psql -q -h "${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}" -U "${PGUSER:-postgres}" \
        -d postgres -c "DROP DATABASE IF EXISTS $PG_DATABASE" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y wrk >/dev/null; }
for tool in redis-server redis-cli; do
    command -v $tool >/dev/null || { echo "$tool is needed (apt-get install redis-server redis-tools)" >&2; exit 1; }
done

BASELINE_BIN=${BASELINE_BIN:-target/release/examples/baseline}
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet --bin biblio --example baseline
    BIN=target/release/biblio
elif [ ! -x "$BASELINE_BIN" ] || [ "$BASELINE_BIN" = target/release/examples/baseline ]; then
    cargo build --release --quiet --example baseline
fi
BEFORE_BIN=${BEFORE_BIN:-}
case $DATABASE in
    sqlite) export DATABASE_URL="sqlite://$WORK/bench.db?mode=rwc" ;;
    postgres)
        command -v psql >/dev/null || { echo "DATABASE=postgres needs psql (apt-get install postgresql-client)" >&2; exit 1; }
        PG_DATABASE="bench_$(date +%s)_$$"
        psql -q -h "${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}" -U "${PGUSER:-postgres}" -d postgres \
            -c "CREATE DATABASE $PG_DATABASE" >/dev/null
        export DATABASE_URL="postgres://${PGUSER:-postgres}@${PGHOST:-127.0.0.1}:${PGPORT:-5432}/$PG_DATABASE"
        ;;
    *) echo "DATABASE is sqlite or postgres, not $DATABASE" >&2; exit 1 ;;
esac
export RUST_LOG=warn

echo "== database: $DATABASE"
load() { echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"; }
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/ {print $2}') GiB, $(load)"
# One known password for every seeded account, so the inputs below can sign in.
export BIBLIO_SEED_PASSWORD=bench-password
# BOOKS sets the data set's size (issue 16's million-book mix: BOOKS=1000000
# CONNECTIONS=16); authors, members and borrows scale with it as in scale.sh.
$BIN seed --authors $((BOOKS / 5)) --books "$BOOKS" --members $((BOOKS / 10)) --borrows $((BOOKS * 3)) --seed 42 | head -1

redis-server --port $REDIS_PORT --save "" --appendonly no --daemonize no >/dev/null &
SINGLE_PID=$!
sleep 0.3

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# until WHAT COMMAND...: polls COMMAND (quietly) for up to 60 s.
until_true() {
    local what=$1
    shift
    for _ in $(seq 1 600); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "bench: $what: not within 60 s" >&2
    exit 1
}
rcli() { redis-cli -h 127.0.0.1 -p "$@"; }
pong() { [ "$(rcli "$1" PING 2>/dev/null)" = PONG ]; }
# redis_node DIR PORT [ARG...]: a data node in DIR/node-PORT, started as a
# job of this shell (so cleanup kills it); its pid is appended to NODE_PIDS.
NODE_PIDS=()
redis_node() {
    local dir=$1/node-$2 port=$2
    shift 2
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" "$@" \
        >"$dir/log" 2>&1 &
    NODE_PIDS+=($!)
    until_true "redis-server on port $port" pong "$port"
}

# The Sentinel group, as tests/api/sentinel.rs starts it: a primary, a
# replica of it, and three sentinels (quorum 2) monitoring it as `mymaster`.
start_sentinel() {
    local dir=$WORK/sentinel primary replica hosts=()
    primary=$(free_port)
    redis_node "$dir" "$primary"
    replica=$(free_port)
    redis_node "$dir" "$replica" --replicaof 127.0.0.1 "$primary"
    until_true "the replica to attach" sh -c "redis-cli -p $replica INFO replication | grep -q master_link_status:up"
    SENTINEL_PORTS=()
    for _ in 1 2 3; do
        local port
        port=$(free_port)
        printf 'port %s\nbind 127.0.0.1\ndir %s\nsentinel monitor mymaster 127.0.0.1 %s 2\nsentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 4000\n' \
            "$port" "$dir" "$primary" >"$dir/sentinel-$port.conf"
        redis-server "$dir/sentinel-$port.conf" --sentinel >"$dir/sentinel-$port.log" 2>&1 &
        until_true "the sentinel on port $port" pong "$port"
        SENTINEL_PORTS+=("$port")
        hosts+=("127.0.0.1:$port")
    done
    for port in "${SENTINEL_PORTS[@]}"; do
        until_true "sentinel $port to know the replica and the other sentinels" sh -c "
            redis-cli -p $port SENTINEL replicas mymaster | grep -qx 127.0.0.1:$replica &&
            [ \$(redis-cli -p $port SENTINEL sentinels mymaster | grep -cx name) = 2 ]"
    done
    SENTINEL_URL="redis-sentinel://$(IFS=,; echo "${hosts[*]}")/0?sentinelServiceName=mymaster"
    echo "sentinel: primary $primary, replica $replica, sentinels ${SENTINEL_PORTS[*]}"
}

# The Cluster, as tests/api/cluster.rs starts it: six nodes, joined as three
# primaries with a replica each. The cluster bus port is chosen free too
# (the default, port + 10000, may be taken or out of range).
start_cluster() {
    local dir=$WORK/cluster addresses=() seeds=()
    CLUSTER_PORTS=() CLUSTER_PIDS=()
    for _ in 1 2 3 4 5 6; do
        local port bus
        port=$(free_port) bus=$(free_port)
        redis_node "$dir" "$port" --cluster-enabled yes --cluster-config-file nodes.conf \
            --cluster-port "$bus" --cluster-node-timeout 1000 --repl-diskless-sync-delay 0
        CLUSTER_PORTS+=("$port")
        CLUSTER_PIDS+=("${NODE_PIDS[-1]}")
        addresses+=("127.0.0.1:$port")
    done
    redis-cli --cluster create "${addresses[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 ||
        { cat "$dir/create.log" >&2; exit 1; }
    for port in "${CLUSTER_PORTS[@]}"; do
        until_true "cluster node $port to see the cluster ok" sh -c "redis-cli -p $port CLUSTER INFO | grep -q cluster_state:ok"
    done
    until_true "the cluster's three replicas to sync" sh -c "
        for port in ${CLUSTER_PORTS[*]}; do redis-cli -p \$port INFO replication; done | grep -c master_link_status:up | grep -qx 3"
    for address in "${addresses[@]:1}"; do seeds+=("node=$address"); done
    CLUSTER_URL="redis-cluster://${addresses[0]}?$(IFS='&'; echo "${seeds[*]}")"
    echo "cluster: nodes ${CLUSTER_PORTS[*]}"
}

redis_url() { # redis_url TOPOLOGY
    case $1 in
        single) echo "redis://127.0.0.1:$REDIS_PORT" ;;
        sentinel) echo "$SENTINEL_URL" ;;
        cluster) echo "$CLUSTER_URL" ;;
    esac
}

wait_for() { for _ in $(seq 1 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

gql() { # gql QUERY-JSON [TOKEN]
    curl -s "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' \
        ${2:+-H "authorization: Bearer $2"} -d "$1"
}

start_biblio() { # start_biblio MODE [BINARY] (the inputs sign in 101 users from one address: lift that throttle)
    # The default start (RUST_LOG unset: the access log on), as users run
    # it, unless BENCH_LOG=warn; stderr to REPLICA_STDERR (a file, as a log
    # collector would take it, emptied at each start).
    local cache=${1%-no-tier} tier=on bin=${2:-$BIN} log=(env -u RUST_LOG)
    local stderr=${REPLICA_STDERR:-$WORK/replica.log}
    [ "$1" = "$cache" ] || tier=off
    [ "${BENCH_LOG:-default}" = default ] || log=(env RUST_LOG="$BENCH_LOG")
    [ "$stderr" = /dev/null ] || : >"$stderr"
    BIBLIO_LOGIN_ATTEMPTS_PER_ADDRESS=100000 BIBLIO_CACHE_MODE=$cache BIBLIO_RESPONSE_CACHE=$tier \
        BIBLIO_CACHE_PREFIX="bench$RANDOM$cache" BIBLIO_BIND=127.0.0.1:$PORT \
        REDIS_URL=$(redis_url "${TOPOLOGY:-single}") "${log[@]}" $bin serve 2>>"$stderr" &
    BIBLIO_PID=$!
    wait_for "http://127.0.0.1:$PORT/healthz"
    # Measured only once the replica trusts the bus (on a Sentinel group or
    # a Cluster it finds the nodes first): the cache `up` in /readyz.
    [ "$cache" = off ] || until_true "the cache of biblio on $(redis_url "${TOPOLOGY:-single}") to be up" \
        cache_up "${TOPOLOGY:-single}"
}
cache_up() { # cache_up TOPOLOGY: /readyz says the cache is up, on that topology
    curl -s "http://127.0.0.1:$PORT/readyz" | python3 -c "
import json, sys
cache = json.load(sys.stdin)['checks']['cache']
sys.exit(not (cache['status'] == 'up' and cache.get('topology') in (None, '$1')))"
}
stop_biblio() { kill "$BIBLIO_PID"; wait "$BIBLIO_PID" 2>/dev/null || true; }

# Inputs for the workloads, gathered once through the API.
start_biblio off
python3 - "$WORK" "$PORT" <<'PY'
import json, os, sys, urllib.request
work, port = sys.argv[1], sys.argv[2]
# The operations of issue 9's comparison table, exactly as every system was sent them.
BOOK = "query Book($id: ID!) { book(id: $id) { id title isbn price publishedYear author { id name } category { id name } } }"
def post(query, variables=None, token=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"content-type": "application/json", **({"authorization": f"Bearer {token}"} if token else {})})
    return urllib.request.urlopen(req)
def gql(query, variables=None, token=None):
    return json.load(post(query, variables, token))["data"]
ids = []
for page in range(1, 11):
    ids += [b["id"] for b in gql("query($p:Int!){books(page:$p,pageSize:100){items{id}}}", {"p": page})["books"]["items"]]
etags = [post(BOOK, {"id": i}).headers["etag"] for i in ids]
words = set()
for b in gql("{books(pageSize:100){items{title author{name}}}}")["books"]["items"]:
    words.update(w.lower() for w in b["title"].split() + b["author"]["name"].split() if len(w) > 3)
terms = sorted(words)[:100]
login = "mutation($e:String!,$p:String!){login(email:$e,password:$p){token}}"
password = os.environ["BIBLIO_SEED_PASSWORD"]
tokens = [gql(login, {"e": f"member{n}@biblio.test", "p": password})["login"]["token"] for n in range(1, 101)]
librarian = gql(login, {"e": "librarian@biblio.test", "p": password})["login"]["token"]
lua = lambda name, items: f"{name} = {{" + ",".join(json.dumps(i) for i in items) + "}\n"
open(f"{work}/data.lua", "w").write(lua("ids", ids) + lua("etags", etags) + lua("terms", terms) + lua("tokens", tokens) + f"librarian = {json.dumps(librarian)}\n")
open(f"{work}/book-response.json", "wb").write(post(BOOK, {"id": ids[0]}).read())
PY
stop_biblio

cat > "$WORK/workloads.lua" <<LUA
dofile("$WORK/data.lua")
local BOOK = "query Book(\$id: ID!) { book(id: \$id) { id title isbn price publishedYear author { id name } category { id name } } }"
local LIST = "query Books(\$page: Int!, \$pageSize: Int!) { books(page: \$page, pageSize: \$pageSize) { items { id title price author { name } category { name } } totalCount totalPages page pageSize hasNextPage } }"
local SEARCH = "query Search(\$q: String!) { searchBooks(query: \$q, page: 1, pageSize: 20) { items { id title author { name } } totalCount } }"
local STATS = "query Stats { statistics { totalBooks totalAuthors averagePrice booksByCategory { category { name } count } } }"
local BORROWS = "query MyBorrows { myBorrows(page: 1, pageSize: 20) { items { id borrowedAt returnedAt book { id title } } totalCount } }"
local UPDATE = "mutation Update(\$id: ID!, \$title: String!) { updateBook(id: \$id, input: { title: \$title }) { id title } }"
local function enc(s) return (s:gsub('\\\\', '\\\\\\\\'):gsub('"', '\\\\"')) end
local function body(q, vars) return '{"query":"' .. enc(q) .. '","variables":' .. vars .. '}' end
local function urlencode(s) return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end)) end
local workload = os.getenv("WORKLOAD")
local rate_delay = tonumber(os.getenv("DELAY_MS") or "0")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
math.randomseed(os.time())
request = function()
  local headers = { ["Content-Type"] = "application/json" }
  local b
  if workload == "book" or (workload == "mixed" and math.random(100) > 5) then
    b = body(BOOK, '{"id":"' .. ids[math.random(#ids)] .. '"}')
  elseif workload == "revalidate" then
    -- A client holding the current copy asks whether it changed: 304.
    -- Over GET: RFC 9110 answers a matching POST 412, not 304.
    local i = math.random(#ids)
    headers["If-None-Match"] = etags[i]
    return wrk.format("GET", "/graphql?query=" .. urlencode(BOOK) .. "&variables="
      .. urlencode('{"id":"' .. ids[i] .. '"}'), headers)
  elseif workload == "mixed" then
    headers["Authorization"] = "Bearer " .. librarian
    b = body(UPDATE, '{"id":"' .. ids[math.random(#ids)] .. '","title":"Retitled ' .. math.random(1000000) .. '"}')
  elseif workload == "listsearch" then
    local r = math.random(100)
    if r <= 45 then
      b = body(LIST, '{"page":' .. math.random(50) .. ',"pageSize":20}')
    elseif r <= 95 then
      b = body(SEARCH, '{"q":"' .. terms[math.random(#terms)] .. '"}')
    else
      headers["Authorization"] = "Bearer " .. librarian
      b = body(UPDATE, '{"id":"' .. ids[math.random(#ids)] .. '","title":"Retitled ' .. math.random(1000000) .. '"}')
    end
  elseif workload == "list" then
    b = body(LIST, '{"page":' .. math.random(50) .. ',"pageSize":20}')
  elseif workload == "search" then
    b = body(SEARCH, '{"q":"' .. terms[math.random(#terms)] .. '"}')
  elseif workload == "statistics" then
    b = body(STATS, '{}')
  elseif workload == "borrows" then
    headers["Authorization"] = "Bearer " .. tokens[math.random(#tokens)]
    b = body(BORROWS, '{}')
  end
  return wrk.format("POST", "/graphql", headers, b)
end
errors = 0
response = function(status, headers, resp_body)
  if (status ~= 200 and status ~= 304) or resp_body:find('"errors"') then errors = errors + 1 end
end
if rate_delay > 0 then delay = function() return rate_delay end end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.0f %.2f %.2f %d %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status + summary.errors.read + summary.errors.timeout, summary.requests))
end
LUA

# exact -> "equal/compared": after `listsearch`, each of its reads (pages
# 1-50 in title order, the 100 terms) from the replica under test against a
# replica with every cache off on the same database, once the last write's
# invalidation has had time to arrive (300 ms, the differential test's bound).
exact() {
    BIBLIO_CACHE_MODE=off BIBLIO_RESPONSE_CACHE=off BIBLIO_BIND=127.0.0.1:$ORACLE_PORT $BIN serve &
    local oracle=$!
    wait_for "http://127.0.0.1:$ORACLE_PORT/healthz"
    sleep 0.3
    python3 - "$WORK" "$PORT" "$ORACLE_PORT" <<'PY'
import json, re, sys, urllib.request
work, port, oracle = sys.argv[1], sys.argv[2], sys.argv[3]
LIST = "query Books($page: Int!, $pageSize: Int!) { books(page: $page, pageSize: $pageSize) { items { id title price author { name } category { name } } totalCount totalPages page pageSize hasNextPage } }"
SEARCH = "query Search($q: String!) { searchBooks(query: $q, page: 1, pageSize: 20) { items { id title author { name } } totalCount } }"
terms = json.loads("[" + re.search(r"^terms = \{(.*)\}$", open(f"{work}/data.lua").read(), re.M).group(1) + "]")
def ask(p, query, variables):
    req = urllib.request.Request(f"http://127.0.0.1:{p}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"content-type": "application/json"})
    return json.load(urllib.request.urlopen(req))
reads = [(LIST, {"page": p, "pageSize": 20}) for p in range(1, 51)] + [(SEARCH, {"q": t}) for t in terms]
equal = sum(ask(port, q, v) == ask(oracle, q, v) for q, v in reads)
print(f"{equal}/{len(reads)}")
PY
    kill $oracle; wait $oracle 2>/dev/null || true
}

# loads -> "books search": the list pages and search pages the replica under
# test has loaded from the database so far (its /metrics).
loads() {
    curl -s "http://127.0.0.1:$PORT/metrics" | awk '
        /^biblio_cache_loads_total\{.*kind="books"/ { books = $NF }
        /^biblio_cache_loads_total\{.*kind="search"/ { search = $NF }
        END { printf "%d %d\n", books, search }'
}

# counters -> "answers redis failures": the response tier's hits, the Redis
# calls and the failed or timed-out ones of the replica under test so far.
counters() {
    curl -s "http://127.0.0.1:$PORT/metrics" | awk '
        /^biblio_cache_hits_total\{.*tier="response"/ { answers += $NF }
        /^biblio_redis_commands_total/ { redis += $NF }
        /^biblio_redis_(timeouts|errors)_total/ { failed += $NF }
        END { printf "%d %d %d\n", answers, redis, failed }'
}

run() { # run WORKLOAD SECONDS [DELAY_MS] -> "rps p50 p99 errors requests"
    WORKLOAD=$1 DELAY_MS=${3:-0} wrk -t$THREADS -c$CONNECTIONS -d${2}s --latency -s "$WORK/workloads.lua" \
        "http://127.0.0.1:$4/graphql" 2>&1 | awk '/^RESULT/ {print $2, $3, $4, $5, $6}'
}

if [ -n "${LOG_AB:-}" ]; then
    echo
    echo "== the access log: default start vs RUST_LOG=warn, book by id from the response tier, $THREADS wrk threads, $CONNECTIONS connections, ${DURATION}s each, stderr to ${LOG_SINK:-file}"
    echo
    echo "| round | start | req/s | p50 ms | p99 ms | errors | log written |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    declare -A AB_RPS=()
    for round in $(seq 1 "${ROUNDS:-2}"); do
        # Even rounds run the starts in reverse order, so that drift in the
        # machine's speed, and the kernel writing the previous start's log
        # out to disk, weigh on each alike.
        order="${BEFORE_BIN:+before} default warn"
        [ $((round % 2)) = 1 ] || order=$(tr ' ' '\n' <<<"$order" | tac | xargs)
        for variant in $order; do
            bin=$BIN log=info
            [ "$variant" = before ] && bin=$BEFORE_BIN
            [ "$variant" = warn ] && log=warn
            sink=$WORK/stderr.log
            [ "${LOG_SINK:-file}" = null ] && sink=/dev/null
            # RUST_LOG unset is the default start; warn leaves the access log out.
            if [ "$log" = warn ]; then
                BENCH_LOG=warn REPLICA_STDERR=$sink start_biblio both "$bin"
            else
                BENCH_LOG=default REPLICA_STDERR=$sink start_biblio both "$bin"
            fi
            run book "$WARMUP" 0 $PORT >/dev/null
            before_bytes=$(stat -c %s "$sink")
            read -r rps p50 p99 errors _ <<<"$(run book "$DURATION" 0 $PORT)"
            written=$(( $(stat -c %s "$sink") - before_bytes ))
            dropped=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^biblio_log_lines_dropped_total/ {print $2}')
            stop_biblio
            label=$variant
            case $variant in
                default) label="default (RUST_LOG unset)" ;;
                warn) label="RUST_LOG=warn" ;;
                before) label="default, BEFORE_BIN" ;;
            esac
            echo "| $round | $label | $rps | $p50 | $p99 | $errors | $((written / 1048576)) MiB${dropped:+, $dropped dropped} |"
            AB_RPS[$round/$variant]=$rps
        done
    done
    # Each round's cost is its own start against its own RUST_LOG=warn,
    # run minutes apart at most: the machine's drift between rounds cancels.
    echo
    echo "| start | cost per round (1 - req/s / warn's) | mean | median |"
    echo "|---|---|---:|---:|"
    for variant in ${BEFORE_BIN:+before} default; do
        costs=$(for round in $(seq 1 "${ROUNDS:-2}"); do
            python3 -c "print(f'{1 - ${AB_RPS[$round/$variant]} / ${AB_RPS[$round/warn]}:.4f}')"
        done | xargs)
        python3 - "$variant" $costs <<'PY'
import statistics, sys
variant, costs = sys.argv[1], [float(c) for c in sys.argv[2:]]
label = {"default": "default (RUST_LOG unset)", "before": "default, BEFORE_BIN"}[variant]
print(f"| {label} | {' / '.join(f'{c:.1%}' for c in costs)} | {statistics.mean(costs):.1%} | {statistics.median(costs):.1%} |")
PY
    done
    exit 0
fi

# Every topology asked for is started now and kept up until the end, so
# the baseline and every mode run with the same processes alive.
echo
for topology in $TOPOLOGIES; do
    case $topology in
        sentinel) start_sentinel ;;
        cluster) start_cluster ;;
    esac
done

echo
echo "== baseline: raw axum answering the book response's fixed bytes"
$BASELINE_BIN "$WORK/book-response.json" 127.0.0.1:$BASELINE_PORT &
BASE_PID=$!
sleep 0.5
read -r BASE_RPS BASE_P50 BASE_P99 _ _ <<<"$(run book "$DURATION" 0 $BASELINE_PORT)"
kill $BASE_PID; wait $BASE_PID 2>/dev/null || true
printf "baseline: %s req/s, p50 %s ms, p99 %s ms\n" "$BASE_RPS" "$BASE_P50" "$BASE_P99"

echo
echo "| mode | topology | workload | req/s | x baseline | x single | p50 ms | p99 ms | errors | exact | loaded: pages / searches | whole answers | Redis calls / req | Redis failures | load |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
declare -A SINGLE_RPS=()
FIRST_TOPOLOGY=${TOPOLOGIES%% *}
for mode in $MODES; do
    # `off` and `l1` never talk to Redis: they run once, whatever TOPOLOGIES says.
    topologies=$TOPOLOGIES
    case ${mode%-no-tier} in off | l1) topologies=$FIRST_TOPOLOGY ;; esac
    ROWS=()
    rounds=$TOPOLOGY_ROUNDS
    [ "$topologies" = "$TOPOLOGIES" ] || rounds=1
    for round in $(seq 1 "$rounds"); do
    order=$topologies
    # Even rounds run the topologies in reverse order: drift in the
    # machine's load then weighs on each alike.
    [ $((round % 2)) = 1 ] || order=$(tr ' ' '\n' <<<"$topologies" | tac | xargs)
    for TOPOLOGY in $order; do
        for bin in ${BEFORE_BIN:+"$BEFORE_BIN"} "$BIN"; do
            label=$mode
            [ "$bin" = "$BIN" ] || label="$mode (before)"
            start_biblio "$mode" "$bin"
            for workload in $WORKLOADS; do
                run "$workload" "$WARMUP" 0 $PORT >/dev/null
                loaded=$(loads)
                read -r answers0 redis0 failed0 <<<"$(counters)"
                read -r rps p50 p99 errors requests <<<"$(run "$workload" "$DURATION" 0 $PORT)"
                read -r answers1 redis1 failed1 <<<"$(counters)"
                # What the run did: the share answered whole by the response
                # tier, Redis calls per request, failed Redis calls, and the
                # machine's load at its end (it is shared).
                did=$(python3 -c "print(f'{($answers1 - $answers0) / max(1, $requests):.0%} | {($redis1 - $redis0) / max(1, $requests):.2f} | {$failed1 - $failed0} | {open(\"/proc/loadavg\").read().split()[0]}')")
                ratio=$(python3 -c "print(f'{$rps/$BASE_RPS:.3f}')")
                [ "$TOPOLOGY" != single ] || SINGLE_RPS[$label/$workload/$round]=$rps
                same= misses=
                if [ "$workload" = listsearch ]; then
                    # METRICS_DIR=DIR keeps each listsearch run's /metrics, to see
                    # where its misses came from (loads, refusals, flights).
                    [ -z "${METRICS_DIR:-}" ] || { mkdir -p "$METRICS_DIR" && curl -s "http://127.0.0.1:$PORT/metrics" \
                        >"$METRICS_DIR/listsearch-${label// /_}-$TOPOLOGY-$round.prom"; }
                    same=$(exact)
                    misses=$(python3 -c "
b0, s0 = map(int, '$loaded'.split()); b1, s1 = map(int, '$(loads)'.split())
print(f'{(b1 - b0) / (0.45 * $requests):.0%} / {(s1 - s0) / (0.50 * $requests):.0%}')")
                fi
                ROWS+=("$label|$TOPOLOGY|$workload|$rps|$ratio|$p50|$p99|$errors|$same|$misses|$round|$did")
            done
            if [ "$mode" = both ] && [ "$bin" = "$BIN" ] && [ "$TOPOLOGY" = "$FIRST_TOPOLOGY" ]; then
                RSS_AFTER=$(awk '/VmRSS/ {print $2}' /proc/$BIBLIO_PID/status)
            fi
            stop_biblio
        done
    done
    done
    # The mode's rows once every topology ran (in TOPOLOGIES' order, which
    # a repeat run can reverse), each with its ratio to single's.
    for row in "${ROWS[@]}"; do
        IFS='|' read -r label topology workload rps ratio p50 p99 errors same misses round did <<<"$row"
        [ "$topologies" = "$TOPOLOGIES" ] || topology="none (no Redis)"
        to_single=
        if [ "$topologies" = "$TOPOLOGIES" ] && [ -n "${SINGLE_RPS[$label/$workload/$round]:-}" ]; then
            to_single=$(python3 -c "print(f'{$rps/${SINGLE_RPS[$label/$workload/$round]}:.3f}')")
            echo "$label|$topology|$workload|$rps|$p99|$to_single" >>"$WORK/topologies.txt"
        fi
        [ "$rounds" = 1 ] || topology="$topology, round $round"
        echo "| $label | $topology | $workload | $rps | $ratio | $to_single | $p50 | $p99 | $errors | $same | $misses | $did |"
    done
done
# Over the rounds: each topology's mean req/s and median p99, and its
# ratio to single's (of the same round) as a mean and a range.
if [ "$TOPOLOGY_ROUNDS" != 1 ] && [ -s "$WORK/topologies.txt" ]; then
    echo
    echo "== over $TOPOLOGY_ROUNDS rounds (each round's ratio is to single's in the same round)"
    echo
    echo "| mode | topology | workload | req/s, mean | p99 ms, median | x single, mean | x single, range |"
    echo "|---|---|---|---:|---:|---:|---:|"
    python3 - "$WORK/topologies.txt" <<'PY2'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, topology, workload, rps, p99, ratio = line.strip().split("|")
    rows.setdefault((label, topology, workload), []).append((float(rps), float(p99), float(ratio)))
for (label, topology, workload), runs in rows.items():
    ratios = [r[2] for r in runs]
    print(f"| {label} | {topology} | {workload} | {statistics.mean(r[0] for r in runs):,.0f} | "
          f"{statistics.median(r[1] for r in runs):.2f} | {statistics.mean(ratios):.3f} | "
          f"{min(ratios):.3f} to {max(ratios):.3f} |")
PY2
fi
TOPOLOGY=$FIRST_TOPOLOGY
echo
echo "== after the table: $(load)"

if [[ " $MODES " == *" both "* ]]; then
    echo
    echo "== fixed rate: book by id at $RATE req/s (mode both, Redis $TOPOLOGY)"
    start_biblio both
    run book "$WARMUP" 0 $PORT >/dev/null
    delay=$(python3 -c "print(max(1, round(1000 * $CONNECTIONS / $RATE)))")
    read -r rps p50 p99 errors _ <<<"$(run book "$DURATION" "$delay" $PORT)"
    echo "rate $rps req/s: p50 $p50 ms, p99 $p99 ms, errors $errors"
    stop_biblio
    echo
    echo "== memory: resident size after the workloads in mode both (Redis $TOPOLOGY): $((RSS_AFTER / 1024)) MiB (L1 bound 64 MiB)"
fi

# The bus on a Cluster (issue 18): plain PUBLISH, which the node that runs
# it forwards to every other node over the cluster bus, against sharded
# SPUBLISH, which only the shard owning the channel's slot (its primary and
# replica) sees. Both are sent to that primary (biblio publishes from a
# script in one slot, so from one primary) by redis-benchmark, with
# PUBSUB_SUBSCRIBERS subscribers listening: on plain pub/sub spread over the
# three primaries (a replica subscribes wherever fred connects it), on
# sharded pub/sub all on the owning primary (where SSUBSCRIBE must go).
# `single` is the same on the single server. The CPU is what the Redis
# processes spent during the run (/proc utime + stime), over every node
# and over the nodes outside the publishing shard; `delivered` is what the
# subscribers received, as a share of what they were sent, counted once no
# node has anything left to send (`drained after`: how long after the last
# acknowledged publish that was) and before the subscribers are
# disconnected; `still connected` counts the subscriber connections Redis
# had not closed by then (a subscriber too slow for its output buffer
# limit is disconnected, and loses what it had not read).
cpu_ticks() { # cpu_ticks PID...: the processes' utime + stime, in clock ticks
    local total=0 pid fields
    for pid; do
        read -r -a fields <"/proc/$pid/stat"
        total=$((total + fields[13] + fields[14]))
    done
    echo $total
}
pubsub_row() { # pubsub_row LABEL PUBLISH-PORT COMMAND SUBSCRIBE SUBSCRIBER-PORTS CPU-PIDS OUTSIDE-PIDS
    local label=$1 port=$2 command=$3 subscribe=$4 sub_ports=($5) pids=($6) outside=($7) i=0 subs=() counts=()
    for sub_port in "${sub_ports[@]}"; do
        i=$((i + 1))
        rcli "$sub_port" "$subscribe" bench-bus 2>/dev/null | wc -l >"$WORK/pubsub-$i.count" &
        subs+=($!)
        counts+=("$WORK/pubsub-$i.count")
    done
    local numsub=NUMSUB
    [ "$subscribe" = SUBSCRIBE ] || numsub=SHARDNUMSUB
    until_true "$label: $i subscribers" sh -c "[ \$(for p in $(printf '%s\n' "${sub_ports[@]}" | sort -u | xargs); do
        redis-cli -p \$p PUBSUB $numsub bench-bus | tail -n1; done | awk '{ s += \$1 } END { print s }') = $i ]"
    sleep 0.5
    local ticks_before outside_before csv
    ticks_before=$(cpu_ticks "${pids[@]}")
    outside_before=0
    [ ${#outside[@]} = 0 ] || outside_before=$(cpu_ticks "${outside[@]}")
    csv=$(redis-benchmark -h 127.0.0.1 -p "$port" -c "$PUBSUB_CLIENTS" -n "$PUBSUB_MESSAGES" --csv \
        "$command" bench-bus "$PUBSUB_EVENT" | tail -n1)
    local drained
    drained=$(drain "${CLUSTER_PORTS[*]} $REDIS_PORT")
    local ticks outside_ticks=0
    ticks=$(( $(cpu_ticks "${pids[@]}") - ticks_before ))
    [ ${#outside[@]} = 0 ] || outside_ticks=$(( $(cpu_ticks "${outside[@]}") - outside_before ))
    local left
    left=$(for p in $(printf '%s\n' "${sub_ports[@]}" | sort -u); do rcli "$p" CLIENT LIST TYPE pubsub; done | grep -c . || true)
    # Each subscriber's redis-cli dies with its connection: the node closes it.
    for sub_port in "${sub_ports[@]}"; do rcli "$sub_port" CLIENT KILL TYPE pubsub >/dev/null; done
    for sub in "${subs[@]}"; do wait "$sub" 2>/dev/null || true; done
    local delivered=0
    # Raw output: three lines per message, and three for the confirmation.
    for count in "${counts[@]}"; do delivered=$((delivered + $(cat "$count") / 3 - 1)); done
    python3 - "$label" "$csv" "$ticks" "$outside_ticks" "$delivered" "${#sub_ports[@]}" "$(getconf CLK_TCK)" "$drained" "$left" <<'PY2'
import sys
label, row, ticks, outside, delivered, subscribers, hz, drained, left = sys.argv[1:]
# The command (the event's JSON) holds commas and quotes: the figures are the last seven.
rps, _, _, p50, _, p99, _ = (field.strip('"') for field in row.split(",")[-7:])
messages = int(__import__("os").environ["PUBSUB_MESSAGES"])
us = lambda t: 1e6 * int(t) / int(hz) / messages
print(f"| {label} | {float(rps):,.0f} | {p50} | {p99} | {us(ticks):.1f} | {us(outside):.1f} | "
      f"{int(delivered) / (messages * int(subscribers)):.1%} | {drained} | {left}/{subscribers} |")
PY2
}
# drain PORT...: waits (up to 20 s) until no node has a message left to
# send, to a subscriber (CLIENT LIST's oll and omem) or to another node over
# the cluster bus (CLUSTER LINKS' send-buffer-used); prints how long that
# took after the last publish was acknowledged, in ms.
drain() {
    local started=$EPOCHREALTIME
    for _ in $(seq 1 400); do
        local busy=0
        for p in $1; do
            if rcli "$p" CLIENT LIST TYPE pubsub | grep -qvE 'oll=0 omem=0'; then busy=1; break; fi
            if [ "$p" != "$REDIS_PORT" ] && rcli "$p" CLUSTER LINKS | grep -A1 -x send-buffer-used | grep -qvxE 'send-buffer-used|0|--'; then
                busy=1
                break
            fi
        done
        [ $busy = 1 ] || break
        sleep 0.05
    done
    python3 -c "print(round(1000 * ($EPOCHREALTIME - $started)))"
}
# pubsub_per_shard LABEL: sharded pub/sub with a channel per shard, each
# event sent to all three (an invalidation whose entries are in every
# shard, or a heartbeat proving every channel): three redis-benchmarks at
# once, one per primary, PUBSUB_MESSAGES each; every subscriber listens on
# the three channels (a connection per shard: SSUBSCRIBE takes one slot).
# messages/s is events/s (all three sent); p50 and p99 the worst of the three.
pubsub_per_shard() {
    local label=$1 i=0 n=0 subs=() counts=() csvs=() benches=()
    for s in $(seq 1 "$PUBSUB_SUBSCRIBERS"); do
        for shard in 0 1 2; do
            i=$((i + 1))
            rcli "${SHARD_PRIMARY[$shard]}" SSUBSCRIBE "${SHARD_CHANNEL[$shard]}" 2>/dev/null | wc -l >"$WORK/pubsub-$i.count" &
            subs+=($!)
            counts+=("$WORK/pubsub-$i.count")
        done
    done
    until_true "$label: $i subscriptions" sh -c "[ \$(for shard in 0 1 2; do
        redis-cli -p \$(echo ${SHARD_PRIMARY[*]} | cut -d' ' -f\$((shard + 1))) PUBSUB SHARDNUMSUB \$(echo ${SHARD_CHANNEL[*]} | cut -d' ' -f\$((shard + 1))) | tail -n1
        done | awk '{ s += \$1 } END { print s }') = $i ]"
    sleep 0.5
    local ticks_before started
    ticks_before=$(cpu_ticks "${CLUSTER_PIDS[@]}")
    started=$(date +%s.%N)
    for shard in 0 1 2; do
        redis-benchmark -h 127.0.0.1 -p "${SHARD_PRIMARY[$shard]}" -c "$PUBSUB_CLIENTS" -n "$PUBSUB_MESSAGES" --csv \
            SPUBLISH "${SHARD_CHANNEL[$shard]}" "$PUBSUB_EVENT" | tail -n1 >"$WORK/bench-$shard.csv" &
        benches+=($!)
        csvs+=("$WORK/bench-$shard.csv")
    done
    for bench in "${benches[@]}"; do wait "$bench"; done
    local elapsed ticks
    elapsed=$(python3 -c "import time; print(time.time() - $started)")
    local drained left
    drained=$(drain "${CLUSTER_PORTS[*]}")
    ticks=$(( $(cpu_ticks "${CLUSTER_PIDS[@]}") - ticks_before ))
    left=$(for p in "${SHARD_PRIMARY[@]}"; do rcli "$p" CLIENT LIST TYPE pubsub; done | grep -c . || true)
    for port in "${SHARD_PRIMARY[@]}"; do rcli "$port" CLIENT KILL TYPE pubsub >/dev/null; done
    for sub in "${subs[@]}"; do wait "$sub" 2>/dev/null || true; done
    local delivered=0
    for count in "${counts[@]}"; do delivered=$((delivered + $(cat "$count") / 3 - 1)); done
    python3 - "$label" "$elapsed" "$ticks" "$delivered" "$PUBSUB_SUBSCRIBERS" "$(getconf CLK_TCK)" "$drained" "$left" "${csvs[@]}" <<'PY2'
import os, sys
label, elapsed, ticks, delivered, subscribers, hz, drained, left, *csvs = sys.argv[1:]
messages = int(os.environ["PUBSUB_MESSAGES"])
rows = [[f.strip('"') for f in open(c).read().strip().split(",")[-7:]] for c in csvs]
p50 = max(float(r[3]) for r in rows)
p99 = max(float(r[5]) for r in rows)
print(f"| {label} | {messages / float(elapsed):,.0f} | {p50:.3f} | {p99:.3f} | "
      f"{1e6 * int(ticks) / int(hz) / messages:.1f} | n/a | {int(delivered) / (3 * messages * int(subscribers)):.1%} | "
      f"{drained} | {left}/{3 * int(subscribers)} |")
PY2
}
pubsub_cluster() {
    command -v redis-benchmark >/dev/null || { echo "the pub/sub measurement needs redis-benchmark (apt-get install redis-tools)" >&2; return; }
    local slot nodes owner owner_id shard=() outside=() primaries=() spread=() same=() single=()
    slot=$(rcli "${CLUSTER_PORTS[0]}" CLUSTER KEYSLOT bench-bus)
    nodes=$(rcli "${CLUSTER_PORTS[0]}" CLUSTER NODES)
    # The primary whose ranges hold the slot, and the primaries' ports.
    read -r owner_id owner <<<"$(awk -v slot="$slot" '$3 ~ /master/ {
        for (i = 9; i <= NF; i++) { split($i, r, "-"); if (r[2] == "") r[2] = r[1]
            if (slot >= r[1] && slot <= r[2]) { split($2, a, "[:@]"); print $1, a[2] } } }' <<<"$nodes")"
    primaries=($(awk '$3 ~ /master/ { split($2, a, "[:@]"); print a[2] }' <<<"$nodes"))
    for i in "${!CLUSTER_PORTS[@]}"; do
        local port=${CLUSTER_PORTS[$i]} id
        id=$(rcli "$port" CLUSTER MYID)
        if [ "$port" = "$owner" ] || grep -q "^$id .* $owner_id " <<<"$nodes"; then
            shard+=("${CLUSTER_PIDS[$i]}")
        else
            outside+=("${CLUSTER_PIDS[$i]}")
        fi
    done
    for i in $(seq 0 $((PUBSUB_SUBSCRIBERS - 1))); do
        spread+=("${primaries[$((i % 3))]}")
        same+=("$owner")
        single+=("$REDIS_PORT")
    done
    # A channel in each shard (hash tags chosen until each primary owns one).
    SHARD_PRIMARY=() SHARD_CHANNEL=()
    local tag=0
    while [ ${#SHARD_PRIMARY[@]} -lt 3 ] && [ $tag -lt 1000 ]; do
        local channel="bench-bus{$tag}" tagslot port
        tagslot=$(rcli "${CLUSTER_PORTS[0]}" CLUSTER KEYSLOT "$channel")
        port=$(awk -v slot="$tagslot" '$3 ~ /master/ {
            for (i = 9; i <= NF; i++) { split($i, r, "-"); if (r[2] == "") r[2] = r[1]
                if (slot >= r[1] && slot <= r[2]) { split($2, a, "[:@]"); print a[2] } } }' <<<"$nodes")
        if [[ " ${SHARD_PRIMARY[*]} " != *" $port "* ]]; then
            SHARD_PRIMARY+=("$port")
            SHARD_CHANNEL+=("$channel")
        fi
        tag=$((tag + 1))
    done
    export PUBSUB_MESSAGES
    PUBSUB_CLIENTS=${PUBSUB_CLIENTS:-8}
    # An invalidation event as biblio publishes it (one book, one group).
    PUBSUB_EVENT='{"origin":"0193c5e2-7a1b-7c3d-9e4f-5a6b7c8d9e0f","namespace":1,"at":"1765094400123456","keys":["bench1234both:v5:n1:{book:0193c5e2-8b2c-7d4e-8f5a-6b7c8d9e0f1a}"],"groups":[["books",48213]]}'
    echo
    echo "== the bus on the Cluster: $PUBSUB_MESSAGES messages of ${#PUBSUB_EVENT} bytes from redis-benchmark -c $PUBSUB_CLIENTS to the primary of bench-bus's slot ($slot, port $owner), $PUBSUB_SUBSCRIBERS subscribers"
    echo
    echo "($(load))"
    echo
    echo "| publish | messages/s | p50 ms | p99 ms | Redis CPU µs per message, all nodes | of which outside the publishing shard | delivered | drained within, ms | subscribers still connected |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for round in $(seq 1 "${PUBSUB_ROUNDS:-2}"); do
        pubsub_row "single server: PUBLISH (round $round)" "$REDIS_PORT" PUBLISH SUBSCRIBE "${single[*]}" "$SINGLE_PID" ""
        pubsub_row "Cluster: PUBLISH (round $round)" "$owner" PUBLISH SUBSCRIBE "${spread[*]}" "${CLUSTER_PIDS[*]}" "${outside[*]}"
        pubsub_row "Cluster: SPUBLISH (round $round)" "$owner" SPUBLISH SSUBSCRIBE "${same[*]}" "${CLUSTER_PIDS[*]}" "${outside[*]}"
        pubsub_per_shard "Cluster: SPUBLISH, a channel per shard, each event to all three (round $round)"
    done
}
if [[ " $TOPOLOGIES " == *" cluster "* ]] && [ "$PUBSUB" != 0 ]; then
    pubsub_cluster
fi
