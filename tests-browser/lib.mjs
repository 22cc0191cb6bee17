// The browser-test harness: real headless Chromium (Debian's /usr/bin/chromium) driven by
// playwright-core, with axe-core for accessibility. Installed by scripts/install-browser-tools;
// run by crates/tillit/tests/api/web.rs. See tests-browser/README.md.
//
// A journey:
//   const j = await start('login');
//   await j.step('open the front page', async () => { await j.visit('/'); await j.shot('login'); });
//   await j.finish(); // prints the summary, exits non-zero on any failure
//
// Every page the journey lands on (visit, click, submit) is checked: console errors, uncaught
// exceptions, CSP violations (securitypolicyviolation events and console messages), server
// errors (5xx) and failed requests, and axe-core violations of impact serious or critical.

import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';

const CHROMIUM = '/usr/bin/chromium';
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
const FAILING_IMPACTS = new Set(['serious', 'critical']);
const TIMEOUT_MS = Number(process.env.JOURNEY_TIMEOUT_MS || 180_000);

function env(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`missing environment variable ${name} (BASE_URL, CREDS and ARTIFACTS are required)`);
    process.exit(2);
  }
  return v;
}

// --- TOTP (RFC 6238: HMAC-SHA-1, 30 s steps, 6 digits) -------------------------------------------

export function base32Decode(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of s.toUpperCase().replace(/[=\s]/g, '')) {
    const i = alphabet.indexOf(c);
    if (i < 0) throw new Error(`not base32: ${c}`);
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

export function totpAt(secret, unixSeconds) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(unixSeconds / 30)));
  const mac = crypto.createHmac('sha1', base32Decode(secret)).update(counter).digest();
  const o = mac[mac.length - 1] & 0x0f;
  const n = (mac.readUInt32BE(o) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, '0');
}

export function totp(secret) {
  return totpAt(secret, Date.now() / 1000);
}

// RFC 6238 appendix B (SHA-1, the 20-byte ASCII secret "12345678901234567890"), 6 digits.
for (const [t, code] of [[59, '287082'], [1111111109, '081804'], [2000000000, '279037']]) {
  const secret = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
  if (totpAt(secret, t) !== code) throw new Error(`totp self-test failed at ${t}`);
}

// --- TLS: pin the server's key in Chromium after node verified it against the demo CA ----------

async function serverSpki(baseUrl, caPath) {
  const u = new URL(baseUrl);
  return await new Promise((resolve, reject) => {
    const sock = tls.connect({
      host: u.hostname,
      port: Number(u.port || 443),
      servername: /^[\d.]+$/.test(u.hostname) ? undefined : u.hostname,
      ca: fs.readFileSync(caPath),
    });
    sock.once('secureConnect', () => {
      const der = sock.getPeerX509Certificate().publicKey.export({ type: 'spki', format: 'der' });
      sock.end();
      resolve(crypto.createHash('sha256').update(der).digest('base64'));
    });
    sock.once('error', (e) => reject(new Error(`TLS to ${baseUrl} with the demo CA: ${e.message}`)));
  });
}

// --- the journey ----------------------------------------------------------------------------------

