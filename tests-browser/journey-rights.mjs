// The patient's rights, across three audiences: Astrid Haugland reads everything about her
// on the printable page, asks for a correction of a measurement and restricts another; her
// physician accepts the correction from the queue; Astrid reads the outcome and asks for
// erasure; the tenant admin sees the plan (counts, never records) and erases; Astrid reads
// that outcome. Every page is checked for console errors, CSP violations and axe findings.
import { start } from './lib.mjs';
import fs from 'node:fs';
import https from 'node:https';

const j = await start('rights');
const astrid = j.user('astrid.haugland');
const patientId = astrid.patient_id;

/// A FHIR call as `user` with their API token, trusting the demo CA.
function api(user, method, path, body) {
  const u = new URL(`${j.baseUrl}/fhir/r4${path}`);
  const data = body ? JSON.stringify(body) : undefined;
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        method,
        hostname: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        ca: fs.readFileSync(j.creds.ca_cert),
        headers: {
          authorization: `Bearer ${j.user(user).api_token}`,
          ...(data ? { 'content-type': 'application/fhir+json' } : {}),
        },
      },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode, text }));
      },
    );
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

function pulse(value, when) {
  return {
    resourceType: 'Observation',
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }], text: 'Puls (reise)' },
    subject: { reference: `Patient/${patientId}` },
    effectiveDateTime: when,
    valueQuantity: { value, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
  };
}

let wrong, other;
await j.step('her physician records two measurements (API)', async () => {
  const a = await api('lege.lund', 'POST', '/Observation', pulse(190, '2026-03-05T08:00:00Z'));
  j.assert(a.status === 201, `create failed: ${a.status} ${a.text}`);
  wrong = JSON.parse(a.text).id;
  const b = await api('lege.lund', 'POST', '/Observation', pulse(58, '2026-03-06T08:00:00Z'));
  j.assert(b.status === 201, `create failed: ${b.status}`);
  other = JSON.parse(b.text).id;
});

await j.step('the patient reads everything about her on one printable page', async () => {
  await j.login('astrid.haugland');
  await j.click('nav a[href="/me/rights"]');
  j.assert(j.path() === '/me/rights', `expected /me/rights, got ${j.path()}`);
  await j.shot('overview');
  await j.click('#printable-record');
  j.assert(j.path() === '/me/rights/record', `expected the printable page, got ${j.path()}`);
  j.assert(await j.page.locator('#cat-demographics').isVisible(), 'no personal details on the printable page');
  await j.shot('printable');
});

await j.step('she asks for a correction, with an error in place first', async () => {
  await j.visit('/me/rights/records');
  await j.shot('records');
  await j.click(`a[href="/me/rights/correct?type=Observation&id=${wrong}"]`);
  j.assert(j.path().startsWith('/me/rights/correct'), `expected the form, got ${j.path()}`);
  j.expectConsole(/status of 400/);
  await j.page.locator('#what_is_wrong').fill(' ');
  await j.page.locator('#what_is_wrong').evaluate((e) => e.removeAttribute('required'));
  await j.click('#correct-form button[type=submit]');
  j.assert(await j.page.locator('#correct-error[role=alert]').isVisible(), 'no error for an empty request');
  await j.page.locator('#what_is_wrong').fill('Pulsen var 90, ikke 190');
  await j.page.locator('#should_say').fill('90 slag i minuttet');
  await j.click('#correct-form button[type=submit]');
  j.assert(j.path() === '/me/rights?saved=correction', `expected the overview, got ${j.path()}`);
  j.assert((await j.text('#my-corrections')).includes('Pulsen var 90'), 'the request is not listed');
});

await j.step('she restricts the other measurement', async () => {
  await j.visit('/me/rights/records');
  j.page.once('dialog', (d) => d.accept());
  await j.click(`form[action="/me/rights/restrict"]:has(input[value="${other}"]) button[type=submit]`);
  j.assert(j.path() === '/me/rights/records?saved=restricted', `expected the saved page, got ${j.path()}`);
  const refused = await api('lege.lund', 'GET', `/Observation/${other}`);
  j.assert(refused.status === 403, `the physician still reads the restricted record (${refused.status})`);
  await j.logout();
});

await j.step('her physician accepts the correction from the queue', async () => {
  await j.login('lege.lund');
  await j.click('nav a[href="/rights/corrections"]');
  j.assert(j.path() === '/rights/corrections', `expected the queue, got ${j.path()}`);
  await j.shot('queue');
  await j.click('form[action$="/accept"] button[type=submit]');
  j.assert(j.path() === '/rights/corrections?saved=accepted', `expected the saved queue, got ${j.path()}`);
  j.assert(await j.page.locator('#no-corrections').isVisible(), 'the request is still waiting');
  await j.logout();
});

await j.step('she reads the outcome and asks for erasure', async () => {
  await j.login('astrid.haugland');
  await j.visit('/me/rights');
  j.assert((await j.text('#my-corrections')).includes('Gjennomført'), 'the accepted correction is not shown');
  j.page.once('dialog', (d) => d.accept());
  await j.page.locator('#erasure-note').fill('Jeg flytter fra kommunen');
  await j.click('#request-erasure button[type=submit]');
  j.assert(j.path() === '/me/rights?saved=erasure', `expected the overview, got ${j.path()}`);
  j.assert(await j.page.locator('#erasure-pending').isVisible(), 'the request is not pending');
  await j.logout();
});

await j.step('the tenant admin sees the plan and erases', async () => {
  await j.login('admin.nilsen');
  await j.click('nav a[href="/manage/erasure"]');
  j.assert(j.path() === '/manage/erasure', `expected the erasure page, got ${j.path()}`);
  j.assert((await j.text('main')).includes('Jeg flytter fra kommunen'), 'the request is not shown');
  await j.shot('admin');
  await j.page.locator('textarea[id^="erase-reason-"]').fill('Pasientens krav etter art. 17, journalplikten vurdert');
  j.page.once('dialog', (d) => d.accept());
  await j.click('form[action="/manage/erasure/erase"] button[type=submit]');
  j.assert(j.path() === '/manage/erasure?saved=erased', `expected the saved page, got ${j.path()}`);
  const gone = await api('lege.lund', 'GET', `/Observation/${wrong}`);
  j.assert(gone.status === 404, `the erased measurement is still there (${gone.status})`);
  await j.logout();
});

await j.step('she reads the outcome of the erasure', async () => {
  await j.login('astrid.haugland');
  await j.visit('/me/rights');
  j.assert((await j.text('#my-erasures')).includes('Gjennomført'), 'the erasure is not shown as done');
  await j.shot('erased');
  await j.phoneShot('erased');
});

await j.finish();
