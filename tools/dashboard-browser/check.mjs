#!/usr/bin/env node
// Test-only browser check for `powkit node --dashboard` (issue 16): drives Debian's chromium headless
// through playwright-core, and prints ONE JSON object on stdout with what it saw. See README.md.
//
//   node check.mjs --url http://127.0.0.1:P/ --rpc http://127.0.0.1:R/ --cookie D/.cookie
//                  [--mine] [--screenshot out.png] [--view node|pool] [--width 1280] [--height 900]
//                  [--settle-ms 500] [--read SELECTOR]... [--height-selector #height] [--modules DIR]
//
// Exit 0: the harness ran; the caller asserts on the values (a mismatch is reported, never hidden).
// Exit 2: bad arguments. Exit 3: the harness could not run (no playwright-core, no chromium, the
// RPC or the page unreachable, #height never showed a number); one line on stderr says which.

import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

const USAGE =
  'usage: node check.mjs --url URL --rpc URL --cookie FILE [--mine] [--screenshot FILE.png] ' +
  '[--view node|pool] [--width N] [--height N] [--settle-ms N] [--read SELECTOR]... [--height-selector SEL] ' +
  '[--modules NODE_MODULES_DIR]';

// How long each wait may take.
const LOAD_TIMEOUT_MS = 10_000; // page load, and #height showing a number
const CATCH_UP_MS = 2_000; // page behind getblockcount at first read
const UPDATE_TIMEOUT_MS = 10_000; // page showing the mined block
const POLL_MS = 25;
const WATCHDOG_MS = 90_000; // the whole run

