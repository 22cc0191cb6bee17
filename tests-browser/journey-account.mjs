// Everyone's account: change the password (a wrong current password and a mismatch are
// explained in place), log in with the new one, turn on two-factor login by scanning (here:
// reading) the enrolment code, and log in with a code from then on. A patient, who may choose it.
import { start } from './lib.mjs';

const j = await start('account');
const user = 'berit.solberg';
const old = j.user(user).password;
const fresh = 'et nytt og langt passord 42';

await j.step('the patient opens My account', async () => {
  await j.login(user);
  await j.click('nav a[href="/account"]');
  j.assert((await j.text('main')).includes(user), 'the account page does not show the username');
  await j.shot('account');
});

await j.step('a wrong current password is explained in place', async () => {
  await j.page.locator('#current').fill('not the password');
  await j.page.locator('#new').fill(fresh);
  await j.page.locator('#repeat').fill(fresh);
  j.expectConsole(/status of 400/);
  await j.click('form[action="/account/password"] button[type=submit]');
  j.assert(await j.page.locator('#current[aria-invalid=true]').count() === 1, 'the field is not marked');
  j.assert((await j.text('[role=alert]')).length > 10, 'no readable error');
});

await j.step('two different new passwords are explained in place', async () => {
  await j.page.locator('#current').fill(old);
  await j.page.locator('#new').fill(fresh);
  await j.page.locator('#repeat').fill(`${fresh}!`);
  j.expectConsole(/status of 400/);
  await j.click('form[action="/account/password"] button[type=submit]');
  j.assert(await j.page.locator('#repeat[aria-invalid=true]').count() === 1, 'the field is not marked');
  await j.shot('password-mismatch');
});

await j.step('the password changes and every session ends', async () => {
  await j.page.locator('#current').fill(old);
  await j.page.locator('#new').fill(fresh);
  await j.page.locator('#repeat').fill(fresh);
  await j.click('form[action="/account/password"] button[type=submit]');
  j.assert(await j.onLoginForm(), 'not sent to the login page');
  j.assert((await j.text('[role=status]')).length > 10, 'no word that the password changed');
});

await j.step('the old password no longer works, the new one does', async () => {
  j.expectConsole(/status of 401/);
  await j.fillLogin(user, { password: old });
  j.assert(await j.onLoginForm(), 'the old password still logs in');
  await j.fillLogin(user, { password: fresh });
  j.assert(!(await j.onLoginForm()), 'the new password does not log in');
});

let secret;
await j.step('two-factor login is turned on with a code from the enrolment page', async () => {
  await j.visit('/account');
  await j.click('main a[href="/account/totp"]');
  j.assert(await j.page.locator('figure.qr svg').count() === 1, 'no QR code');
  const uri = await j.text('code.uri');
  secret = new URL(uri).searchParams.get('secret');
  j.assert(secret && secret.length >= 16, `no secret in ${uri}`);
  await j.shot('totp-enrolment');
  await j.page.locator('#code').fill(await j.freshTotp(secret));
  await j.click('form[action="/account/totp"] button[type=submit]');
  j.assert(!j.path().startsWith('/account/totp'), `the code was not accepted (${j.path()})`);
});

await j.step('from now on the login needs the code', async () => {
  await j.logout();
  j.expectConsole(/status of 401/);
  await j.fillLogin(user, { password: fresh, totpCode: '' });
  j.assert(await j.onLoginForm(), 'logged in without the code');
  await j.fillLogin(user, { password: fresh, totpCode: await j.freshTotp(secret) });
  j.assert(!(await j.onLoginForm()), 'the code from the app does not log in');
  await j.visit('/account');
  j.assert(await j.page.locator('main .badge.ok').count() === 1, 'the account does not say two-factor is on');
  await j.logout();
});

await j.finish();
