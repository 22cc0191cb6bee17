// A physician's day: My patients (with the basis and end of each care relationship), a
// patient's overview with charts and documents, a patient outside their care refused with the
// reason, emergency access opened with a reason and a warning, and the record read under it.
// The language switch and the account page on the way.
import { start } from './lib.mjs';

const j = await start('clinician');
const tour = j.creds.tour;
const lund = j.user('lege.lund');

await j.step('the physician logs in and lands on My patients', async () => {
  await j.login('lege.lund');
  j.assert(j.path() === '/patients', `expected /patients, got ${j.path()}`);
  const rows = await j.page.locator('main table tbody tr').count();
  j.assert(rows === lund.patients.length, `My patients lists ${rows} rows, the demo has ${lund.patients.length}`);
  const main = await j.text('main');
  j.assert(!main.includes(tour.patient_name), `${tour.patient_name} is listed, but is in no one's care`);
  await j.shot('my-patients');
  await j.phoneShot('my-patients');
});

await j.step('a patient overview shows categories, charts with reference ranges and documents', async () => {
  await j.click(`main table a[href="/patients/${lund.patients[0]}"]`);
  j.assert(await j.page.locator('figure.chart svg[role=img]').count() > 0, 'no chart');
  j.assert(await j.page.locator('figure.chart svg .chart-range').count() > 0, 'no reference range band');
  j.assert(await j.page.locator('.badge').count() > 0, 'no document status');
  await j.shot('patient-overview');
  await j.phoneShot('patient-overview');
});

await j.step('a wrong national id gives a readable error in place', async () => {
  await j.visit('/patients');
  await j.page.locator('#nid').fill('12345678901');
  j.expectConsole(/status of 400/);
  await j.click('form[action="/patients/find"] button[type=submit]');
  j.assert(await j.page.locator('#nid[aria-invalid=true]').count() === 1, 'the field is not marked invalid');
  j.assert((await j.text('[role=alert]')).length > 10, 'no readable error');
  j.assert((await j.page.locator('#nid').inputValue()) === '12345678901', 'the input was not kept');
});

await j.step('a patient outside the care relationships is refused, with the reason', async () => {
  await j.page.locator('#nid').fill(tour.patient_national_id);
  j.expectConsole(/status of 403/);
  await j.click('form[action="/patients/find"] button[type=submit]');
  j.assert(j.path() === `/patients/${tour.patient_id}`, `expected the patient's page, got ${j.path()}`);
  j.assert((await j.text('main [role=alert]')).length > 10, 'no reason is given');
  j.assert(await j.page.locator('form[action$="/emergency"]').count() === 1, 'no emergency access form');
  const warning = await j.text('main .warning');
  j.assert(warning.length > 50, 'no warning that emergency access is logged and shown to the patient');
  await j.shot('refused-with-emergency-form');
});

await j.step('emergency access opens with a reason and a time limit', async () => {
  await j.page.locator('#reason').fill('Pasienten er akutt syk, ringt inn fra legevakten');
  await j.page.locator('#minutes').selectOption('60');
  await j.page.locator('input[name=confirm]').check();
  await j.click('form[action$="/emergency"] button[type=submit]');
  j.assert(j.path().startsWith(`/patients/${tour.patient_id}`), `expected the record, got ${j.path()}`);
  j.assert(await j.page.locator('main .danger-box').count() === 1, 'the record does not say it is read under emergency access');
  j.assert((await j.text('main h1')).includes(tour.patient_name), 'the record is not the patient’s');
  await j.shot('record-under-emergency-access');
});

await j.step('My patients lists the open emergency access', async () => {
  await j.click('nav a[href="/patients"]');
  j.assert((await j.text('main')).includes(tour.patient_name), 'the open emergency access is not listed');
});

await j.step('the page switches to English and back', async () => {
  await j.click('header a.lang');
  j.assert((await j.page.getAttribute('html', 'lang')) === 'en', 'the page is not in English');
  j.assert((await j.text('main h1')) === 'My patients', 'the heading is not English');
  await j.shot('my-patients-english');
  await j.click('header a.lang');
  j.assert((await j.page.getAttribute('html', 'lang')) === 'nb', 'the page is not back in Norwegian');
});

await j.step('the physician logs out', async () => {
  await j.logout();
});

await j.finish();