function fail(code, msg) {
  process.stderr.write(`dashboard-browser: ${msg.replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(code);
}

function parseArgs(argv) {
  const o = {
    url: null, rpc: null, cookie: null, mine: false, screenshot: null, view: 'node',
    width: 1280, height: 900, settleMs: 500, modules: null, read: [], heightSelector: '#height',
  };
  const takesValue = {
    '--url': 'url', '--rpc': 'rpc', '--cookie': 'cookie', '--screenshot': 'screenshot',
    '--view': 'view', '--width': 'width', '--height': 'height', '--settle-ms': 'settleMs',
    '--modules': 'modules', '--height-selector': 'heightSelector',
  };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let v;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) { v = a.slice(eq + 1); a = a.slice(0, eq); }
    if (a === '--mine') { o.mine = true; continue; }
    if (a === '--read') {
      if (v === undefined) {
        if (i + 1 >= argv.length) fail(2, `--read needs a CSS selector; ${USAGE}`);
        v = argv[++i];
      }
      o.read.push(v);
      continue;
    }
    if (a === '-h' || a === '--help') { process.stdout.write(USAGE + '\n'); process.exit(0); }
    const key = takesValue[a];
    if (!key) fail(2, `unknown argument ${JSON.stringify(a)}; ${USAGE}`);
    if (v === undefined) {
      if (i + 1 >= argv.length) fail(2, `${a} needs a value; ${USAGE}`);
      v = argv[++i];
    }
    o[key] = v;
  }
  for (const k of ['url', 'rpc', 'cookie']) if (!o[k]) fail(2, `--${k} is required; ${USAGE}`);
  if (o.view !== 'node' && o.view !== 'pool') fail(2, `--view must be node or pool, not ${JSON.stringify(o.view)}`);
  for (const k of ['width', 'height', 'settleMs']) {
    const n = Number(o[k]);
    if (!Number.isInteger(n) || n < 0 || (k !== 'settleMs' && n === 0)) fail(2, `bad number for ${k}: ${o[k]}`);
    o[k] = n;
  }
  return o;
}

// playwright-core from, in order: --modules DIR (a node_modules directory, or the directory holding
// one), POWKIT_BROWSER_MODULES (the same, as .ci/run exports it), NODE_PATH, and node_modules beside
// this script (after `npm ci` here, for runs by hand).
function loadPlaywright(modulesFlag) {
  const require = createRequire(import.meta.url);
  const tried = [];
  const dirs = [];
  if (modulesFlag) dirs.push(['--modules', modulesFlag]);
  else if (process.env.POWKIT_BROWSER_MODULES) dirs.push(['POWKIT_BROWSER_MODULES', process.env.POWKIT_BROWSER_MODULES]);
  for (const [what, dir] of dirs) {
    const abs = path.resolve(dir);
    try {
      // `paths` starts the usual lookup at abs: abs/node_modules, then abs's parent's node_modules
      // (which is abs itself when abs is a node_modules directory).
      return require(require.resolve('playwright-core', { paths: [abs, path.join(abs, 'x')] }));
    } catch (e) {
      tried.push(`${what}=${abs} (${e.code || e.message})`);
    }
  }
  if (!modulesFlag) {
    try {
      return require('playwright-core'); // NODE_PATH, then node_modules beside this script
    } catch (e) {
      tried.push(`NODE_PATH=${process.env.NODE_PATH || '(unset)'} and ${path.dirname(new URL(import.meta.url).pathname)}/node_modules (${e.code || e.message})`);
    }
  }
  fail(3, `playwright-core not found: tried ${tried.join('; ')}; install it with npm ci in tools/dashboard-browser (or as .ci/run does) and pass --modules DIR/node_modules`);
}

async function rpcCall(rpcUrl, auth, method, params = []) {
  let res;
  try {
    res = await fetch(rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: auth },
      body: JSON.stringify({ jsonrpc: '1.0', id: 1, method, params }),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (e) {
    throw new Error(`rpc ${method} at ${rpcUrl} failed: ${e.cause?.message || e.message}`);
  }
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch {
    throw new Error(`rpc ${method} at ${rpcUrl}: HTTP ${res.status}, not JSON: ${text.slice(0, 200)}`);
  }
  if (body.error) throw new Error(`rpc ${method} at ${rpcUrl}: HTTP ${res.status}, error ${JSON.stringify(body.error)}`);
  if (!res.ok) throw new Error(`rpc ${method} at ${rpcUrl}: HTTP ${res.status}: ${text.slice(0, 200)}`);
  return body.result;
}

// The element that shows the chain height: #height (the node view), or --height-selector's (the
// pool-only page of `powkit pool --dashboard` shows its job's parent height in #pool-tip).
let HEIGHT_SELECTOR = '#height';

// The page's height as a number, or null while it shows no number (empty, "-", missing element).
async function pageHeight(page) {
  const t = await page.evaluate((sel) => {
    const el = document.querySelector(sel);
    return el ? el.textContent : null;
  }, HEIGHT_SELECTOR);
  if (t === null) return null;
  const s = t.trim();
  return /^[0-9]+$/.test(s) ? Number(s) : null;
}

async function pageHeightText(page) {
  return page.evaluate((sel) => {
    const el = document.querySelector(sel);
    return el ? el.textContent : `(no ${sel} element)`;
  }, HEIGHT_SELECTOR).catch((e) => `(unreadable: ${e.message})`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const o = parseArgs(process.argv.slice(2));
  HEIGHT_SELECTOR = o.heightSelector;
  const { chromium } = loadPlaywright(o.modules);

  const executablePath = process.env.POWKIT_CHROMIUM || '/usr/bin/chromium';
  if (!existsSync(executablePath)) {
    fail(3, `chromium not found at ${executablePath} (apt-get install chromium, or set POWKIT_CHROMIUM)`);
  }
  let cookie;
  try {
    cookie = readFileSync(o.cookie, 'utf8').trim();
  } catch (e) {
    fail(3, `cannot read the RPC cookie ${o.cookie}: ${e.message}`);
  }
  const auth = 'Basic ' + Buffer.from(cookie).toString('base64');

  let url;
  try {
    url = new URL(o.url);
  } catch {
    fail(2, `bad --url ${o.url}`);
  }
  url.hash = o.view === 'pool' ? 'pool' : '';
  url = url.toString();

  let browser;
  try {
    browser = await chromium.launch({
      executablePath,
      headless: true,
      chromiumSandbox: false, // root in a container: no user namespaces for the sandbox
      args: [
        '--no-sandbox',
        '--disable-dev-shm-usage', // a container's /dev/shm is often 64 MB
        '--disable-gpu',
        '--no-first-run',
        '--no-default-browser-check',
        '--disable-extensions',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      timeout: 30_000,
    });
  } catch (e) {
    fail(3, `chromium at ${executablePath} did not start: ${e.message.split('\n').slice(0, 3).join(' ')}`);
  }
  let step = 'new page';
  const watchdog = setTimeout(() => {
    fail(3, `gave up after ${WATCHDOG_MS / 1000} s (step: ${step})`);
  }, WATCHDOG_MS);
  watchdog.unref();

  const errors = [];
  let collecting = true;
  const note = (s) => { if (collecting) errors.push(s); };
  const context = await browser.newContext({ viewport: { width: o.width, height: o.height } });
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const loc = msg.location();
    const where = loc && loc.url ? ` at ${loc.url}:${loc.lineNumber}:${loc.columnNumber}` : '';
    note(`console.error${where}: ${msg.text()}`);
  });
  page.on('pageerror', (err) => {
    const frame = (err.stack || '').split('\n').find((l) => /^\s+at /.test(l));
    note(`pageerror: ${err.name}: ${err.message}${frame ? ` (${frame.trim()})` : ''}`);
  });
  page.on('requestfailed', (req) => {
    note(`requestfailed: ${req.method()} ${req.url()}: ${req.failure()?.errorText ?? 'unknown'}`);
  });
  page.on('response', (res) => {
    if (res.status() >= 400) note(`http ${res.status()}: ${res.request().method()} ${res.url()}`);
  });

  step = `loading ${url}`;
  let resp;
  try {
    resp = await page.goto(url, { waitUntil: 'load', timeout: LOAD_TIMEOUT_MS });
  } catch (e) {
    await browser.close().catch(() => {});
    fail(3, `page never loaded: ${url}: ${e.message.split('\n')[0]}`);
  }
  if (resp && resp.status() >= 400) {
    const status = resp.status();
    await browser.close().catch(() => {});
    fail(3, `page never loaded: ${url} answered HTTP ${status}`);
  }

  step = 'waiting for #height to show a number';
  const t0 = performance.now();
  let first = null;
  while (performance.now() - t0 < LOAD_TIMEOUT_MS) {
    first = await pageHeight(page);
    if (first !== null) break;
    await sleep(POLL_MS);
  }
  if (first === null) {
    const text = await pageHeightText(page);
    await browser.close().catch(() => {});
    fail(3, `page loaded but #height never showed a number within ${LOAD_TIMEOUT_MS / 1000} s ` +
      `(its text: ${JSON.stringify(text)}); errors so far: ${JSON.stringify(errors)}`);
  }

  step = 'getblockcount';
  let rpcHeight;
  try {
    rpcHeight = await rpcCall(o.rpc, auth, 'getblockcount');
  } catch (e) {
    await browser.close().catch(() => {});
    fail(3, e.message);
  }
  // Read the page again after the RPC answer, so that both numbers are from (nearly) the same moment.
  const pageFirst = await pageHeight(page);
  let settled = pageFirst;
  if (settled !== rpcHeight) {
    step = 'waiting for the page to catch up with getblockcount';
    const t1 = performance.now();
    while (performance.now() - t1 < CATCH_UP_MS) {
      await sleep(POLL_MS);
      settled = await pageHeight(page);
      if (settled === rpcHeight) break;
    }
  }

  let rpcAfter = null;
  let pageAfter = null;
  let updateMs = null;
  if (o.mine) {
    step = 'generate [1]';
    let hashes;
    let tMined;
    try {
      hashes = await rpcCall(o.rpc, auth, 'generate', [1]);
      tMined = performance.now();
      if (!Array.isArray(hashes) || hashes.length !== 1) {
        throw new Error(`generate [1] returned ${JSON.stringify(hashes)}, not one block hash`);
      }
      rpcAfter = await rpcCall(o.rpc, auth, 'getblockcount');
    } catch (e) {
      await browser.close().catch(() => {});
      fail(3, e.message);
    }
    step = 'waiting for the page to show the mined block';
    for (;;) {
      pageAfter = await pageHeight(page);
      const elapsed = performance.now() - tMined;
      if (pageAfter === rpcAfter) { updateMs = Math.round(elapsed); break; }
      if (elapsed >= UPDATE_TIMEOUT_MS) break;
      await sleep(POLL_MS);
    }
  }

  // Let the page run a while longer before the screenshot and before closing, so that errors it
  // makes after the first data (a late script, the next poll) are still counted.
  step = 'settling';
  await sleep(o.settleMs);

  let shot = null;
  if (o.screenshot) {
    step = 'screenshot';
    const file = path.resolve(o.screenshot);
    try {
      await page.screenshot({ path: file, fullPage: true });
      shot = file;
    } catch (e) {
      await browser.close().catch(() => {});
      fail(3, `screenshot to ${file} failed: ${e.message.split('\n')[0]}`);
    }
  }

  // --read SELECTOR: the visible text of every element it matches, after settling.
  const read = {};
  for (const sel of o.read) {
    read[sel] = await page.locator(sel).allInnerTexts().catch((e) => [`error: ${e.message.split('\n')[0]}`]);
  }

  let viewVisible = null;
  if (o.view === 'pool') viewVisible = await page.locator('#pool-view').first().isVisible().catch(() => false);

  collecting = false; // requests cut short by closing the browser are not the page's errors
  const version = browser.version();
  await browser.close().catch(() => {});
  clearTimeout(watchdog);

  const out = {
    page_height: pageFirst,
    rpc_height: rpcHeight,
    page_height_settled: settled,
    mined: o.mine,
    rpc_height_after: rpcAfter,
    page_height_after: pageAfter,
    update_ms: updateMs,
    errors,
    screenshot: shot,
    browser: version,
    url,
    view: o.view,
    view_visible: viewVisible,
    read,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => fail(3, `harness failed: ${e.stack || e.message}`));
