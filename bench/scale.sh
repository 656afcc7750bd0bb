#!/usr/bin/env bash
# Scale benchmark (issue 16): seeds 10k, 100k and 1M books on SQLite and
# PostgreSQL (`biblio seed --authors N/5 --books N --members N/10 --borrows 3N
# --seed 42`, timed), serves each with every cache off (`--cache-mode off
# --response-cache off`), and prints, per database, a markdown table of the
# median of RUNS one-at-a-time requests (after one untimed request of each,
# so the database's pages are in memory) for each size.
#
#   bash bench/scale.sh
#   SIZES="10000 100000" DATABASES=sqlite bash bench/scale.sh
#   BIN=/tmp/biblio-main bash bench/scale.sh      # a prebuilt binary (of main, say)
#
# PostgreSQL: PG_URL names a server and a database to connect to while
# creating and dropping the benchmark's own (biblio_scale_<N>).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-"10000 100000 1000000"}
DATABASES=${DATABASES:-"sqlite postgres"}
RUNS=${RUNS:-5}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
PORT=${PORT:-18190}
REDIS_PORT=${REDIS_PORT:-18391}
WORK=$(mktemp -d /tmp/biblio-scale.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet --bin biblio
    BIN=target/release/biblio
fi
# Quiet migrations and seeds; the service itself logs as by default (below).
export RUST_LOG=warn
export BIBLIO_SEED_PASSWORD=bench-password

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/ {print $2}') GiB; binary: $BIN"

# The cache is off, but the service still starts its Redis clients.
redis-server --port "$REDIS_PORT" --save "" --appendonly no --daemonize no >/dev/null &
sleep 0.3

database_url() { # database_url DATABASE SIZE
    if [ "$1" = sqlite ]; then
        echo "sqlite://$WORK/scale-$2.db?mode=rwc"
    else
        echo "${PG_URL%/*}/biblio_scale_$2"
    fi
}

fresh_database() { # fresh_database DATABASE SIZE
    if [ "$1" = sqlite ]; then
        rm -f "$WORK/scale-$2.db"*
    else
        psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS biblio_scale_$2" -c "CREATE DATABASE biblio_scale_$2" 2>/dev/null
    fi
}

wait_for() { for _ in $(seq 1 300); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

for database in $DATABASES; do
    for size in $SIZES; do
        url=$(database_url "$database" "$size")
        fresh_database "$database" "$size"
        # Migrations are not part of the seed's time.
        "$BIN" --database-url "$url" migrate >/dev/null
        started=$(date +%s%N)
        "$BIN" --database-url "$url" seed --authors $((size / 5)) --books "$size" \
            --members $((size / 10)) --borrows $((size * 3)) --seed 42 >/dev/null
        seconds=$(python3 -c "print(($(date +%s%N) - $started) / 1e9)")
        # Served as users run it: the access log on (RUST_LOG unset), its
        # lines to a file; BENCH_LOG=warn starts it with RUST_LOG=warn.
        env -u RUST_LOG ${BENCH_LOG:+RUST_LOG=$BENCH_LOG} \
            BIBLIO_CACHE_MODE=off BIBLIO_RESPONSE_CACHE=off BIBLIO_BIND=127.0.0.1:$PORT \
            REDIS_URL=redis://127.0.0.1:$REDIS_PORT DATABASE_URL="$url" "$BIN" serve \
            2>"$WORK/serve-$database-$size.log" &
        pid=$!
        wait_for "http://127.0.0.1:$PORT/healthz"
        python3 - "$PORT" "$size" "$RUNS" "$seconds" >"$WORK/$database-$size.json" <<'PY'
import json, statistics, sys, time, urllib.request
port, size, runs, seed_seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
def post(query, variables=None, token=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"content-type": "application/json", **({"authorization": f"Bearer {token}"} if token else {})})
    started = time.perf_counter()
    body = json.load(urllib.request.urlopen(req, timeout=600))
    elapsed = time.perf_counter() - started
    assert "errors" not in body, body
    return body["data"], elapsed
login = "mutation($e:String!,$p:String!){login(email:$e,password:$p){token}}"
token = post(login, {"e": "member1@biblio.test", "p": "bench-password"})[0]["login"]["token"]
author = post("{ authors(page: 1, pageSize: 1) { items { id } } }")[0]["authors"]["items"][0]["id"]
ITEMS = "totalCount items { id title price author { name } category { name } }"
EDGES = "totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id title price author { name } category { name } } }"
deep = max(1, int(size * 0.4) // 20)
import base64, hashlib, uuid
def varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7f, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)
def text(s):
    return varint(len(s.encode())) + s.encode()
def cursor(order, key, book_id):
    """The cursor the service gives the book (src/domain/cursor.rs, version 1), unfiltered list."""
    listing = f"books|order={order}|author=|category=|min=|max=|from=|to=|available="
    fingerprint = int.from_bytes(hashlib.sha256(listing.encode()).digest()[:8], "little")
    body = bytes([1]) + varint(fingerprint)
    if order == "TitleAsc":
        body += varint(0) + text(key)
    else:
        year, title = key
        body += varint(2) + (b"\x00" if year is None else b"\x01" + varint((year << 1) ^ (year >> 31))) + text(title)
    return base64.urlsafe_b64encode(body + varint(16) + uuid.UUID(book_id).bytes).rstrip(b"=").decode()
# The books 40% deep in title order and in PUBLISHED_DESC, found by page number (untimed).
at = post(f"{{ books(page: {deep}, pageSize: 1) {{ items {{ id title }} }} }}")[0]["books"]["items"][0]
title_cursor = cursor("TitleAsc", at["title"], at["id"])
at = post(f"{{ books(page: {deep}, pageSize: 1, orderBy: PUBLISHED_DESC) {{ items {{ id title publishedYear }} }} }}")[0]["books"]["items"][0]
published_cursor = cursor("PublishedDesc", (at["publishedYear"], at["title"]), at["id"])
requests = [
    ("`books(page: 1, pageSize: 20)` with totalCount, author, category", f"{{ books(page: 1, pageSize: 20) {{ {ITEMS} }} }}", {}, None),
    ("`books` page at 40% depth", f"{{ books(page: {deep}, pageSize: 20) {{ {ITEMS} }} }}", {}, None),
    ("`booksConnection(first: 20, after)`, a cursor at 40% depth", f"query($c: String) {{ booksConnection(first: 20, after: $c) {{ {EDGES} }} }}", {"c": title_cursor}, None),
    ("`booksConnection(last: 20, before)`, a cursor at 40% depth", f"query($c: String) {{ booksConnection(last: 20, before: $c) {{ {EDGES} }} }}", {"c": title_cursor}, None),
    ("`booksConnection(first: 20, after, orderBy: PUBLISHED_DESC)`, 40% depth", f"query($c: String) {{ booksConnection(first: 20, after: $c, orderBy: PUBLISHED_DESC) {{ {EDGES} }} }}", {"c": published_cursor}, None),
    ("`books(filter: {minPrice: \"50.00\", available: true}, orderBy: PRICE_ASC)`", f"{{ books(filter: {{minPrice: \"50.00\", available: true}}, orderBy: PRICE_ASC) {{ {ITEMS} }} }}", {}, None),
    ("`searchBooks(\"garden\")`", f"{{ searchBooks(query: \"garden\") {{ {ITEMS} }} }}", {}, None),
    ("`searchBooks(\"umarov\")` (a surname: its matches are by author)", f"{{ searchBooks(query: \"umarov\") {{ {ITEMS} }} }}", {}, None),
    ("`searchBooks(\"zqx\")` (no match)", f"{{ searchBooks(query: \"zqx\") {{ {ITEMS} }} }}", {}, None),
    ("`searchBooks(\"ar\")` (two characters: the scan)", f"{{ searchBooks(query: \"ar\") {{ {ITEMS} }} }}", {}, None),
    ("`statistics`", "{ statistics { totalBooks totalAuthors totalCategories totalMembers activeBorrows averagePrice booksByCategory { category { name } count } } }", {}, None),
    ("`author(id) { books }`", f"query($id: ID!) {{ author(id: $id) {{ name books {{ {ITEMS} }} }} }}", {"id": author}, None),
    ("`myBorrows` (signed in)", "{ myBorrows { totalCount items { id borrowedAt book { title } } } }", {}, token),
]
medians = {}
for name, query, variables, auth in requests:
    post(query, variables, auth)
    times = [post(query, variables, auth)[1] for _ in range(runs)]
    medians[name] = statistics.median(times) * 1000
medians["`biblio seed`"] = seed_seconds * 1000
print(json.dumps(medians))
PY
        kill "$pid"; wait "$pid" 2>/dev/null || true
        [ "$database" = postgres ] && psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS biblio_scale_$size" 2>/dev/null
        rm -f "$WORK/scale-$size.db"*
        echo "measured $database at $size books" >&2
    done
    python3 - "$WORK" "$database" $SIZES <<'PY'
import json, sys
work, database, sizes = sys.argv[1], sys.argv[2], sys.argv[3:]
tables = [json.load(open(f"{work}/{database}-{size}.json")) for size in sizes]
def show(name, ms):
    if name == "`biblio seed`":
        return f"{ms / 1000:.1f} s"
    return f"{ms:,.1f} ms" if ms < 100 else f"{ms:,.0f} ms"
print(f"\n{database}, release build, cache and response tier off, median of the runs:\n")
print("| uncached request | " + " | ".join(f"{int(size):,} books" for size in sizes) + " |")
print("| --- |" + " ---: |" * len(sizes))
for name in tables[0]:
    print(f"| {name} | " + " | ".join(show(name, table[name]) for table in tables) + " |")
PY
done
