#!/usr/bin/env bash
# Two release replicas on one SQLite file and the local Redis (127.0.0.1:6379),
# wrk against each for 5 s, then `biblio cache stats` and a /metrics excerpt:
# what an operator sees after load. Usage: bash bench/stats_demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin biblio
D=$(mktemp -d /tmp/statsdemo.XXXX)
export DATABASE_URL="sqlite://$D/b.db?mode=rwc" RUST_LOG=warn
BIN=target/release/biblio
$BIN seed --authors 200 --books 2000 --members 50 --borrows 500 --seed 7 --password-for-all demo-password >/dev/null
for p in 18281 18282; do BIBLIO_BIND=127.0.0.1:$p $BIN serve & done
sleep 2
cat > $D/w.lua <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local q
  if math.random(2) == 1 then
    q = '{"query":"query Books($page: Int!) { books(page: $page, pageSize: 20) { items { id title author { name } } totalCount } }","variables":{"page":' .. math.random(50) .. '}}'
  else
    q = '{"query":"query Stats { statistics { totalBooks averagePrice } }"}'
  end
  return wrk.format(nil, "/graphql", nil, q)
end
LUA
wrk -t1 -c16 -d5s -s $D/w.lua http://127.0.0.1:18281/graphql | grep "Requests/sec"
wrk -t1 -c16 -d5s -s $D/w.lua http://127.0.0.1:18282/graphql | grep "Requests/sec"
sleep 3
echo "----- biblio cache stats"
$BIN cache stats
echo "----- /metrics excerpt"
curl -s http://127.0.0.1:18281/metrics | grep -E '^biblio_cache_hits_total\{tier="(response|l1)",kind="(answer|book)"|^biblio_graphql_requests_total|^biblio_cache_events_total|^biblio_redis_round_trips_total|^biblio_db_statements_total' | head -20
kill $(jobs -p); wait 2>/dev/null || true
rm -rf "$D"
