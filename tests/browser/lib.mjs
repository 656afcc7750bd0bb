// What the browser checks share: Debian's Chromium, headless, with every
// request that leaves this machine refused and remembered, and one way to
// fail that says what went wrong.
import { chromium } from 'playwright-core';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CHROMIUM = process.env.BIBLIO_CHROMIUM || '/usr/bin/chromium';

/** The repository's target/ directory, where screenshots go. */
export const TARGET = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../target');

/** Exits with a one-line reason; tests/api/browser.rs shows stderr. */
export function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

/** Fails unless `condition`; `message` may be a function, for messages
 * that can only be built when the check failed. */
export function check(condition, message) {
  if (!condition) fail(typeof message === 'function' ? message() : message);
}

/** Positional arguments, then `--name value` options. */
export function parseArgs(names) {
  const positional = [];
  const options = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith('--')) options[argv[i].slice(2)] = argv[++i];
    else positional.push(argv[i]);
  }
  if (positional.length < names.length) {
    fail(`usage: node ${path.basename(process.argv[1])} ${names.join(' ')} [--option value]...`);
  }
  return { positional, options };
}

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * A headless Chromium whose pages reach only this machine. Every request
 * to another host is listed in `external`, so a check can fail on it
 * rather than pass on a page that happened to degrade gracefully, and
 * fails: the host resolver knows no name but this machine's, and with
 * `intercept` (the default) such requests are also aborted before they
 * are sent. Without it, nothing is intercepted: Playwright answers CORS
 * preflights itself while it intercepts, so CORS checks must go without.
 * `viewport` is the page's size in CSS pixels.
 */
export async function offlineBrowser({ intercept = true, viewport = { width: 1400, height: 900 } } = {}) {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1'],
  });
  const context = await browser.newContext({ viewport });
  const external = [];
  const local = (url) => {
    const { protocol, host, hostname } = new URL(url);
    return protocol === 'data:' || protocol === 'blob:' || LOCAL_HOSTS.has(hostname) || LOCAL_HOSTS.has(host);
  };
  if (intercept) {
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (local(url)) return route.continue();
      external.push(url);
      return route.abort('internetdisconnected');
    });
  }
  context.on('request', (request) => {
    if (!local(request.url()) && !external.includes(request.url())) external.push(request.url());
  });
  return { browser, context, external };
}

/** A URL short enough for a message. */
export function short(url) {
  return url.length > 80 ? `${url.slice(0, 77)}...` : url;
}
