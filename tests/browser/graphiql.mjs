// GraphiQL with the network off: the page at URL renders its editor from
// the assets biblio serves, runs a query and shows its data, and its
// documentation explorer lists the schema's `Book`.
//
//   node tests/browser/graphiql.mjs http://127.0.0.1:PORT/graphql \
//     [--expect TEXT] [--screenshot FILE]
//
// --expect: text the result must contain (say, a category's name);
// --screenshot: where the final page is saved (default
// target/browser/graphiql.png). Exits 0 when every check held.
import fs from 'node:fs';
import path from 'node:path';
import { check, fail, offlineBrowser, parseArgs, short, TARGET } from './lib.mjs';

const { positional: [url], options } = parseArgs(['URL']);
const screenshot = options.screenshot || path.join(TARGET, 'browser', 'graphiql.png');
const query = '{ categories { name } }';
const timeout = 60_000;

const { browser, context, external } = await offlineBrowser();
try {
  const page = await context.newPage();
  const scriptErrors = [];
  page.on('pageerror', (error) => scriptErrors.push(error.message));

  const response = await page.goto(url, { timeout });
  check(response && response.ok(), () => `GET ${short(url)} answered ${response && response.status()}`);

  // The editor is CodeMirror 5 inside GraphiQL; it exists only once React,
  // ReactDOM and GraphiQL have loaded and rendered.
  const editor = page.locator('.graphiql-query-editor .CodeMirror');
  await editor
    .waitFor({ state: 'visible', timeout })
    .catch(() =>
      fail(
        `the query editor never rendered; script errors: ${scriptErrors.join(' | ').slice(0, 200) || 'none'}; ` +
          `requests off this machine: ${external.slice(0, 3).map(short).join(', ') || 'none'}`,
      ),
    );

  // Set the text through CodeMirror rather than typing: its bracket
  // auto-closing would turn typed `{` into `{}`.
  await page.evaluate((text) => {
    document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(text);
  }, query);
  await page.locator('.graphiql-execute-button').click();

  const resultText = () =>
    page.evaluate(() => document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() ?? '');
  await page
    .waitForFunction(
      () => (document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() ?? '').includes('"data"'),
      null,
      { timeout },
    )
    .catch(async () => fail(`no data in the result pane: ${(await resultText()).slice(0, 200)}`));
  const result = JSON.parse(await resultText());
  check(!result.errors, () => `the query failed: ${JSON.stringify(result.errors).slice(0, 200)}`);
  check(Array.isArray(result.data?.categories), 'the result has no categories list');
  if (options.expect) {
    check(
      result.data.categories.some((category) => category.name === options.expect),
      `the result does not list the category ${JSON.stringify(options.expect)}`,
    );
  }

  // The explorer is built from the introspection GraphiQL sends on load.
  await page.locator('button[aria-label="Show Documentation Explorer"]').click({ timeout });
  const bookLink = page
    .locator('.graphiql-doc-explorer .graphiql-doc-explorer-type-name')
    .filter({ hasText: /^Book$/ });
  await bookLink
    .first()
    .waitFor({ state: 'visible', timeout })
    .catch(() => fail('the documentation explorer does not list Book'));
  await bookLink.first().click();
  await page
    .locator('.graphiql-doc-explorer-title', { hasText: /^Book$/ })
    .waitFor({ state: 'visible', timeout })
    .catch(() => fail('clicking Book in the explorer did not open its page'));

  fs.mkdirSync(path.dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot });

  check(scriptErrors.length === 0, () => `the page threw: ${scriptErrors.join(' | ').slice(0, 300)}`);
  check(
    external.length === 0,
    () => `the page tried ${external.length} request(s) off this machine: ${external.slice(0, 3).map(short).join(', ')}`,
  );
  console.log(`ok: GraphiQL ran ${query} offline and lists Book; screenshot at ${screenshot}`);
} finally {
  await browser.close();
}
