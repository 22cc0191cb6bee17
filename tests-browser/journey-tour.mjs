// The README's tour, across three audiences: a physician is refused a patient outside her care
// and opens emergency access in the web app; the patient logs in and sees that access, with
// its reason, in "Who has looked"; the security officer finds the alert, reads the events
// behind it and closes it as justified.
import { start } from './lib.mjs';

const j = await start('tour');
const tour = j.creds.tour;
const reason = 'Pasienten ringte legevakten med brystsmerter; trenger legemiddellisten';

await j.step('the physician is refused and opens emergency access', async () => {
  await j.login('lege.lund');
  await j.page.locator('#nid').fill(tour.patient_national_id);
  j.expectConsole(/status of 403/);
  await j.click('form[action="/patients/find"] button[type=submit]');
  j.assert(await j.page.locator('form[action$="/emergency"]').count() === 1, 'no emergency access offered');
  await j.page.locator('#reason').fill(reason);
  await j.page.locator('input[name=confirm]').check();
  await j.click('form[action$="/emergency"] button[type=submit]');
  j.assert(await j.page.locator('main .danger-box').count() === 1, 'the record is not marked as read under emergency access');
  await j.logout();
});

await j.step('the patient sees the emergency access and its reason in her log', async () => {
  await j.login(tour.patient_username);
  await j.click('nav a[href="/me/log"]');
  j.assert(await j.page.locator('#emergency-summary').count() === 1, 'no emergency summary');
  const row = j.page.locator('table.access-log tr.emergency').first();
  const text = await row.innerText();
  j.assert(text.includes('Ingrid Lund'), `the row does not name the physician: ${text}`);
  j.assert(text.includes(reason), `the row does not give the reason: ${text}`);
  await j.shot('patient-sees-emergency-access');
  await j.phoneShot('patient-sees-emergency-access');
  await j.logout();
});

await j.step('the security officer closes the alert', async () => {
  await j.login('sikkerhet.moe');
  j.assert(j.path().startsWith('/security/alerts'), `the officer's home is the alert queue, got ${j.path()}`);
  const link = j.page.locator('main table tbody tr', { hasText: 'Ingrid Lund' }).first().locator('a[href^="/security/alerts/"]');
  j.assert(await link.count() === 1, 'no alert for the emergency access in the queue');
  const href = await link.getAttribute('href');
  await j.shot('alert-queue');
  await j.click(`main a[href="${href}"]`);
  j.assert((await j.text('main')).includes(reason), 'the alert detail does not show the stated reason');
  await j.page.locator('#decision-justified').check();
  await j.page.locator('#note').fill('Kontrollert med legevakten: akutt behov, tjenstlig begrunnet.');
  await j.shot('alert-detail');
  await j.click('main form[action$="/decision"] button[type=submit]');
  j.assert(j.path().startsWith('/security/alerts'), `not back at the queue (${j.path()})`);
  j.assert((await j.page.locator('main table tbody tr', { hasText: 'Ingrid Lund' }).count()) === 0, 'the alert is still open');
  await j.logout();
});

await j.finish();
