// CORS as a browser enforces it: a page on ORIGIN_URL (which biblio was
// configured to allow) may call GRAPHQL_URL and read the answers and their
// ETag; a page on another origin may not.
//
//   node tests/browser/cors.mjs http://127.0.0.1:PORT http://127.0.0.1:PORT2/graphql
//
// This script serves both pages itself: an empty page on ORIGIN_URL's port,
// and one on a free port, which is another origin that was not configured.
// Requests are not intercepted here: with interception on, Playwright
// answers preflights itself and would hide what biblio answers.
import http from 'node:http';
import { check, fail, offlineBrowser, parseArgs, short } from './lib.mjs';

const { positional: [originUrl, graphqlUrl] } = parseArgs(['ORIGIN_URL', 'GRAPHQL_URL']);
const origin = new URL(originUrl);
check(origin.origin === originUrl.replace(/\/$/, ''), `ORIGIN_URL must be scheme://host:port, not ${short(originUrl)}`);

/** Serves an empty page on `port` (0: any free one); resolves to its origin. */
function servePage(port) {
  const server = http.createServer((_, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    response.end('<!doctype html><title>a frontend</title>');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, origin.hostname, () => {
      resolve({ server, origin: `${origin.protocol}//${origin.hostname}:${server.address().port}` });
    });
  });
}

// What a page does: each call's outcome, or that the browser refused it.
async function calls(graphqlUrl) {
  const query = '{ categories { name } }';
  const outcome = async (request) => {
    try {
      const response = await request();
      return { status: response.status, etag: response.headers.get('etag'), body: await response.json() };
    } catch (error) {
      return { blocked: String(error) };
    }
  };
  return {
    // JSON and Apollo Client's headers are not a simple request: the
    // browser sends a preflight first.
    post: await outcome(() =>
      fetch(graphqlUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'apollographql-client-name': 'browser-test',
          'apollographql-client-version': '1.0.0',
        },
        body: JSON.stringify({ query }),
      }),
    ),
    // A simple request: no preflight, only the answer's headers decide.
    get: await outcome(() =>
      fetch(`${graphqlUrl}?query=${encodeURIComponent(query)}`, {
        headers: { accept: 'application/graphql-response+json' },
      }),
    ),
    // A header biblio does not allow: only a real preflight answered by
    // biblio refuses it.
    unlisted: await outcome(() =>
      fetch(graphqlUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-not-allowed': '1' },
        body: JSON.stringify({ query }),
      }),
    ),
  };
}

const allowed = await servePage(Number(origin.port));
const other = await servePage(0);
const { browser, context, external } = await offlineBrowser({ intercept: false });
try {
  const page = await context.newPage();
  const from = async (pageOrigin) => {
    await page.goto(`${pageOrigin}/`);
    return page.evaluate(calls, graphqlUrl);
  };

  const mine = await from(allowed.origin);
  for (const name of ['post', 'get']) {
    const call = mine[name];
    check(!call.blocked, () => `${name} from ${allowed.origin} was blocked: ${call.blocked}`);
    check(call.status === 200, () => `${name} from ${allowed.origin} answered ${call.status}`);
    check(
      Array.isArray(call.body?.data?.categories),
      () => `${name} from ${allowed.origin}: no data in ${JSON.stringify(call.body).slice(0, 200)}`,
    );
    check(typeof call.etag === 'string' && call.etag.length > 2, `${name} from ${allowed.origin}: the ETag is not exposed`);
  }
  check(mine.unlisted.blocked, 'a header biblio does not allow got through: the preflight was not enforced');

  const theirs = await from(other.origin);
  for (const name of ['post', 'get', 'unlisted']) {
    check(theirs[name].blocked, `${name} from ${other.origin}, not configured, was readable`);
  }
  check(external.length === 0, () => `requests left this machine: ${external.slice(0, 3).map(short).join(', ')}`);
  console.log(`ok: ${allowed.origin} may read ${short(graphqlUrl)} and its ETag; ${other.origin} may not`);
} catch (error) {
  fail(error.message);
} finally {
  await browser.close();
  allowed.server.close();
  other.server.close();
}
