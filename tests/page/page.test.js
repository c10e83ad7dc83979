// The patient's download page in a real browser: Debian's chromium driven by playwright-core,
// against a real `sealpost serve` on a free port. Every state is checked with axe-core (no
// serious or critical violations) and photographed at 360 px and 1280 px into tests/artifacts/.
//
// Run: `npm ci && node --test` in tests/page (after `cargo build -p sealpost-shared --bin sealpost`).
// SEALPOST_BIN overrides the server binary, CHROMIUM the browser.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import zlib from 'node:zlib';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..', '..');
const ARTIFACTS = join(ROOT, 'tests', 'artifacts');
const BIN = process.env.SEALPOST_BIN || join(ROOT, 'target', 'debug', 'sealpost');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const PRACTICE = 'Praxis Dr. med. Muster';

// A tiny but real PDF, and a text file (the archive stores the first and deflates the second).
const PDF = Buffer.from('%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n');
const TEXT = Buffer.from('Laborbefund vom 12. März\n\nAlle Werte im Normbereich. Freundliche Grüsse\n'.repeat(20));
const PDF_NAME = 'Rechnung-2024-001.pdf';
const TEXT_NAME = 'Laborbefund März.txt';

let server; // {url, key, proc, dir}
let browser;
const problems = []; // CSP violations and script errors seen by any page

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  if (!process.env.SEALPOST_BIN) {
    execFileSync('cargo', ['build', '--quiet', '-p', 'sealpost-shared', '--bin', 'sealpost'], { cwd: ROOT, stdio: 'inherit' });
  }
  server = await startServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    chromiumSandbox: false,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync']
  });
});

after(async () => {
  if (browser) await browser.close();
  if (server) {
    server.proc.kill('SIGTERM');
    rmSync(server.dir, { recursive: true, force: true });
  }
});

// ---- the server ---------------------------------------------------------------------------

async function startServer() {
  const dir = mkdtempSync(join(tmpdir(), 'sealpost-page-'));
  // A practice with a real-looking name for the screenshots; its key serves as the default one.
  const created = execFileSync(BIN, ['tenant', 'create', '--name', PRACTICE, '--data-dir', dir], { encoding: 'utf8' });
  const key = /API key:\s+(sp_live_[A-Za-z0-9_-]+)/.exec(created)[1];
  const proc = spawn(BIN, ['serve', '--addr', '127.0.0.1:0', '--data-dir', dir, '--api-key', key], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'warn' }
  });
  const log = createWriteStream(join(dir, 'server.log'));
  proc.stderr.pipe(log);
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('server did not start: ' + out)), 30000);
    proc.stdout.on('data', (chunk) => {
      out += chunk;
      const m = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    proc.on('exit', (code) => reject(new Error(`server exited with ${code}: ${out}`)));
  });
  proc.stdout.on('data', () => {}); // keep draining the console outbox
  return { url, key, proc, dir };
}

