// The patient's and the relative's journey: a clinician without a care relationship opens
// emergency access to Astrid Haugland's record (over the API); Astrid logs in, reads her record,
// finds that emergency access with its reason in "Who has looked at my record", blocks a nurse
// and lifts the block again (with a validation error on the way), widens her daughter's consent
// to medications, and opens the download page. Her daughter Kari then logs in, sees exactly
// what the consent covers, and opens what she may see.
import { start } from './lib.mjs';
import fs from 'node:fs';
import https from 'node:https';

const j = await start('patient');
const astrid = j.user('astrid.haugland');
const patientId = astrid.patient_id;
const reason = 'Pasienten ringte legevakten, trenger medisinlisten';

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

await j.step('a clinician without a care relationship opens emergency access (API)', async () => {
  const clinician = j.creds.users.find(
    (u) =>
      u.tenant === astrid.tenant &&
      u.roles.some((r) => r === 'physician' || r === 'nurse') &&
      !u.patients.includes(patientId) &&
      !u.refused_patients.includes(patientId),
  );
  j.assert(clinician, 'no clinician without a relationship to the patient');
  const refused = await api(clinician.username, 'GET', `/Patient/${patientId}`);
  j.assert(refused.status === 403, `expected 403 before emergency access, got ${refused.status}`);
  const opened = await api(clinician.username, 'POST', `/Patient/${patientId}/$emergency-access`, {
    resourceType: 'Parameters',
    parameter: [{ name: 'reason', valueString: reason }],
  });
  j.assert(opened.status === 200, `emergency access failed: ${opened.status} ${opened.text}`);
  const read = await api(clinician.username, 'GET', `/Patient/${patientId}`);
  j.assert(read.status === 200, `expected 200 under emergency access, got ${read.status}`);
});

await j.step('the patient logs in and reads her record', async () => {
  await j.login('astrid.haugland');
  await j.visit('/me/record');
  j.assert(j.path() === '/me/record', `expected /me/record, got ${j.path()}`);
  j.assert((await j.page.locator('main h1').count()) === 1, 'the record has not one h1');
  j.assert(await j.page.locator('#cat-demographics').isVisible(), 'no personal details');
  j.assert((await j.page.locator('figure.chart svg').count()) > 0, 'no measurement chart');
  j.assert(await j.page.locator('#cat-medications').isVisible(), 'no medications section');
  j.assert(await j.page.locator('#cat-clinical-notes').isVisible(), 'no notes section');
  await j.shot('record');
});

await j.step('who has looked: the emergency access with its stated reason', async () => {
  await j.click('nav a[href="/me/log"]');
  j.assert(j.path() === '/me/log', `expected /me/log, got ${j.path()}`);
  j.assert(await j.page.locator('#emergency-summary').isVisible(), 'the emergency access is not summarised');
  const row = j.page.locator('table.access-log tr.emergency').first();
  j.assert(await row.isVisible(), 'no highlighted emergency row');
  j.assert((await row.innerText()).includes(reason), 'the emergency row does not show the stated reason');
  await j.shot('log');
  await j.phoneShot('log');
});

await j.step('a period without accesses shows none', async () => {
  await j.page.locator('#from').fill('2001-01-01');
  await j.page.locator('#to').fill('2001-01-31');
  await j.click('form.filters button[type=submit]');
  j.assert((await j.page.locator('table.access-log').count()) === 0, 'accesses shown for 2001');
  await j.visit('/me/log');
});

await j.step('blocks: an error in place, then a nurse blocked and the block lifted', async () => {
  await j.click('nav a[href="/me/blocks"]');
  await j.shot('blocks');
  j.expectConsole(/status of 400/);
  await j.page.locator('#kind-unit').check();
  await j.click('#new-block button[type=submit]');
  j.assert(await j.page.locator('#block-error[role=alert]').isVisible(), 'no error shown for a block without a unit');
  j.assert((await j.page.locator('#unit[aria-invalid=true]').count()) === 1, 'the unit field is not marked invalid');
  await j.shot('blocks-error');
  await j.page.locator('#kind-person').check();
  const nurse = j.user('sykepleier.haugen').person_id;
  await j.page.locator('#person').selectOption(nurse);
  await j.click('#new-block button[type=submit]');
  j.assert(j.path() === '/me/blocks?saved=created', `expected the saved page, got ${j.path()}`);
  j.assert(await j.page.locator('main [role=status]').isVisible(), 'no confirmation after saving');
  const blocked = await api('sykepleier.haugen', 'GET', `/Patient/${patientId}`);
  j.assert(blocked.status === 403, `the nurse still reads the record (${blocked.status})`);
  await j.shot('blocks-saved');
  j.page.once('dialog', (d) => d.accept());
  await j.click('form[action="/me/blocks/lift"] button[type=submit]');
  j.assert(j.path() === '/me/blocks?saved=lifted', `expected the lifted page, got ${j.path()}`);
  const again = await api('sykepleier.haugen', 'GET', `/Patient/${patientId}`);
  j.assert(again.status === 200, `the nurse is still blocked (${again.status})`);
});

await j.step("relatives: the daughter's consent widened to medications", async () => {
  await j.click('nav a[href="/me/relatives"]');
  j.assert((await j.page.locator('main section.relative').count()) >= 1, 'no relative listed');
  await j.shot('relatives');
  const details = j.page.locator('section.relative details').first();
  await details.locator('summary').click();
  await details.locator('input[name=cat][value=medications]').check();
  await j.click('section.relative form.scope button[type=submit]');
  j.assert(j.path() === '/me/relatives?saved=changed', `expected the saved page, got ${j.path()}`);
});

await j.step('download my data', async () => {
  await j.click('nav a[href="/me/export"]');
  await j.shot('export');
  const [download] = await Promise.all([
    j.page.waitForEvent('download'),
    j.page.locator('#download-record').click(),
  ]);
  j.assert(download.suggestedFilename().endsWith('.json'), `unexpected file ${download.suggestedFilename()}`);
  const file = await download.path();
  const bundle = JSON.parse(fs.readFileSync(file, 'utf8'));
  j.assert(bundle.resourceType === 'Bundle' && bundle.entry[0].resource.id === patientId, 'the download is not her record');
  await j.logout();
});

await j.step('the daughter sees what the consent covers and opens it', async () => {
  await j.login('kari.haugland');
  await j.visit('/relative');
  j.assert((await j.page.locator('main section.panel').count()) >= 1, 'no patient listed for the relative');
  await j.shot('relative');
  await j.click(`a[href="/relative/${patientId}"]`);
  j.assert(await j.page.locator('#cat-medications').isVisible(), 'the consented medications are not shown');
  j.assert((await j.page.locator('#cat-measurements').count()) === 0, 'measurements shown without consent');
  await j.shot('relative-patient');
  await j.logout();
});

await j.finish();
