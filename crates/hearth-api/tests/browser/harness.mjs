// What every browser scenario shares: Chromium through playwright-core, a page that records
// console errors, uncaught exceptions, failed requests, HTTP errors and CSP violations, and
// screenshots. Driven by tests/it/browser.rs, which starts the gateway and passes:
//   HEARTH_BASE_URL      the gateway, e.g. http://127.0.0.1:41234
//   HEARTH_CHROMIUM      the Chromium executable
//   HEARTH_PLAYWRIGHT    a directory whose node_modules holds playwright-core
//   HEARTH_ARTEFACTS     where screenshots go
// A scenario throws on the first failed expectation; the process then exits 1.

import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { createHmac } from 'node:crypto';

export const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

export const baseUrl = env('HEARTH_BASE_URL');
const artefacts = env('HEARTH_ARTEFACTS');
mkdirSync(artefacts, { recursive: true });

const require = createRequire(path.join(env('HEARTH_PLAYWRIGHT'), 'package.json'));
const { chromium } = require('playwright-core');

export function expect(condition, message) {
  if (!condition) throw new Error(`expectation failed: ${message}`);
}

/** Every browser started, closed when the scenario ends however it ends. */
const browsers = [];

/** Starts Chromium and a page that records everything that went wrong. */
export async function open({ width = 1280, height = 900 } = {}) {
  const browser = await chromium.launch({
    executablePath: env('HEARTH_CHROMIUM'),
    // Root in a container has no user namespaces for the sandbox.
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  browsers.push(browser);
  const context = await browser.newContext({ viewport: { width, height } });
  // Violations reported by the page itself, besides the console lines Chromium writes.
  await context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`);
    });
  });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
  page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`));
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()} ${response.request().method()} ${response.url()}`);
  });
  return { browser, context, page, problems };
}

/** Fails when anything went wrong so far: console errors, HTTP errors or CSP violations. */
export async function expectClean(session, where) {
  const violations = await session.page.evaluate(() => window.__cspViolations || []);
  const all = [...session.problems, ...violations.map((v) => `CSP violation: ${v}`)];
  expect(all.length === 0, `${where}: the browser reported problems:\n  ${all.join('\n  ')}`);
}

/** Saves a full-page screenshot as `name.png` among the artefacts. */
export async function screenshot(page, name) {
  const file = path.join(artefacts, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${file}`);
}

/** Fails when the page is wider than the viewport (content that does not fit a phone). */
export async function expectNoHorizontalScroll(page, where) {
  const { scroll, width, culprit } = await page.evaluate(() => {
    // The deepest visible element that reaches past the right edge, to name in the failure.
    // Elements inside a scrolling wrapper (a wide table) do not count.
    let culprit = '';
    let right = window.innerWidth + 1;
    const scrolls = (node) => {
      for (let n = node.parentElement; n; n = n.parentElement) {
        if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(n).overflowX)) return true;
      }
      return false;
    };
    for (const node of document.body.querySelectorAll('*')) {
      const box = node.getBoundingClientRect();
      if (box.width > 0 && box.right > right && !scrolls(node)) {
        right = box.right;
        culprit = `<${node.tagName.toLowerCase()}${node.id ? `#${node.id}` : ''}> "${node.textContent.slice(0, 40)}" reaches ${Math.round(box.right)} px`;
      }
    }
    return { scroll: document.documentElement.scrollWidth, width: window.innerWidth, culprit };
  });
  expect(scroll <= width, `${where}: the page is ${scroll} px wide in a ${width} px viewport (${culprit})`);
}

/** Waits (10 s at most) until the text of `selector` satisfies `test`, and returns it. */
export async function waitForText(page, selector, test, what) {
  const deadline = Date.now() + 10000;
  let text = null;
  for (;;) {
    text = await page.textContent(selector, { timeout: 1000 }).catch(() => null);
    if (text !== null && test(text)) return text;
    if (Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`expectation failed: ${what}; ${selector} reads ${JSON.stringify(text)}`);
}

/** An RFC 6238 code (SHA-1, 6 digits, 30 s) for a base32 secret at `time` (ms). */
export function totp(secret, time = Date.now()) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of secret.replace(/=+$/, '').toUpperCase()) {
    const index = alphabet.indexOf(ch);
    if (index < 0) throw new Error('bad base32 secret');
    bits += index.toString(2).padStart(5, '0');
  }
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(time / 1000 / 30)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const value = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(value).padStart(6, '0');
}

/** Runs a scenario and exits 1 with the error when it fails. */
export async function run(scenario) {
  try {
    await scenario();
    console.log('ok');
  } catch (error) {
    console.error(error.stack || String(error));
    process.exitCode = 1;
  } finally {
    await Promise.all(browsers.map((b) => b.close().catch(() => {})));
  }
}
