// The live dashboard in a browser, with the network off: the page at URL
// signs in, shows every replica, draws while load runs, and its figures
// match what the replicas' /metrics say once the load stops.
//
//   node tests/browser/dashboard.mjs http://127.0.0.1:PORT/dashboard \
//     --replicas http://127.0.0.1:PORT,http://127.0.0.1:PORT2 \
//     (--email E --password P | --operator-token T) \
//     [--load-seconds 8] [--screenshot FILE]
//
// --replicas: every replica's base URL (the load goes to each, and their
// /metrics are summed); the page must show one card per replica. The load
// is sent from here, not the page, so the page's own requests (its sign-in
// included) are the only other ones /metrics counts, and they happen
// before the comparison. Exits 0 when every check held.
import fs from 'node:fs';
import path from 'node:path';
import { check, fail, offlineBrowser, parseArgs, short, TARGET } from './lib.mjs';

const { positional: [url], options } = parseArgs(['URL']);
check(options.replicas, 'give --replicas URL[,URL...]');
const replicas = options.replicas.split(',');
const screenshot = options.screenshot || path.join(TARGET, 'browser', 'dashboard.png');
const loadSeconds = Number(options['load-seconds'] || 8);
const timeout = 30_000;

/** Every sample of `name` whose labels include `labels`, summed. */
function sum(text, name, labels = {}) {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const wanted = Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`));
    if (wanted) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/** Requests and response-tier hits over every replica, from /metrics. */
async function scrape() {
  let requests = 0;
  let responseHits = 0;
  let l1Hits = 0;
  for (const replica of replicas) {
    const response = await fetch(`${replica}/metrics`);
    check(response.ok, () => `${short(replica)}/metrics answered ${response.status}`);
    const text = await response.text();
    requests += sum(text, 'biblio_graphql_requests_total');
    responseHits += sum(text, 'biblio_cache_hits_total', { tier: 'response' });
    l1Hits += sum(text, 'biblio_cache_hits_total', { tier: 'l1' });
  }
  return { requests, responseHits, l1Hits };
}

/** A GraphQL query sent from here (not the page). */
async function query(replica, text) {
  const response = await fetch(`${replica}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: text }),
  });
  check(response.ok, () => `a load query answered ${response.status}`);
  await response.arrayBuffer();
}

const { browser, context, external } = await offlineBrowser({ viewport: { width: 1280, height: 800 } });
try {
  const page = await context.newPage();
  const scriptErrors = [];
  page.on('pageerror', (error) => scriptErrors.push(error.message));
  // What the page shows: a figure's raw value, or its text.
  const figure = (name) =>
    page.evaluate((name) => {
      const element = document.querySelector(`[data-metric="${name}"]`);
      if (!element) return null;
      return element.dataset.value !== undefined ? Number(element.dataset.value) : element.textContent;
    }, name);

  const response = await page.goto(url, { timeout });
  check(response && response.ok(), () => `GET ${short(url)} answered ${response && response.status()}`);
  await page
    .locator('#signin')
    .waitFor({ state: 'visible', timeout })
    .catch(() => fail('the sign-in form never showed'));

  if (options['operator-token']) {
    await page.locator('#signin summary').click();
    await page.fill('#operator', options['operator-token']);
  } else {
    check(options.email && options.password, 'give --email and --password, or --operator-token');
    await page.fill('#email', options.email);
    await page.fill('#password', options.password);
  }
  await page.locator('#signin button[type=submit]').click();
  await page
    .locator('#board')
    .waitFor({ state: 'visible', timeout })
    .catch(async () =>
      fail(`the board never showed; the form says: ${(await page.textContent('#signin-error')) || 'nothing'}`),
    );
  await page
    .waitForFunction((n) => document.querySelectorAll('#replicas .replica').length === n, replicas.length, { timeout })
    .catch(async () =>
      fail(`the page shows ${await page.locator('#replicas .replica').count()} replicas, not ${replicas.length}`),
    );

  // Load that grows and eases off, so the sparklines have a shape: each
  // tick sends the same query (the response tier answers all but the
  // first) and one not sent before, to every replica.
  let highestRate = 0;
  const ticks = loadSeconds * 4;
  for (let tick = 0; tick < ticks; tick++) {
    const burst = 1 + Math.round(6 * Math.sin((Math.PI * tick) / ticks));
    for (const replica of replicas) {
      const sent = [];
      for (let i = 0; i < burst; i++) sent.push(query(replica, '{ categories { name } }'));
      // A new document (the alias) over the same list: the response tier
      // misses, L1 answers.
      sent.push(query(replica, `{ tick${tick}: categories { name } }`));
      await Promise.all(sent);
    }
    highestRate = Math.max(highestRate, Number(await figure('total.rps')) || 0);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  check(highestRate > 0, 'requests/s never showed above zero while the load ran');
  // One poll after the load, so the picture shows it.
  await page.waitForTimeout(1200);
  fs.mkdirSync(path.dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot });

  // The load has stopped: the page's totals must come to what /metrics
  // says (other replicas' snapshots arrive within their interval).
  let shown;
  let scraped;
  const deadline = Date.now() + timeout;
  for (;;) {
    scraped = await scrape();
    shown = {
      requests: await figure('total.requests'),
      responseHits: await figure('tier.response.hits'),
      l1Hits: await figure('tier.l1.hits'),
    };
    if (JSON.stringify(shown) === JSON.stringify(scraped)) break;
    if (Date.now() > deadline) {
      fail(`the page shows ${JSON.stringify(shown)} but /metrics says ${JSON.stringify(scraped)}`);
    }
    await page.waitForTimeout(250);
  }
  check(scraped.requests > 0 && scraped.responseHits > 0 && scraped.l1Hits > 0, () => `nothing counted: ${JSON.stringify(scraped)}`);

  // Every other figure shows something real.
  const perReplica = await page.$$eval('#replicas .replica [data-metric="replica.requests"]', (elements) =>
    elements.map((element) => Number(element.dataset.value)),
  );
  check(
    perReplica.length === replicas.length && perReplica.every((n) => n > 0),
    () => `some replica shows no requests: ${JSON.stringify(perReplica)}`,
  );
  for (const name of ['total.p50', 'total.p99', 'total.l1-bytes', 'tier.response.rate', 'redis.version', 'redis.memory']) {
    const text = await page.evaluate((name) => document.querySelector(`[data-metric="${name}"]`)?.textContent, name);
    check(text && text !== '–' && !/^0(\.0)?\s?(B|%|µs)?$/.test(text), () => `${name} shows ${JSON.stringify(text)}`);
  }
  for (const name of ['status', 'redis.state', 'db.state']) {
    const text = await page.textContent(`[data-metric="${name}"]`);
    check(['ready', 'up'].includes(text), () => `${name} shows ${JSON.stringify(text)}`);
  }
  check((await figure('db.max')) > 0, 'the database pool is not shown');
  const sparkPaths = await page.$$eval('svg.spark path', (paths) => paths.length);
  check(sparkPaths >= 4, `only ${sparkPaths} sparkline paths were drawn`);

  check(scriptErrors.length === 0, () => `the page threw: ${scriptErrors.join(' | ').slice(0, 300)}`);
  check(
    external.length === 0,
    () => `the page tried ${external.length} request(s) off this machine: ${external.slice(0, 3).map(short).join(', ')}`,
  );
  console.log(
    `ok: the dashboard shows ${replicas.length} replicas, ${scraped.requests} requests and ` +
      `${scraped.responseHits} response-tier hits as /metrics does; screenshot at ${screenshot}`,
  );
} finally {
  await browser.close();
}