async function practice(method, path, body) {
  const res = await fetch(server.url + path, {
    method,
    headers: { Authorization: `Bearer ${server.key}`, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined
  });
  const json = await res.json();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

function createShare(overrides = {}) {
  const { recipient = {}, auth = {}, ...rest } = overrides;
  return practice('POST', '/v1/shares', {
    recipient: { email: 'anna@example.ch', phone: '+41791234567', name: 'Anna Muster', language: 'de', ...recipient },
    auth: { method: 'sms', self_service: true, ...auth },
    expires_in_days: 30,
    documents: [
      { filename: PDF_NAME, content_type: 'application/pdf', content_base64: PDF.toString('base64') },
      { filename: TEXT_NAME, content_type: 'text/plain', content_base64: TEXT.toString('base64') }
    ],
    ...rest
  });
}

// The code is the six-digit run in the share's latest SMS.
async function codeFor(shareId) {
  const { messages } = await (await fetch(server.url + '/_outbox')).json();
  const sms = messages.filter((m) => m.channel === 'sms' && m.share_id === shareId).pop();
  assert.ok(sms, 'an SMS for the share');
  const digits = /(?<!\d)\d{6}(?!\d)/.exec(sms.body);
  assert.ok(digits, `a code in ${sms.body}`);
  return digits[0];
}

function wrongCode(code) {
  return String((Number(code) + 1) % 1000000).padStart(6, '0');
}

// ---- the browser --------------------------------------------------------------------------

async function openPage(link, { locale = 'en-GB', width = 360 } = {}) {
  const context = await browser.newContext({
    viewport: { width, height: width < 800 ? 780 : 900 }, locale, acceptDownloads: true,
    deviceScaleFactor: 1
  });
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (/Content Security Policy|Refused to/i.test(msg.text())) problems.push(`${link}: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`${link}: ${err.message}`));
  if (link) await page.goto(link);
  return page;
}

async function closePage(page) {
  await page.context().close();
}

// axe-core, evaluated through the DevTools protocol (a <script> tag would break the page's CSP).
async function checkAxe(page, state) {
  await page.evaluate(AXE_SOURCE);
  const results = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(
    bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`),
    [],
    `axe on ${state}`
  );
}

// Each state at 360 px and 1280 px, full page, plus axe at both widths.
async function snap(page, state) {
  const original = page.viewportSize();
  for (const [width, height] of [[360, 780], [1280, 900]]) {
    await page.setViewportSize({ width, height });
    await page.evaluate(() => document.fonts && document.fonts.ready);
    await page.screenshot({ path: join(ARTIFACTS, `${state}-${width}.png`), fullPage: true });
    const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(scrollWidth <= width, `${state} at ${width}px scrolls sideways (${scrollWidth}px wide)`);
    await checkAxe(page, `${state} at ${width}px`);
  }
  await page.setViewportSize(original);
}

async function text(page, selector) {
  return (await page.locator(selector).innerText()).trim();
}

async function activeId(page) {
  return page.evaluate(() => document.activeElement && document.activeElement.id);
}

async function enterCode(page, value) {
  await page.locator('#code').fill(value);
  await page.locator('#code').press('Enter');
}

function unzip(buf) {
  const eocd = buf.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  assert.ok(eocd >= 0, 'a ZIP end record');
  const count = buf.readUInt16LE(eocd + 10);
  let at = buf.readUInt32LE(eocd + 16);
  const entries = {};
  for (let i = 0; i < count; i++) {
    assert.equal(buf.readUInt32LE(at), 0x02014b50, 'a central directory entry');
    const method = buf.readUInt16LE(at + 10);
    const size = buf.readUInt32LE(at + 20);
    const nameLen = buf.readUInt16LE(at + 28);
    const extraLen = buf.readUInt16LE(at + 30);
    const commentLen = buf.readUInt16LE(at + 32);
    const local = buf.readUInt32LE(at + 42);
    const name = buf.toString('utf8', at + 46, at + 46 + nameLen);
    const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    const data = buf.subarray(start, start + size);
    entries[name] = method === 0 ? data : method === 8 ? zlib.inflateRawSync(data) : assert.fail(`method ${method}`);
    at += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

async function download(page, locator) {
  const [dl] = await Promise.all([page.waitForEvent('download'), locator.click()]);
  return { name: dl.suggestedFilename(), bytes: readFileSync(await dl.path()) };
}

// ---- the tests ----------------------------------------------------------------------------

test('the page is served with a strict CSP and security headers, the same for any id', async () => {
  const share = await createShare();
  for (const path of [`/s/${share.id}`, '/s/AAAAAAAAAAAAAAAAAAAAAA']) {
    const res = await fetch(server.url + path, { headers: { 'Accept-Language': 'de-CH,de;q=0.9' } });
    assert.equal(res.status, 200, path);
    assert.match(res.headers.get('content-type'), /^text\/html/);
    assert.match(res.headers.get('content-security-policy'), /default-src 'none'; script-src 'self'; style-src 'self'/);
    assert.match(res.headers.get('content-security-policy'), /frame-ancestors 'none'/);
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(res.headers.get('x-frame-options'), 'DENY');
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.match(res.headers.get('strict-transport-security'), /max-age=/);
    const html = await res.text();
    assert.match(html, /<html lang="de"/);
    assert.ok(!html.includes(share.reference) && !html.includes(PDF_NAME), 'nothing of the share in the HTML');
    assert.ok(!/<script>|\sstyle="|\son[a-z]+=/i.test(html), 'no inline script, style or handlers');
  }
  for (const [file, type] of [['app.js', /^text\/javascript/], ['style.css', /^text\/css/], ['i18n/fr.json', /^application\/json/]]) {
    const res = await fetch(`${server.url}/assets/${file}`);
    assert.equal(res.status, 200, file);
    assert.match(res.headers.get('content-type'), type);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  }
  assert.equal((await fetch(`${server.url}/assets/nothing.js`)).status, 404);
});

test('full flow: code from the SMS, documents listed, one downloaded, then the ZIP', async () => {
  const share = await createShare();
  const code = await codeFor(share.id);
  const page = await openPage(share.link);
  await page.getByRole('heading', { name: 'Enter your code' }).waitFor();

  // Before the code: who, which reference, where the code went, until when; no document names.
  assert.equal(await text(page, '#share-title'), `${PRACTICE} has sent you documents`);
  assert.equal(await text(page, '#share-reference'), share.reference);
  assert.match(await text(page, '#code-intro'), /to \+41\s•+67\.$/);
  assert.match(await text(page, '#share-expires'), /\d{4}/);
  assert.ok(!(await page.content()).includes(PDF_NAME), 'no document names before the code');
  const input = page.getByLabel('Code (6 digits)');
  assert.equal(await input.getAttribute('autocomplete'), 'one-time-code');
  assert.equal(await input.getAttribute('inputmode'), 'numeric');
  await snap(page, 'code');

  // Pasted with spaces around and inside, submitted with the keyboard.
  await input.focus();
  await page.keyboard.insertText(`  ${code.slice(0, 3)} ${code.slice(3)}  `);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Your documents' }).waitFor();
  assert.equal(await activeId(page), 'docs-heading', 'focus moves to the documents');
  assert.match(await text(page, '#docs-intro'), /2 documents from/);
  const items = page.locator('#docs-list li');
  assert.equal(await items.count(), 2);
  assert.equal(await text(page, '#docs-list li:nth-child(1) .doc-name'), PDF_NAME);
  assert.match(await text(page, '#docs-list li:nth-child(1) .doc-meta'), /^PDF document · \d+ bytes$/);
  assert.equal(await text(page, '#docs-list li:nth-child(2) .doc-name'), TEXT_NAME);
  assert.match(await text(page, '#docs-list li:nth-child(2) .doc-meta'), /^Text file · [\d.]+ kB$/);
  await snap(page, 'documents');

  // One document: its bytes, twice (each click asks for a fresh short-lived URL).
  for (let i = 0; i < 2; i++) {
    const pdf = await download(page, page.getByRole('button', { name: `Download ${PDF_NAME}` }));
    assert.equal(pdf.name, PDF_NAME);
    assert.deepEqual(pdf.bytes, PDF);
  }
  assert.match(await text(page, '#docs-message'), new RegExp(`download of ${PDF_NAME} has started`));

  // Everything as a ZIP: every entry's bytes.
  const zip = await download(page, page.getByRole('button', { name: 'Download all (ZIP)' }));
  assert.equal(zip.name, `${share.reference}.zip`);
  const entries = unzip(zip.bytes);
  assert.deepEqual(Object.keys(entries).sort(), [TEXT_NAME, PDF_NAME].sort());
  assert.deepEqual(entries[PDF_NAME], PDF);
  assert.deepEqual(entries[TEXT_NAME], TEXT);

  // The practice sees the read receipts.
  const view = await practice('GET', `/v1/shares/${share.id}`);
  const types = view.events.map((e) => e.type);
  for (const t of ['opened', 'verified', 'document_downloaded', 'archive_downloaded']) assert.ok(types.includes(t), t);
  await closePage(page);
});

test('the code is accepted as 123456, 123-456 and 123 456', async () => {
  for (const form of [(c) => c, (c) => `${c.slice(0, 3)}-${c.slice(3)}`, (c) => `${c.slice(0, 3)} ${c.slice(3)}`]) {
    const share = await createShare();
    const code = await codeFor(share.id);
    const page = await openPage(share.link);
    await enterCode(page, form(code));
    await page.getByRole('heading', { name: 'Your documents' }).waitFor();
    await closePage(page);
  }
});

test('a wrong code says how many tries are left; a malformed one asks for six digits', async () => {
  const share = await createShare();
  const code = await codeFor(share.id);
  const page = await openPage(share.link);
  await enterCode(page, '12345');
  await page.locator('#form-error', { hasText: 'A code has 6 digits' }).waitFor();
  await enterCode(page, wrongCode(code));
  await page.locator('#form-error', { hasText: 'This code is not correct. You have 4 more tries.' }).waitFor();
  assert.equal(await page.getByRole('alert').innerText(), 'This code is not correct. You have 4 more tries.');
  assert.equal(await activeId(page), 'code', 'focus goes back to the field');
  assert.equal(await page.locator('#code').getAttribute('aria-invalid'), 'true');
  await snap(page, 'wrong-code');
  // The right code still works after a wrong one.
  await enterCode(page, code);
  await page.getByRole('heading', { name: 'Your documents' }).waitFor();
  await closePage(page);
});

test('five wrong codes lock the link, and the page says whom to call', async () => {
  const share = await createShare();
  const code = await codeFor(share.id);
  const page = await openPage(share.link);
  for (let left = 4; left >= 1; left--) {
    await enterCode(page, wrongCode(code));
    await page.locator('#form-error', { hasText: left === 1 ? 'You have 1 more try.' : `You have ${left} more tries.` }).waitFor();
  }
  await enterCode(page, wrongCode(code));
  await page.getByRole('heading', { name: 'This link is locked' }).waitFor();
  assert.equal(await activeId(page), 'problem-heading');
  assert.match(await text(page, '#problem-text'), /call your practice/);
  assert.equal(await text(page, '#problem-ref'), `Please call ${PRACTICE} and mention the reference ${share.reference}.`);
  await snap(page, 'locked');
  // Still locked when opened again, even with the right code gone unused.
  await page.reload();
  await page.getByRole('heading', { name: 'This link is locked' }).waitFor();
  assert.equal(await page.locator('#code').isVisible(), false);
  await closePage(page);
});

test('revoked, unknown, not yet sent and expired links are explained in plain words', async () => {
  const share = await createShare();
  await practice('DELETE', `/v1/shares/${share.id}`);
  let page = await openPage(share.link);
  await page.getByRole('heading', { name: 'These documents have been withdrawn' }).waitFor();
  assert.match(await text(page, '#problem-text'), /contact your practice/);
  await snap(page, 'revoked');
  await closePage(page);

  page = await openPage(`${server.url}/s/AAAAAAAAAAAAAAAAAAAAAA`);
  await page.getByRole('heading', { name: 'This link does not work' }).waitFor();
  await snap(page, 'not-found');
  await closePage(page);

  // A share still waiting for its uploads (or being sent, archive not yet built) is not there
  // for the patient yet: its link reaches them with the notification, once it is active.
  const waiting = await createShare({
    documents: [{ filename: 'Scan.pdf', content_type: 'application/pdf', size: 4096, sha256: 'ab'.repeat(32) }]
  });
  assert.equal(waiting.status, 'awaiting_upload');
  page = await openPage(waiting.link);
  await page.getByRole('heading', { name: 'This link does not work' }).waitFor();
  assert.equal(await page.locator('#code').isVisible(), false);
  await closePage(page);

  // The server's clock cannot be moved from outside, so this one state comes from a stubbed
  // answer (the API's exact `expired` error); every other state here is the real server's.
  const live = await createShare();
  page = await openPage(null);
  await page.route(`**/v1/public/shares/${live.id}`, (route) => route.fulfill({
    status: 410, contentType: 'application/json',
    body: JSON.stringify({ error: { code: 'expired', message: 'this link has expired' } })
  }));
  await page.goto(live.link);
  await page.getByRole('heading', { name: 'This link has expired' }).waitFor();
  assert.match(await text(page, '#problem-text'), /ask your practice to send them to you again/);
  await snap(page, 'expired');
  await closePage(page);
});

test('an expired code (strict code lifetime) offers a new one', async () => {
  const share = await createShare();
  const page = await openPage(null);
  await page.route(`**/v1/public/shares/${share.id}/verify`, (route) => route.fulfill({
    status: 410, contentType: 'application/json',
    body: JSON.stringify({ error: { code: 'expired_code', message: 'this code has expired' } })
  }));
  await page.goto(share.link);
  await enterCode(page, '123456');
  await page.locator('#form-error', { hasText: 'This code has expired. Please ask for a new one below.' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Send me a new code' }).isVisible(), true);
  await closePage(page);
});

test('language: from the browser, with a visible switch that changes every text and <html lang>', async () => {
  const share = await createShare();
  const page = await openPage(share.link, { locale: 'de-CH' });
  await page.getByRole('heading', { name: 'Code eingeben' }).waitFor();
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'de');
  assert.equal(await text(page, '#share-title'), `${PRACTICE} hat Ihnen Dokumente geschickt`);
  assert.equal(await page.getByRole('button', { name: 'Deutsch' }).getAttribute('aria-pressed'), 'true');
  await snap(page, 'code-de');

  const expected = {
    fr: ['Saisissez votre code', 'Code (6 chiffres)', 'Ouvrir mes documents'],
    it: ['Inserisca il codice', 'Codice (6 cifre)', 'Apri i miei documenti'],
    en: ['Enter your code', 'Code (6 digits)', 'Open my documents'],
    de: ['Code eingeben', 'Code (6 Ziffern)', 'Meine Dokumente öffnen']
  };
  const names = { fr: 'Français', it: 'Italiano', en: 'English', de: 'Deutsch' };
  for (const [lang, [heading, label, submit]] of Object.entries(expected)) {
    await page.getByRole('button', { name: names[lang] }).click();
    await page.getByRole('heading', { name: heading }).waitFor();
    assert.equal(await page.evaluate(() => document.documentElement.lang), lang);
    assert.equal(await page.getByRole('button', { name: names[lang] }).getAttribute('aria-pressed'), 'true');
    await page.getByLabel(label).waitFor();
    await page.getByRole('button', { name: submit }).waitFor();
    if (lang === 'fr') await snap(page, 'code-fr');
  }
  // The choice sticks on the next visit.
  await page.getByRole('button', { name: 'Italiano' }).click();
  await page.reload();
  await page.getByRole('heading', { name: 'Inserisca il codice' }).waitFor();
  // Errors are translated too.
  await enterCode(page, wrongCode(await codeFor(share.id)));
  await page.locator('#form-error', { hasText: 'Questo codice non è corretto. Le rimangono 4 tentativi.' }).waitFor();
  await closePage(page);

  for (const [locale, heading] of [['fr-CH', 'Saisissez votre code'], ['it-CH', 'Inserisca il codice']]) {
    const p = await openPage(share.link, { locale });
    await p.getByRole('heading', { name: heading }).waitFor();
    await closePage(p);
  }
});

test('self-service: a new code right after the first one shows the waiting time', async () => {
  const share = await createShare();
  const page = await openPage(share.link);
  await page.getByRole('heading', { name: 'No code, or the code does not work?' }).waitFor();
  // From the share's self_service.retry_after: about 30 minutes after the first SMS.
  // The time names its weekday when the wait ends on another day (a run near midnight).
  assert.match(await text(page, '#ss-wait'), /^You can ask for a new code in (30|29) minutes \(at ([A-Z][a-z]+ )?\d\d:\d\d\)\.$/);
  await page.getByRole('button', { name: 'Send me a new code' }).click();
  // The 429's answer, in the live region.
  await page.locator('#ss-message', { hasText: 'It is too early for another code.' }).waitFor();
  assert.match(await text(page, '#ss-message'), /You can ask for a new code from ([A-Z][a-z]+ )?\d\d:\d\d\./);
  assert.equal(await page.locator('#ss-message').getAttribute('role'), 'status');
  await snap(page, 'self-service-wait');
  await closePage(page);

  // Without self-service, no button: the practice is the way.
  const plain = await createShare({ auth: { self_service: false } });
  const p = await openPage(plain.link);
  await p.getByRole('heading', { name: 'Enter your code' }).waitFor();
  assert.equal(await p.getByRole('button', { name: 'Send me a new code' }).count(), 0);
  assert.equal(await text(p, '#code-help'), 'If no text message arrives, please contact your practice.');
  await closePage(p);
});

test('when access has run out (401), the page goes back to the code step and says why', async () => {
  const share = await createShare();
  const code = await codeFor(share.id);
  const page = await openPage(share.link);
  await enterCode(page, code);
  await page.getByRole('heading', { name: 'Your documents' }).waitFor();
  // The 15-minute token cannot be aged from outside: answer this one call as the server would.
  await page.route(`**/v1/public/shares/${share.id}/documents/*`, (route) => route.fulfill({
    status: 401, contentType: 'application/json',
    body: JSON.stringify({ error: { code: 'unauthorized', message: 'access token expired' } })
  }));
  await page.getByRole('button', { name: `Download ${PDF_NAME}` }).click();
  await page.locator('#form-error', { hasText: 'access ends after 15 minutes' }).waitFor();
  assert.equal(await activeId(page), 'code');
  await snap(page, 'session-expired');
  await page.unroute(`**/v1/public/shares/${share.id}/documents/*`);
  await enterCode(page, code);
  await page.getByRole('heading', { name: 'Your documents' }).waitFor();
  const pdf = await download(page, page.getByRole('button', { name: `Download ${PDF_NAME}` }));
  assert.deepEqual(pdf.bytes, PDF);
  await closePage(page);
});

test('date of birth and insurance number get their own fields', async () => {
  const dob = await createShare({ auth: { method: 'date_of_birth' }, recipient: { phone: undefined, date_of_birth: '1980-02-29' } });
  let page = await openPage(dob.link);
  await page.getByRole('heading', { name: 'Confirm your date of birth' }).waitFor();
  const field = page.getByLabel('Your date of birth', { exact: true });
  assert.equal(await field.getAttribute('type'), 'date');
  await field.fill('1980-03-01');
  await field.press('Enter');
  await page.locator('#form-error', { hasText: 'This date of birth does not match' }).waitFor();
  await snap(page, 'date-of-birth');
  await field.fill('1980-02-29');
  await field.press('Enter');
  await page.getByRole('heading', { name: 'Your documents' }).waitFor();
  await closePage(page);

  const ins = await createShare({ auth: { method: 'insurance_number' }, recipient: { phone: undefined, insurance_number: '7561234567897' } });
  page = await openPage(ins.link);
  await page.getByRole('heading', { name: 'Enter your insurance number' }).waitFor();
  await page.getByLabel('Your insurance number', { exact: true }).fill('756.1234.5678.97');
  await page.getByLabel('Your insurance number', { exact: true }).press('Enter');
  await page.getByRole('heading', { name: 'Your documents' }).waitFor();
  await closePage(page);
});

// What a browser's page translator must leave alone, under `selector`: the text of every text
// node whose element says translate="no" (itself or an ancestor), joined by '|'.
async function untranslated(page, selector) {
  return page.evaluate((sel) => {
    const found = [];
    const walker = document.createTreeWalker(document.querySelector(sel), NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (node.data.trim() && !node.parentElement.translate) found.push(node.data.replace(/\u00a0/g, ' '));
    }
    return found.join('|');
  }, selector);
}

async function translatable(page, selector) {
  return page.locator(selector).evaluate((el) => el.translate);
}

test('a page translator leaves alone what the patient types or compares, and translates the rest', async () => {
  const share = await createShare();
  const code = await codeFor(share.id);
  const info = await (await fetch(`${server.url}/v1/public/shares/${share.id}`)).json();
  const page = await openPage(share.link);
  await page.getByRole('heading', { name: 'Enter your code' }).waitFor();

  // The fields the patient types into: a translator rewriting the code field refuses right codes.
  for (const field of ['#code', '#dob', '#insurance']) assert.equal(await translatable(page, field), false, field);
  // What the patient compares with the SMS, the letter or the practice, inside sentences that
  // are themselves translated.
  assert.equal(await untranslated(page, '#share-reference'), share.reference);
  assert.equal(await untranslated(page, '#share-title'), PRACTICE);
  assert.equal(await untranslated(page, '#code-intro'), info.masked_phone);
  for (const sentence of ['#share-title', '#code-intro', '#code-heading', 'label[for=code]']) {
    assert.equal(await translatable(page, sentence), true, sentence);
  }
  assert.equal(await text(page, '#share-title'), `${PRACTICE} has sent you documents`);

  // A new code's confirmation names the number it went to (the first SMS is too recent for a
  // real one: answered here as the server would).
  await page.route(`**/v1/public/shares/${share.id}/code`, (route) => route.fulfill({
    status: 200, contentType: 'application/json', body: JSON.stringify({ status: 'sent', masked_phone: info.masked_phone })
  }));
  await page.getByRole('button', { name: 'Send me a new code' }).click();
  await page.locator('#ss-message', { hasText: 'A new code is on its way' }).waitFor();
  assert.equal(await untranslated(page, '#ss-message'), info.masked_phone);
  await page.unroute(`**/v1/public/shares/${share.id}/code`);

  // The documents: their names, as the downloaded files will be called.
  await enterCode(page, code);
  await page.getByRole('heading', { name: 'Your documents' }).waitFor();
  assert.equal(await untranslated(page, '#docs-intro'), PRACTICE);
  assert.equal(await untranslated(page, '#docs-list'), [PDF_NAME, ` ${PDF_NAME}`, TEXT_NAME, ` ${TEXT_NAME}`].join('|'));
  await download(page, page.getByRole('button', { name: `Download ${PDF_NAME}` }));
  assert.equal(await untranslated(page, '#docs-message'), PDF_NAME);
  assert.match(await text(page, '#docs-message'), new RegExp(`download of ${PDF_NAME} has started`));
  await closePage(page);

  // A locked link: whom to call, and the reference to give.
  const locked = await createShare();
  const lockedCode = await codeFor(locked.id);
  const p = await openPage(locked.link);
  for (let left = 4; left >= 1; left--) {
    await enterCode(p, wrongCode(lockedCode));
    await p.locator('#form-error', { hasText: left === 1 ? 'You have 1 more try.' : `You have ${left} more tries.` }).waitFor();
  }
  await enterCode(p, wrongCode(lockedCode));
  await p.getByRole('heading', { name: 'This link is locked' }).waitFor();
  assert.equal(await untranslated(p, '#problem-ref'), `${PRACTICE}|${locked.reference}`);
  assert.equal(await text(p, '#problem-ref'), `Please call ${PRACTICE} and mention the reference ${locked.reference}.`);
  await closePage(p);
});

test('a reply: a message and files sent from the keyboard, a file that is not what it says named, the practice reads it', async () => {
  // A share that takes no replies shows no form.
  const plain = await createShare();
  let page = await openPage(plain.link);
  await enterCode(page, await codeFor(plain.id));
  await page.getByRole('heading', { name: 'Your documents' }).waitFor();
  assert.equal(await page.locator('#reply').isHidden(), true);
  await closePage(page);

  const share = await createShare({ allow_reply: true });
  page = await openPage(share.link);
  await enterCode(page, await codeFor(share.id));
  await page.getByRole('heading', { name: `Reply to ${PRACTICE}` }).waitFor();
  assert.equal(await page.locator('#reply-error').getAttribute('role'), 'alert');
  assert.equal(await page.locator('#reply-progress').getAttribute('role'), 'status');

  // Nothing written or chosen: the form says so and puts the cursor where it is needed.
  await page.locator('#reply-send').focus();
  await page.keyboard.press('Enter');
  assert.equal(await text(page, '#reply-error'), 'Please write a message or choose a file.');
  assert.equal(await activeId(page), 'reply-message');
  await page.keyboard.type('Guten Tag, anbei die unterschriebene Einwilligung.\nFreundliche Grüsse');
  // A picture that is a web page inside: the server refuses it by its first bytes.
  const fakePng = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>');
  await page.locator('#reply-files').setInputFiles([
    { name: 'Einwilligung.pdf', mimeType: 'application/pdf', buffer: PDF },
    { name: 'Foto.png', mimeType: 'image/png', buffer: fakePng }
  ]);
  await snap(page, 'reply-form');
  await page.locator('#reply-files').focus();
  await page.keyboard.press('Tab');
  assert.equal(await activeId(page), 'reply-send');
  await page.keyboard.press('Enter');

  await page.getByRole('heading', { name: 'Your reply was sent' }).waitFor();
  assert.equal(await activeId(page), 'reply-receipt-heading', 'focus on the receipt');
  assert.match(await text(page, '#reply-receipt-time'), new RegExp(`^${PRACTICE.replace(/\./g, '\\.')} received it on `));
  assert.match(await text(page, '#reply-receipt-message'), /^Guten Tag, anbei die unterschriebene Einwilligung\.\nFreundliche Grüsse$/);
  assert.deepEqual(await page.locator('#reply-receipt-files li').allInnerTexts(), [
    'Einwilligung.pdf: sent',
    'Foto.png: not sent, because it is not a PDF, JPEG or PNG file'
  ]);
  await snap(page, 'reply-receipt');

  // The practice reads the reply and fetches the file.
  const { replies } = await practice('GET', `/v1/shares/${share.id}/replies`);
  assert.equal(replies.length, 1);
  assert.equal(replies[0].message, 'Guten Tag, anbei die unterschriebene Einwilligung.\nFreundliche Grüsse');
  assert.deepEqual(replies[0].files.map((f) => [f.filename, f.status, f.reason]),
    [['Einwilligung.pdf', 'accepted', undefined], ['Foto.png', 'refused', 'wrong_type']]);
  const { url } = await practice('GET', `/v1/shares/${share.id}/replies/${replies[0].id}/files/0`);
  assert.deepEqual(Buffer.from(await (await fetch(url)).arrayBuffer()), PDF);

  // A network that drops: the upload and the submit fail; sending again submits the reply
  // already started (one reply counted, not two), and the receipt names the file that missed.
  await page.getByRole('button', { name: 'Send another reply' }).click();
  assert.equal(await activeId(page), 'reply-message');
  let starts = 0;
  page.on('request', (r) => { if (r.method() === 'POST' && /\/replies$/.test(r.url())) starts++; });
  await page.route('**/_blobs/**', (route) => route.abort());
  await page.route('**/submit', (route) => route.abort());
  await page.locator('#reply-message').fill('Die Versicherungskarte');
  await page.locator('#reply-files').setInputFiles([{ name: 'Karte.pdf', mimeType: 'application/pdf', buffer: PDF }]);
  await page.locator('#reply-send').click();
  await page.locator('#reply-error').filter({ hasText: 'Your reply could not be sent.' }).waitFor();
  await page.unroute('**/submit');
  await page.locator('#reply-send').click();
  await page.getByRole('heading', { name: 'Your reply was sent' }).waitFor();
  await page.unroute('**/_blobs/**');
  assert.equal(starts, 1, 'the second try submitted the reply the first one started');
  assert.deepEqual(await page.locator('#reply-receipt-files li').allInnerTexts(),
    ['Karte.pdf: not sent, because it could not be uploaded']);
  assert.equal((await practice('GET', `/v1/shares/${share.id}/replies`)).replies.length, 2);

  // Another reply: a file over 20 MB is named before anything is sent, in the page's language.
  await page.getByRole('button', { name: 'Send another reply' }).click();
  await page.locator('#reply-files').setInputFiles([
    { name: 'Scan.pdf', mimeType: 'application/pdf', buffer: Buffer.alloc(20 * 1024 * 1024 + 1) }
  ]);
  await page.locator('#reply-send').click();
  assert.equal(await text(page, '#reply-error'), 'Scan.pdf is too large: each file may be up to 20 MB.');
  assert.equal(await activeId(page), 'reply-files');
  assert.equal(await page.locator('#reply-files').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.locator('#reply-message').getAttribute('aria-invalid'), null);
  await page.locator('button.lang[data-lang="de"]').click();
  await page.getByRole('heading', { name: `Antwort an ${PRACTICE}` }).waitFor();
  assert.equal(await text(page, '#reply-error'), 'Scan.pdf ist zu gross: Jede Datei darf bis zu 20 MB haben.');
  assert.equal((await practice('GET', `/v1/shares/${share.id}/replies`)).replies.length, 2, 'nothing more sent');
  await closePage(page);
});

test('no page broke its CSP or threw a script error', () => {
  assert.deepEqual(problems, []);
});
