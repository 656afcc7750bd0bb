#!/usr/bin/env bash
# Load test: seeds the 10,000-book data set, starts a release build of biblio
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
#   LOG_AB=1 bash bench/run.sh        # what the access log costs
#   DATABASE=postgres bash bench/run.sh
#
# DATABASE=postgres runs every replica on PostgreSQL instead of SQLite: a
# database of its own on $PGHOST:$PGPORT (default 127.0.0.1:5432, user
# postgres), created for the run and dropped after it.
#
# LOG_AB=1 measures logging instead of the table: book by id, answered by
# the response tier, with the default start (RUST_LOG unset: the access
# log at info) against RUST_LOG=warn (no access log), alternated twice
# (ROUNDS), each replica's stderr going to a file as a log collector's
# would. With BEFORE_BIN, that build's default start joins each round.
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
WORKLOADS=${WORKLOADS:-"book list search statistics borrows mixed revalidate listsearch"}
PORT=${PORT:-18180}
BASELINE_PORT=${BASELINE_PORT:-18181}
ORACLE_PORT=${ORACLE_PORT:-18182}
REDIS_PORT=${REDIS_PORT:-18379}
DATABASE=${DATABASE:-sqlite}
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
command -v redis-server >/dev/null || { echo "redis-server is needed (apt-get install redis-server)" >&2; exit 1; }

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
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/ {print $2}') GiB"
# One known password for every seeded account, so the inputs below can sign in.
export BIBLIO_SEED_PASSWORD=bench-password
$BIN seed --authors 2000 --books 10000 --members 1000 --borrows 30000 --seed 42 | head -1

redis-server --port $REDIS_PORT --save "" --appendonly no --daemonize no >/dev/null &
sleep 0.3

wait_for() { for _ in $(seq 1 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

gql() { # gql QUERY-JSON [TOKEN]
    curl -s "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' \
        ${2:+-H "authorization: Bearer $2"} -d "$1"
}

start_biblio() { # start_biblio MODE [BINARY] (the inputs sign in 101 users from one address: lift that throttle)
    # With DEFAULT_LOG=1, RUST_LOG is unset for the replica: the default start.
    local cache=${1%-no-tier} tier=on bin=${2:-$BIN} unset=()
    [ "$1" = "$cache" ] || tier=off
    [ -z "${DEFAULT_LOG:-}" ] || unset=(env -u RUST_LOG)
    BIBLIO_LOGIN_ATTEMPTS_PER_ADDRESS=100000 BIBLIO_CACHE_MODE=$cache BIBLIO_RESPONSE_CACHE=$tier \
        BIBLIO_CACHE_PREFIX="bench$RANDOM$cache" BIBLIO_BIND=127.0.0.1:$PORT \
        REDIS_URL=redis://127.0.0.1:$REDIS_PORT "${unset[@]}" $bin serve &
    BIBLIO_PID=$!
    wait_for "http://127.0.0.1:$PORT/healthz"
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

run() { # run WORKLOAD SECONDS [DELAY_MS] -> "rps p50 p99 errors requests"
    WORKLOAD=$1 DELAY_MS=${3:-0} wrk -t$THREADS -c$CONNECTIONS -d${2}s --latency -s "$WORK/workloads.lua" \
        "http://127.0.0.1:$4/graphql" 2>&1 | awk '/^RESULT/ {print $2, $3, $4, $5, $6}'
}

if [ -n "${LOG_AB:-}" ]; then
    echo
    echo "== the access log: default start vs RUST_LOG=warn, book by id from the response tier, $THREADS wrk threads, $CONNECTIONS connections, ${DURATION}s each"
    echo
    echo "| round | start | req/s | p50 ms | p99 ms | errors | log written |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    for round in $(seq 1 "${ROUNDS:-2}"); do
        for variant in ${BEFORE_BIN:+before} default warn; do
            bin=$BIN log=info
            [ "$variant" = before ] && bin=$BEFORE_BIN
            [ "$variant" = warn ] && log=warn
            : >"$WORK/stderr.log"
            # RUST_LOG unset is the default start; warn leaves the access log out.
            if [ "$log" = warn ]; then
                start_biblio both "$bin" 2>>"$WORK/stderr.log"
            else
                DEFAULT_LOG=1 start_biblio both "$bin" 2>>"$WORK/stderr.log"
            fi
            run book "$WARMUP" 0 $PORT >/dev/null
            before_bytes=$(stat -c %s "$WORK/stderr.log")
            read -r rps p50 p99 errors _ <<<"$(run book "$DURATION" 0 $PORT)"
            written=$(( $(stat -c %s "$WORK/stderr.log") - before_bytes ))
            dropped=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^biblio_log_lines_dropped_total/ {print $2}')
            stop_biblio
            label=$variant
            case $variant in
                default) label="default (RUST_LOG unset)" ;;
                warn) label="RUST_LOG=warn" ;;
                before) label="default, BEFORE_BIN" ;;
            esac
            echo "| $round | $label | $rps | $p50 | $p99 | $errors | $((written / 1048576)) MiB${dropped:+, $dropped dropped} |"
        done
    done
    exit 0
