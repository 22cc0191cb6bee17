// The security officer's round: a physician opens emergency access (through the API), the
// alert appears in the queue, the officer reads the events behind it, gets a readable error
// for a too-short note, closes it as a deviation that is a personal-data breach and sees the
// 72-hour clock under Deviations; then the emergency-access review, an audit search with
// filters, and the log's checkpoints: "verify now" and "sign a checkpoint now".
import { start } from './lib.mjs';
import fs from 'node:fs';
import https from 'node:https';

const j = await start('security');
const tour = j.creds.tour;
const lund = j.user('lege.lund');

/// A JSON call to the API over TLS, trusting the demo CA only.
function api(method, path, token, body) {
  const u = new URL(j.baseUrl + path);
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        hostname: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        method,
        ca: fs.readFileSync(j.creds.ca_cert),
        headers: {
          authorization: `Bearer ${token}`,
          accept: 'application/fhir+json',
          'content-type': 'application/fhir+json',
        },
      },
      (res) => {
        let data = '';
        res.on('data', (c) => (data += c));
        res.on('end', () => resolve({ status: res.statusCode, body: data }));
      },
    );
    req.on('error', reject);
    if (body) req.write(JSON.stringify(body));
    req.end();
  });
}

const reason = 'Pasienten er akutt syk, ringt inn fra legevakten';

await j.step('a physician opens emergency access to a patient outside their care', async () => {
  const r = await api('POST', `/fhir/r4/Patient/${tour.patient_id}/$emergency-access`, lund.api_token, {
    resourceType: 'Parameters',
    parameter: [{ name: 'reason', valueString: reason }],
  });
  j.assert(r.status === 200, `emergency access answered ${r.status}: ${r.body}`);
  const read = await api('GET', `/fhir/r4/Patient/${tour.patient_id}`, lund.api_token);
  j.assert(read.status === 200, `the read under emergency access answered ${read.status}`);
});

await j.step('the security officer logs in and lands on the alert queue', async () => {
  await j.login('sikkerhet.moe');
  if (j.path() === '/') await j.visit('/');
  j.assert(j.path() === '/security/alerts', `expected /security/alerts, got ${j.path()}`);
  j.assert(await j.page.locator('main table tbody tr').count() > 0, 'the queue is empty');
  j.assert(await j.page.locator('main table .badge').count() > 0, 'no severity or status badges');
  await j.shot('alerts');
  await j.phoneShot('alerts');
});

await j.step('an alert shows the events behind it', async () => {
  await j.click('main table tbody tr:first-child a[href^="/security/alerts/"]');
  j.assert(/^\/security\/alerts\/[^/]+$/.test(j.path()), `expected an alert, got ${j.path()}`);
  j.assert(await j.page.locator('main table tbody tr').count() > 0, 'no events behind the alert');
  j.assert((await j.text('main')).includes(reason), 'the reason stated for emergency access is not shown');
  j.assert(await j.page.locator('form[action$="/decision"]').count() === 1, 'no decision form');
  await j.shot('alert-detail');
  await j.phoneShot('alert-detail');
});

await j.step('a too-short note is refused in place, keeping the choice', async () => {
  await j.page.locator('#decision-deviation').check();
  await j.page.locator('#note').fill('nei');
  j.expectConsole(/status of 400/);
  await j.click('#decide');
  j.assert(await j.page.locator('#note[aria-invalid=true]').count() === 1, 'the note is not marked invalid');
  const alert = await j.text('#note-error');
  j.assert(alert.length > 10 && !/error|\{/i.test(alert), `the error is not readable: "${alert}"`);
  j.assert(await j.page.locator('#decision-deviation').isChecked(), 'the choice was not kept');
  j.assert((await j.page.locator('#note').inputValue()) === 'nei', 'the note was not kept');
  await j.shot('alert-decision-error');
});

await j.step('the alert is closed as a deviation and a personal-data breach', async () => {
  await j.page.locator('#note').fill('Ingen behandlingsrelasjon, og ikke akutt nok til nødtilgang');
  await j.page.locator('#breach').check();
  await j.click('#decide');
  j.assert(j.path().startsWith('/security/alerts?decided=deviation'), `expected the queue, got ${j.path()}`);
  j.assert(await j.page.locator('main [role=status]').count() === 1, 'no confirmation');
  await j.shot('alerts-after-decision');
});

await j.step('deviations show the 72-hour breach clock', async () => {
  await j.click('nav a[href="/security/deviations"]');
  const badge = await j.text('main table tbody .badge.warn');
  j.assert(/^7[01] t igjen$/.test(badge), `the clock reads "${badge}"`);
  await j.shot('deviations');
  await j.phoneShot('deviations');
});

await j.step('emergency-access reviews list the access with what was read', async () => {
  await j.click('nav a[href="/security/emergency"]');
  j.assert((await j.text('main table')).includes(reason), 'the access and its reason are not listed');
  j.assert(await j.page.locator('main table a[href^="/security/audit?"]').count() > 0, 'no link to the log');
  await j.shot('emergency');
  await j.phoneShot('emergency');
});

await j.step('the audit search filters by person and outcome', async () => {
  await j.click('main table a[href^="/security/audit?"]');
  j.assert(await j.page.locator('main table tbody tr').count() > 0, 'the accesses under emergency access are not found');
  await j.visit('/security/audit');
  await j.page.locator('#actor').selectOption(lund.person_id);
  await j.page.locator('#outcome').selectOption('success');
  await j.click('#search');
  j.assert(j.path().includes(`actor=${lund.person_id}`), `the filter is not in the address: ${j.path()}`);
  j.assert(await j.page.locator('main table tbody tr').count() > 0, 'no events found');
  await j.shot('audit-search');
  await j.phoneShot('audit-search');
});

await j.step('a wrong date is refused in place', async () => {
  j.expectConsole(/status of 400/);
  await j.visit('/security/audit?from=2026-02-31');
  j.assert(await j.page.locator('#from[aria-invalid=true]').count() === 1, 'the date is not marked invalid');
  j.assert((await j.text('#from-error')).length > 10, 'no readable error');
});

await j.step('a checkpoint is signed now, and the whole log verifies', async () => {
  await j.click('nav a[href="/security/checkpoints"]');
  await j.shot('checkpoints');
  await j.click('#sign');
  j.assert(j.path().startsWith('/security/checkpoints?signed='), `expected the status, got ${j.path()}`);
  j.assert(await j.page.locator('main [role=status]').count() === 1, 'no confirmation');
  j.assert(await j.page.locator('main .badge.ok').count() === 1, 'the latest checkpoint does not verify');
  await j.click('#verify');
  j.assert(await j.page.locator('#verify-result.success').count() === 1, 'the log does not verify');
  await j.shot('checkpoints-verified');
  await j.phoneShot('checkpoints-verified');
});

await j.step('the pages switch to English', async () => {
  await j.click('header a.lang');
  j.assert((await j.page.getAttribute('html', 'lang')) === 'en', 'the page is not in English');
  j.assert((await j.text('main h1')) === 'Log checkpoints', `the heading is "${await j.text('main h1')}"`);
  await j.click('nav a[href="/security/alerts"]');
  await j.shot('alerts-english');
  await j.click('header a.lang');
});

await j.step('the security officer logs out', async () => {
  await j.logout();
});

await j.finish();
