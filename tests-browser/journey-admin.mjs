// The tenant admin's round: admin.nilsen logs in and lands on People; a new staff member is
// refused in place for a taken username, then created with a generated password shown once;
// the new colleague gets a role, which is then ended; a care relationship is added for the
// tour's patient and ended; a broken policy is refused in place with its line, keeping the
// text; support access is granted to the platform operator and revoked; the status page
// shows keys, the audit log and (truthfully) that no backups are set up, in both languages.
import { start } from './lib.mjs';

const j = await start('admin');
const tour = j.creds.tour;

/// Clicks a submit button of a form with data-confirm, accepting the confirmation.
async function confirmAndClick(selector) {
  j.page.once('dialog', (d) => d.accept());
  await j.click(selector);
}

await j.step('the admin logs in and lands on People', async () => {
  await j.login('admin.nilsen');
  if (j.path() === '/') await j.visit('/');
  j.assert(j.path() === '/manage/people', `expected /manage/people, got ${j.path()}`);
  j.assert(await j.page.locator('#staff tbody tr').count() >= 8, 'the staff list is short');
  j.assert(await j.page.locator('#patients tbody tr').count() >= 20, 'the patient list is short');
  j.assert(await j.page.locator('main .notice').count() >= 1, 'no note that patient names are hidden');
  j.assert(!(await j.text('#patients')).includes(tour.patient_name), 'a patient name is shown');
  await j.shot('people');
  await j.phoneShot('people');
});

await j.step('a taken username is refused in place, keeping the form', async () => {
  await j.page.locator('#new-name').fill('Ola Nordmann');
  await j.page.locator('#new-hpr').fill('1234567');
  await j.page.locator('#new-username').fill('lege.lund');
  await j.page.locator('#new-role').selectOption('nurse');
  await j.page.locator('#new-unit').selectOption({ label: '– Legekontoret' });
  j.expectConsole(/status of 400/);
  await j.click('#create-staff');
  j.assert(await j.page.locator('#new-username[aria-invalid=true]').count() === 1, 'the username is not marked invalid');
  j.assert(await j.page.locator('#new-error[role=alert]').count() === 1, 'no error message at the form');
  j.assert((await j.page.locator('#new-name').inputValue()) === 'Ola Nordmann', 'the name was not kept');
  await j.page.locator('#new-username').scrollIntoViewIfNeeded();
  await j.shot('people-error');
});

await j.step('the staff member is created with a password shown once', async () => {
  await j.page.locator('#new-username').fill('ola.nordmann');
  await j.page.locator('#new-password').fill('');
  await j.click('#create-staff');
  j.assert(await j.page.locator('#created[role=status]').count() === 1, 'no confirmation');
  j.assert((await j.text('#created-username')) === 'ola.nordmann', 'the username is not shown');
  j.assert((await j.text('#created-password')).length === 20, 'no generated password');
  j.assert((await j.text('#staff')).includes('Ola Nordmann'), 'the new colleague is not in the list');
  await j.shot('people-created');
});

await j.step('a role is assigned and ended', async () => {
  await j.visit('/manage/roles');
  j.assert(await j.page.locator('#roles tbody tr').count() >= 8, 'the role list is short');
  await j.page.locator('#person').selectOption({ label: 'Ola Nordmann' });
  await j.page.locator('#role').selectOption('secretary');
  await j.page.locator('#unit').selectOption({ label: '– Hjemmetjenesten Nord' });
  await j.page.locator('#to').fill('2099-12-31');
  await j.click('#assign');
  j.assert(j.path().startsWith('/manage/roles?'), `expected /manage/roles, got ${j.path()}`);
  j.assert(await j.page.locator('main [role=status]').count() === 1, 'no confirmation');
  const row = j.page.locator('#roles tbody tr', { hasText: '31.12.2099' });
  j.assert(await row.count() === 1, 'the new assignment is not listed');
  await j.shot('roles');
  await j.phoneShot('roles');
  await confirmAndClick('#roles tbody tr:has-text("31.12.2099") form[action$="/end"] button');
  j.assert(await j.page.locator('#roles tbody tr', { hasText: '31.12.2099' }).count() === 0, 'the ended role is still listed');
});