fi

echo
echo "== baseline: raw axum answering the book response's fixed bytes"
$BASELINE_BIN "$WORK/book-response.json" 127.0.0.1:$BASELINE_PORT &
BASE_PID=$!
sleep 0.5
read -r BASE_RPS BASE_P50 BASE_P99 _ _ <<<"$(run book "$DURATION" 0 $BASELINE_PORT)"
kill $BASE_PID; wait $BASE_PID 2>/dev/null || true
printf "baseline: %s req/s, p50 %s ms, p99 %s ms\n" "$BASE_RPS" "$BASE_P50" "$BASE_P99"

echo
echo "| mode | workload | req/s | x baseline | p50 ms | p99 ms | errors | exact | loaded: pages / searches |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
for mode in $MODES; do
    for bin in ${BEFORE_BIN:+"$BEFORE_BIN"} "$BIN"; do
        label=$mode
        [ "$bin" = "$BIN" ] || label="$mode (before)"
        start_biblio "$mode" "$bin"
        for workload in $WORKLOADS; do
            run "$workload" "$WARMUP" 0 $PORT >/dev/null
            loaded=$(loads)
            read -r rps p50 p99 errors requests <<<"$(run "$workload" "$DURATION" 0 $PORT)"
            ratio=$(python3 -c "print(f'{$rps/$BASE_RPS:.3f}')")
            same= misses=
            if [ "$workload" = listsearch ]; then
                same=$(exact)
                misses=$(python3 -c "
b0, s0 = map(int, '$loaded'.split()); b1, s1 = map(int, '$(loads)'.split())
print(f'{(b1 - b0) / (0.45 * $requests):.0%} / {(s1 - s0) / (0.50 * $requests):.0%}')")
            fi
            echo "| $label | $workload | $rps | $ratio | $p50 | $p99 | $errors | $same | $misses |"
        done
        if [ "$mode" = both ] && [ "$bin" = "$BIN" ]; then
            RSS_AFTER=$(awk '/VmRSS/ {print $2}' /proc/$BIBLIO_PID/status)
        fi
        stop_biblio
    done
done

if [[ " $MODES " == *" both "* ]]; then
    echo
    echo "== fixed rate: book by id at $RATE req/s (mode both)"
    start_biblio both
    run book "$WARMUP" 0 $PORT >/dev/null
    delay=$(python3 -c "print(max(1, round(1000 * $CONNECTIONS / $RATE)))")
    read -r rps p50 p99 errors _ <<<"$(run book "$DURATION" "$delay" $PORT)"
    echo "rate $rps req/s: p50 $p50 ms, p99 $p99 ms, errors $errors"
    stop_biblio
    echo
    echo "== memory: resident size after the workloads in mode both: $((RSS_AFTER / 1024)) MiB (L1 bound 64 MiB)"
fi