export async function start(name) {
  const baseUrl = env('BASE_URL').replace(/\/$/, '');
  const creds = JSON.parse(fs.readFileSync(env('CREDS'), 'utf8'));
  const artifacts = env('ARTIFACTS');
  fs.rmSync(artifacts, { recursive: true, force: true });
  fs.mkdirSync(artifacts, { recursive: true });
  const spki = await serverSpki(baseUrl, creds.ca_cert);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--ignore-certificate-errors-spki-list=${spki}`,
    ],
  });
  const j = new Journey(name, baseUrl, creds, artifacts, browser);
  await j.open();
  return j;
}

class Journey {
  constructor(name, baseUrl, creds, artifacts, browser) {
    this.name = name;
    this.baseUrl = baseUrl;
    this.creds = creds;
    this.artifacts = artifacts;
    this.browser = browser;
    this.failures = [];
    this.notes = [];
    this.checked = 0;
    this.shots = 0;
    this.navSeq = 0;
    this.checkedSeq = 0;
    this.failedStep = null;
    this.expected = []; // console messages a step declared as expected (RegExps)
    this.cspCanary = null; // set while the CSP self-test runs
    this.usedTotpSteps = new Map();
    this.started = Date.now();
    this.watchdog = setTimeout(() => {
      this.fail('timeout', `the journey took longer than ${TIMEOUT_MS / 1000} s`);
      this.report();
      process.exit(1);
    }, TIMEOUT_MS);
    this.watchdog.unref();
  }

  async open() {
    this.context = await this.browser.newContext({
      viewport: DESKTOP,
      locale: process.env.LOCALE || 'nb-NO',
      ignoreHTTPSErrors: false,
      bypassCSP: false,
    });
    this.context.setDefaultTimeout(15_000);
    this.context.setDefaultNavigationTimeout(30_000);
    // CSP violations as the page sees them; the binding and the init script go over CDP, so
    // the page's own CSP does not apply to them.
    await this.context.exposeBinding('__tillitCspViolation', ({ frame }, v) => {
      this.csp(`${v.directive} blocked ${v.blocked || '(inline)'}${v.sample ? ` "${v.sample}"` : ''} (${v.source || frame.url()}:${v.line})`, frame.url());
    });
    await this.context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        window.__tillitCspViolation({
          directive: e.effectiveDirective || e.violatedDirective,
          blocked: e.blockedURI,
          sample: e.sample,
          source: e.sourceFile,
          line: e.lineNumber,
        });
      });
    });
    const page = await this.context.newPage();
    this.page = page;
    page.on('console', (msg) => {
      const text = msg.text();
      const url = msg.location()?.url || page.url();
      if (/Content[- ]Security[- ]Policy/i.test(text)) {
        this.csp(`console ${msg.type()}: ${text}`, url);
      } else if (msg.type() === 'error') {
        if (this.expected.some((re) => re.test(text))) return;
        this.fail('console error', text, url);
      }
    });
    page.on('pageerror', (e) => this.fail('page exception', e.stack || e.message, page.url()));
    page.on('framenavigated', (frame) => {
      if (frame === page.mainFrame()) this.navSeq++;
    });
    page.on('response', (r) => {
      if (r.status() >= 500) this.fail('server error', `${r.status()} ${r.request().method()} ${r.url()}`, page.url());
    });
    page.on('requestfailed', (r) => {
      const err = r.failure()?.errorText || '';
      // A navigation that replaces a pending one aborts it; that is not a failure.
      if (err.includes('ERR_ABORTED')) return;
      this.fail('request failed', `${r.method()} ${r.url()}: ${err}`, page.url());
    });
  }

  url(p) {
    return p.startsWith('http') ? p : `${this.baseUrl}${p}`;
  }

  path() {
    const u = new URL(this.page.url());
    return u.pathname + u.search;
  }

  fail(kind, text, url = this.page?.url()) {
    this.failures.push({ kind, text, url, step: this.currentStep });
  }

  note(text) {
    if (!this.notes.includes(text)) this.notes.push(text);
  }

  csp(text, url) {
    if (this.cspCanary) {
      this.cspCanary.push(text);
      return;
    }
    this.fail('CSP violation', text, url);
  }

  /// Runs a step; an exception fails the journey and skips the steps after it.
  async step(title, fn) {
    if (this.failedStep) {
      this.notes.push(`skipped: ${title}`);
      return;
    }
    this.currentStep = title;
    console.log(`- ${title}`);
    try {
      await fn();
    } catch (e) {
      this.failedStep = title;
      this.fail('step failed', (e && e.stack) || String(e));
      if (this.page) await this.shot(`failed-${title}`).catch(() => {});
    } finally {
      this.expected = [];
      this.currentStep = undefined;
    }
  }

  /// Inside a step: console errors matching `re` are expected (for example the browser's
  /// "Failed to load resource ... 401" for a page that answers 401 on purpose).
  expectConsole(re) {
    this.expected.push(re);
  }

  assert(cond, message) {
    if (!cond) throw new Error(`${message} (at ${this.page.url()})`);
  }

  /// Opens a path and checks the page it lands on.
  async visit(p) {
    const resp = await this.page.goto(this.url(p), { waitUntil: 'load' });
    await this.settle();
    return resp;
  }

  /// Clicks something that navigates, waits for the new page and checks it.
  async click(selector) {
    const before = this.navSeq;
    await Promise.all([
      this.page.waitForEvent('framenavigated', { predicate: (f) => f === this.page.mainFrame() }),
      this.page.locator(selector).click(),
    ]);
    if (this.navSeq === before) throw new Error(`clicking ${selector} did not navigate`);
    await this.settle();
  }

  /// Waits for the current page to load and runs the checks once per navigation.
  async settle() {
    await this.page.waitForLoadState('load');
    if (this.checkedSeq === this.navSeq) return;
    this.checkedSeq = this.navSeq;
    if (this.checked === 0) await this.selfTestCsp();
    await this.axe();
    this.checked++;
  }

  /// Proves once per journey that CSP violations are seen: an inline script added to the page
  /// must be refused, and both the event and the console message must arrive.
  async selfTestCsp() {
    this.cspCanary = [];
    await this.page.evaluate(() => {
      const s = document.createElement('script');
      s.textContent = 'window.__tillitCanaryRan = true';
      document.head.append(s);
      s.remove();
    });
    const deadline = Date.now() + 5000;
    while (this.cspCanary.length < 2 && Date.now() < deadline) await this.page.waitForTimeout(50);
    const seen = this.cspCanary;
    this.cspCanary = null;
    const ran = await this.page.evaluate(() => window.__tillitCanaryRan === true);
    if (ran) this.fail('CSP self-test', 'an inline script ran: the page has no effective script-src');
    if (!seen.some((t) => t.startsWith('console'))) {
      this.fail('CSP self-test', 'the refused inline script produced no console message');
    }
    if (!seen.some((t) => !t.startsWith('console'))) {
      this.fail('CSP self-test', 'the refused inline script produced no securitypolicyviolation event');
    }
  }

  async axe() {
    const url = this.page.url();
    // Evaluated over CDP, so the page's CSP (script-src 'self') does not block it, and no
    // bypassCSP is needed that would hide the app's own violations.
    const installed = await this.page.evaluate(() => typeof window.axe === 'object');
    if (!installed) await this.page.evaluate(axeSource());
    const result = await this.page.evaluate(() =>
      window.axe.run(document, { resultTypes: ['violations'] }).then((r) => ({
        passes: r.passes.length,
        violations: r.violations.map((v) => ({
          id: v.id,
          impact: v.impact,
          help: v.help,
          nodes: v.nodes.map((n) => ({ target: n.target.join(' '), impact: n.impact, summary: n.failureSummary })),
        })),
      })),
    );
    if (result.passes === 0) this.fail('axe', 'axe ran no passing rule: it did not really run', url);
    for (const v of result.violations) {
      for (const n of v.nodes) {
        const impact = n.impact || v.impact;
        const line = `${v.id} (${impact}) at ${n.target}: ${v.help}`;
        if (FAILING_IMPACTS.has(impact)) {
          this.fail(`axe ${impact}`, `${line}\n      ${(n.summary || '').replace(/\n/g, '\n      ')}`, url);
        } else {
          this.note(`axe ${line} on ${url}`);
        }
      }
    }
  }

  /// A full-page desktop screenshot: ARTIFACTS/NN-name.png.
  async shot(name) {
    const file = path.join(this.artifacts, `${String(++this.shots).padStart(2, '0')}-${slug(name)}.png`);
    await this.page.screenshot({ path: file, fullPage: true });
    return file;
  }

  /// The same page at phone size (390x844), full page: ARTIFACTS/NN-name-phone.png.
  async phoneShot(name) {
    await this.page.setViewportSize(PHONE);
    try {
      return await this.shot(`${name}-phone`);
    } finally {
      await this.page.setViewportSize(DESKTOP);
    }
  }

  user(username) {
    const u = this.creds.users.find((x) => x.username === username);
    if (!u) throw new Error(`no demo user ${username} in the credentials file`);
    return u;
  }

  /// A TOTP code for the user that the server has not seen yet (it refuses a code twice):
  /// waits for the next 30 s step when this step's code was used.
  async freshTotp(secret) {
    let step = Math.floor(Date.now() / 30_000);
    const used = this.usedTotpSteps.get(secret);
    if (used !== undefined && step <= used) {
      const wait = (used + 1) * 30_000 - Date.now() + 200;
      console.log(`  (waiting ${Math.ceil(wait / 1000)} s for a fresh TOTP code)`);
      await new Promise((r) => setTimeout(r, wait));
      step = Math.floor(Date.now() / 30_000);
    }
    this.usedTotpSteps.set(secret, step);
    return totpAt(secret, step * 30);
  }

  /// Fills the login form (which must be on screen) and submits it. Password and TOTP come
  /// from the credentials file unless given.
  async fillLogin(username, { password, totpCode } = {}) {
    const u = this.user(username);
    const form = this.page.locator('form:has(#username)');
    await form.locator('#username').fill(username);
    await form.locator('#password').fill(password ?? u.password);
    const code = totpCode ?? (u.totp_secret ? await this.freshTotp(u.totp_secret) : '');
    if (code) await form.locator('#totp').fill(code);
    await this.click('form:has(#username) button[type=submit]');
  }

  /// Whether the login form is on screen (the login page, or a failed login's answer).
  async onLoginForm() {
    return (await this.page.locator('form:has(#username) #password').count()) > 0;
  }

  /// Logs in (from the login page, opened when not on screen) and expects to leave the form.
  async login(username) {
    if (!(await this.onLoginForm())) await this.visit('/login');
    await this.fillLogin(username);
    if (await this.onLoginForm()) {
      const alert = await this.page.locator('[role=alert]').allInnerTexts();
      throw new Error(`login of ${username} failed: ${alert.join(' ') || 'the login form is shown again'} (at ${this.page.url()})`);
    }
  }

  /// Logs out with the logout form's button and expects the login page afterwards.
  async logout() {
    await this.click('form[action="/auth/logout"] button[type=submit]');
    if (!(await this.onLoginForm())) await this.visit('/');
    this.assert(await this.onLoginForm(), 'after logging out / does not lead to the login form');
  }

  async text(selector) {
    return (await this.page.locator(selector).first().innerText()).trim();
  }

  report() {
    const secs = ((Date.now() - this.started) / 1000).toFixed(1);
    console.log(`\njourney ${this.name}: ${this.checked} pages checked, ${this.shots} screenshots in ${this.artifacts}, ${secs} s`);
    for (const n of this.notes) console.log(`  note: ${n}`);
    if (this.failures.length === 0) {
      console.log(`journey ${this.name}: all checks passed`);
      return;
    }
    console.log(`journey ${this.name}: FAILED with ${this.failures.length} problem(s):`);
    for (const f of this.failures) {
      console.log(`  [${f.kind}] ${f.step ? `(step "${f.step}") ` : ''}${f.url || ''}\n      ${String(f.text).replace(/\n/g, '\n      ')}`);
    }
  }

  /// Checks the last page, closes the browser, prints the summary and exits.
  async finish() {
    if (!this.failedStep) {
      this.currentStep = 'final page';
      await this.settle().catch((e) => this.fail('step failed', String(e)));
      this.currentStep = undefined;
    }
    await this.browser.close().catch(() => {});
    clearTimeout(this.watchdog);
    this.report();
    process.exit(this.failures.length === 0 ? 0 : 1);
  }
}

let axeCache;
function axeSource() {
  axeCache ??= fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  return axeCache;
}

function slug(s) {
  return s.toLowerCase().normalize('NFKD').replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
}
