#!/usr/bin/env bash
# The costliest requests we could build within the default limits, measured
# with the server process's CPU clock (utime + stime from /proc, so other
# load on the machine does not count). Seeds the 10,000-book data set, starts
# a release build with default settings, sends each candidate REPEAT times
# with fresh arguments (so the cache never answers it) and prints the CPU
# time per request, the answer's status and size.
#
#   bash bench/worst_request.sh
set -euo pipefail
cd "$(dirname "$0")/.."

REPEAT=${REPEAT:-20}
PORT=18190
REDIS_PORT=${REDIS_PORT:-18389}
WORK=$(mktemp -d /tmp/biblio-worst.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

cargo build --release --quiet --bin biblio
BIN=${BIN:-target/release/biblio}
export DATABASE_URL="sqlite://$WORK/bench.db?mode=rwc"
export RUST_LOG=warn
$BIN seed --authors 2000 --books 10000 --members 1000 --borrows 30000 --seed 42 | head -1

redis-server --port $REDIS_PORT --save "" --appendonly no --daemonize no >/dev/null &
sleep 0.3
BIBLIO_BIND=127.0.0.1:$PORT REDIS_URL=redis://127.0.0.1:$REDIS_PORT $BIN serve &
PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done

python3 - "$PORT" "$PID" "$REPEAT" <<'PY'
import json, os, sys, urllib.request, urllib.error
port, pid, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tick = os.sysconf("SC_CLK_TCK")

def cpu():
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick

def post(query):
    body = json.dumps({"query": query}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", body,
                                 {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()

introspection = open("tests/api/fixtures/introspection.graphql").read()

def aliases(n, field):
    return "{ " + " ".join(f"a{i}: {field(i)}" for i in range(n)) + " }"

candidates = {
    "14 aliased searchBooks, distinct terms":
        lambda r: aliases(14, lambda i: f'searchBooks(query: "e{r}x{i}") {{ totalCount items {{ title }} }}'),
    "14 aliased searchBooks of common letters, pageSize 5":
        lambda r: aliases(14, lambda i: f'searchBooks(query: "{chr(97 + (i + r) % 26)}", pageSize: 5, page: {r + 1}) {{ totalCount items {{ title author {{ name }} }} }}'),
    "14 aliased filtered book pages":
        lambda r: aliases(14, lambda i: f'books(filter: {{ minPrice: "{r}.{i:02d}" }}, orderBy: PRICE_DESC, pageSize: 5) {{ totalCount items {{ title author {{ name }} category {{ name }} }} }}'),
    "a page of 100 books with authors' and categories' counts":
        lambda r: f'{{ books(page: {r + 1}, pageSize: 100, orderBy: NEWEST) {{ items {{ title isbn price author {{ name bookCount }} category {{ name bookCount }} }} }} }}',
    "authors with their books, complexity near 5000":
        lambda r: f'{{ authors(page: {r + 1}, pageSize: 40) {{ items {{ name books(pageSize: 40) {{ items {{ title price }} }} }} }} }}',
    "statistics":
        lambda r: "{ statistics { totalBooks activeBorrows averagePrice booksByCategory { count category { name } } } }",
    "the introspection query GraphiQL sends":
        lambda r: introspection,
    "refused: fragment ladder of 45 (2^45 fields expanded)":
        lambda r: "{ ...F0 }\n" + "".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}\n" for i in range(45)) + f"fragment F45 on Query {{ books {{ totalCount }} }} # {r}",
    "refused: brackets nested 20,000 deep":
        lambda r: "{ __typename(x: " + "[" * 20000 + str(r) + "]" * 20000 + ") }",
    "refused: 4,001 tokens":
        lambda r: "{ " + "__typename " * 3999 + f"a{r}: __typename }}",
    "one login (argon2)":
        lambda r: f'mutation {{ login(email: "member{r + 1}@biblio.test", password: "wrong") {{ token }} }}',
}

print(f"{'request':60} {'status':>6} {'bytes':>8} {'CPU ms/request':>15}")
for name, build in candidates.items():
    status, size = None, 0
    before = cpu()
    for r in range(repeat):
        status, body = post(build(r))
        size = len(body)
    spent = (cpu() - before) / repeat * 1000
    print(f"{name:60} {status:>6} {size:>8} {spent:>15.2f}")
PY
