// A real Apollo Client (v3) against a running biblio, speaking automatic
// persisted queries with hashed queries sent as GET:
//
//   node tests/client/apq.mjs http://127.0.0.1:8080/graphql
//
// Runs one query twice and then another, checks the answers and how each
// request went over the wire, and prints a JSON summary on stdout for the
// Rust test that runs it (tests/api/persisted.rs), which checks the server's
// side by its counters. Exits 1, saying why on stderr, if anything is off.
// Each run's queries carry an alias of their own, so every run starts with
// hashes the server has not seen, however often it is run.
// Install first: npm ci --prefix tests/client
import { createHash } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client/core/index.js";
import { createPersistedQueryLink } from "@apollo/client/link/persisted-queries/index.js";

const url = process.argv[2];
if (!url) {
  console.error("usage: node apq.mjs GRAPHQL_URL");
  process.exit(2);
}

function fail(message) {
  console.error(`apq.mjs: ${message}`);
  process.exit(1);
}

// What each request looked like on the wire, in order.
const requests = [];

async function recordingFetch(input, init = {}) {
  const method = (init.method ?? "GET").toUpperCase();
  const target = new URL(typeof input === "string" ? input : input.url);
  let extensions;
  let withQuery;
  if (method === "GET") {
    extensions = JSON.parse(target.searchParams.get("extensions") ?? "null");
    withQuery = target.searchParams.has("query");
  } else {
    const body = JSON.parse(init.body);
    extensions = body.extensions;
    withQuery = typeof body.query === "string";
  }
  const response = await fetch(input, init);
  requests.push({
    method,
    hashed: typeof extensions?.persistedQuery?.sha256Hash === "string",
    withQuery,
    status: response.status,
    cacheControl: response.headers.get("cache-control"),
  });
  return response;
}

const sha256 = (text) => createHash("sha256").update(text).digest("hex");

const client = new ApolloClient({
  link: createPersistedQueryLink({ sha256, useGETForHashedQueries: true }).concat(
    new HttpLink({ uri: url, fetch: recordingFetch }),
  ),
  cache: new InMemoryCache(),
});

// Only [a-z0-9]: it goes into an alias.
const nonce = createHash("sha256").update(`${process.pid}:${Date.now()}:${Math.random()}`).digest("hex").slice(0, 12);

const BOOKS = gql`
  query Books {
    run_${nonce}: __typename
    books(page: 1, pageSize: 5) {
      totalCount
      items {
        title
      }
    }
  }
`;
const STATISTICS = gql`
  query Statistics {
    run_${nonce}: __typename
    statistics {
      totalBooks
    }
  }
`;

async function run(query) {
  // network-only: every run must reach the server, not Apollo's cache.
  const result = await client.query({ query, fetchPolicy: "network-only" });
  if (result.errors?.length) fail(`errors: ${JSON.stringify(result.errors).slice(0, 300)}`);
  return result.data;
}

let first, second, statistics;
try {
  first = await run(BOOKS);
  second = await run(BOOKS);
  statistics = await run(STATISTICS);
} catch (error) {
  fail(`a query failed: ${String(error?.message ?? error).slice(0, 300)}`);
}

if (!isDeepStrictEqual(first, second)) fail("the same query answered differently twice");

// A hash alone goes as GET; the text goes as POST, only after a miss.
const expected = [
  { method: "GET", hashed: true, withQuery: false }, // Books: unknown
  { method: "POST", hashed: true, withQuery: true }, // Books: registered
  { method: "GET", hashed: true, withQuery: false }, // Books: known
  { method: "GET", hashed: true, withQuery: false }, // Statistics: unknown
  { method: "POST", hashed: true, withQuery: true }, // Statistics: registered
];
const seen = requests.map(({ method, hashed, withQuery }) => ({ method, hashed, withQuery }));
if (!isDeepStrictEqual(seen, expected)) {
  fail(`requests went as ${JSON.stringify(seen)}, not ${JSON.stringify(expected)}`);
}
for (const i of [0, 3]) {
  if (requests[i].cacheControl !== "private, no-cache, must-revalidate") {
    fail(`a miss came with Cache-Control ${JSON.stringify(requests[i].cacheControl)}`);
  }
}

console.log(
  JSON.stringify({
    books: { totalCount: first.books.totalCount, titles: first.books.items.map((b) => b.title) },
    statistics: { totalBooks: statistics.statistics.totalBooks },
    requests,
  }),
);