await j.step('a care relationship is added for a patient and ended', async () => {
  await j.visit('/manage/care');
  j.assert(await j.page.locator('#care tbody tr').count() > 10, 'the relationships are missing');
  j.assert(await j.page.locator('#team-list tbody tr').count() >= 3, 'the teams are missing');
  await j.page.locator('#patient').selectOption(tour.patient_id);
  await j.page.locator('#party-staff').check();
  await j.page.locator('#staff').selectOption({ label: 'Ingrid Lund' });
  await j.page.locator('#purpose').fill('Tilsyn etter utskrivning');
  await j.click('#add');
  j.assert(j.path().startsWith('/manage/care?'), `expected /manage/care, got ${j.path()}`);
  const row = `#care tbody tr:has-text("${tour.patient_id}")`;
  j.assert(await j.page.locator(row).count() === 1, 'the new relationship is not listed');
  j.assert((await j.text(row)).includes('Tilsyn etter utskrivning'), 'the basis is not shown');
  await j.shot('care');
  await j.phoneShot('care');
  await confirmAndClick(`${row} form[action$="/end"] button`);
  j.assert(await j.page.locator(row).count() === 0, 'the ended relationship is still listed');
});

await j.step('a broken policy is refused in place with its line, keeping the text', async () => {
  await j.visit('/manage/policies');
  const original = await j.page.locator('#policies').inputValue();
  j.assert(original.includes('tenant.physician'), 'the policies are not in the editor');
  const broken = `${original}\n@id("t.broken")\npermit (principal, action, resource) when { resource.nonsense == 1 };\n`;
  await j.page.locator('#policies').fill(broken);
  j.expectConsole(/status of 400/);
  await j.click('#save-policies');
  j.assert(await j.page.locator('#policies-error[role=alert]').count() === 1, 'no error at the editor');
  j.assert(await j.page.locator('#policies[aria-invalid=true]').count() === 1, 'the editor is not marked invalid');
  j.assert(await j.page.locator('#policies-error-line').count() === 1, 'the line is not named');
  j.assert((await j.page.locator('#policies').inputValue()).includes('t.broken'), 'the text was not kept');
  await j.shot('policies-error');
  await j.page.locator('#policies').fill(original);
  await j.click('#save-policies');
  j.assert(await j.page.locator('main [role=status]').count() === 1, 'no confirmation');
  await j.shot('policies');
});

await j.step('support access is granted to the operator and revoked', async () => {
  await j.visit('/manage/support');
  await j.page.locator('#operator').fill('drift.olsen');
  await j.page.locator('#minutes').selectOption('60');
  await j.page.locator('#reason').fill('Sak 2041: treg innlogging');
  await j.click('#grant');
  j.assert(await j.page.locator('#support-grants tbody tr').count() === 1, 'the grant is not listed');
  j.assert((await j.text('#support-grants')).includes('drift.olsen'), 'the operator is not named');
  await j.shot('support');
  await j.phoneShot('support');
  await confirmAndClick('#support-grants form[action$="/revoke"] button');
  j.assert(await j.page.locator('#support-grants form[action$="/revoke"]').count() === 0, 'still revocable');
});

await j.step('the status page shows keys, the log and backups, in both languages', async () => {
  await j.visit('/manage/status');
  j.assert(/^[0-9a-f]{16}$/.test(await j.text('#kek-check')), 'no KEK check value');
  j.assert(Number(await j.text('#audit-size')) > 0, 'the audit log size is not shown');
  j.assert(await j.page.locator('#backup-status').count() === 1, 'no backup status');
  await j.shot('status');
  await j.phoneShot('status');
  await j.click('a.lang');
  j.assert((await j.page.locator('html').getAttribute('lang')) === 'en', 'the page did not switch to English');
  j.assert(j.path() === '/manage/status', `the switch left the page: ${j.path()}`);
  await j.shot('status-en');
});

await j.finish();
