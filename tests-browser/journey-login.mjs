// Logging in and out: a visitor is sent to the login page; a wrong password gives a readable
// error; staff (lege.lund) log in with password and TOTP code, patients (astrid.haugland) with
// the password alone; each lands on their audience's home (My patients, My record) and logs out.
import { start } from './lib.mjs';

const j = await start('login');

await j.step('a visitor opening / is sent to the login page', async () => {
  await j.visit('/');
  j.assert(j.path().startsWith('/login'), 'expected a redirect to /login');
  for (const field of ['#username', '#password', '#totp']) {
    j.assert(await j.page.locator(`form ${field}`).isVisible(), `the login form has no ${field}`);
  }
  await j.shot('login');
  await j.phoneShot('login');
});

await j.step('a wrong password shows a readable error', async () => {
  // The login page answers 401 on purpose; Chromium logs that as a failed resource.
  j.expectConsole(/Failed to load resource: the server responded with a status of 401/);
  await j.fillLogin('lege.lund', { password: 'not-the-password', totpCode: '000000' });
  j.assert(j.path() !== '/', 'a wrong password led to the home page');
  j.assert(await j.onLoginForm(), 'a wrong password does not show the login form again');
  const alert = j.page.locator('[role=alert]');
  j.assert(await alert.isVisible(), 'no error ([role=alert]) is shown');
  const text = await j.text('[role=alert]');
  j.assert(text.length >= 10, `the error is not readable: "${text}"`);
  j.assert(!/error|exception|panic|\{/i.test(text), `the error looks technical: "${text}"`);
  j.assert(
    (await j.page.locator('#username').inputValue()) === 'lege.lund',
    'the username was not kept after a failed login',
  );
  j.assert((await j.page.locator('#password').inputValue()) === '', 'the password was echoed back');
  await j.shot('login-wrong-password');
});

await j.step('staff log in with password and TOTP code', async () => {
  await j.login('lege.lund');
  j.assert(j.path() === '/patients', `a physician's home is My patients, got ${j.path()}`);
  const heading = await j.text('main h1');
  j.assert(heading.length > 0, 'the home page has no heading');
  j.assert((await j.text('header .who')).length > 0, 'the header does not name the user');
  await j.shot('home-staff');
  await j.click('nav a[href="/account"]');
  j.assert((await j.text('main')).includes('lege.lund'), 'the account page does not show the username');
  await j.shot('account');
});

await j.step('staff log out', async () => {
  await j.logout();
  await j.shot('logged-out');
});

await j.step('a patient logs in without a TOTP code', async () => {
  j.assert(!j.user('astrid.haugland').totp_secret, 'astrid.haugland unexpectedly has TOTP');
  await j.login('astrid.haugland');
  j.assert(j.path() === '/me/record', `a patient's home is My record, got ${j.path()}`);
  j.assert((await j.text('main h1')).length > 0, 'the home page has no heading');
  await j.shot('home-patient');
});

await j.step('the patient logs out', async () => {
  await j.logout();
});

await j.finish();
