// The session-timeout warning (demo started with a one-minute idle timeout for patients):
// shortly before the session ends a dialog warns and offers to stay logged in; staying keeps
// the session; doing nothing ends it and leads to the login page, which says why.
import { start } from './lib.mjs';

const j = await start('timeout');

await j.step('a patient logs in; no warning at first', async () => {
  await j.login('astrid.haugland');
  j.assert(await j.page.locator('#timeout-warning').isHidden(), 'the warning shows at once');
});

await j.step('the warning appears before the session ends, and staying keeps it', async () => {
  await j.page.locator('#timeout-warning').waitFor({ state: 'visible', timeout: 55_000 });
  const focused = await j.page.evaluate(() => document.activeElement?.id);
  j.assert(focused === 'timeout-stay', `the stay button has no focus (${focused})`);
  await j.axe();
  await j.shot('timeout-warning');
  const keepalive = j.page.waitForResponse((r) => r.url().endsWith('/session/keepalive'));
  await j.page.locator('#timeout-stay').click();
  j.assert((await keepalive).status() === 204, 'the keepalive was refused');
  j.assert(await j.page.locator('#timeout-warning').isHidden(), 'the warning stays after staying');
});

await j.step('doing nothing ends the session on the login page, with the reason', async () => {
  await j.page.waitForURL(/\/login\?expired=1/, { timeout: 75_000 });
  await j.settle();
  j.assert(await j.onLoginForm(), 'not on the login page');
  j.assert((await j.text('[role=status]')).length > 10, 'the login page does not say why');
  await j.visit('/me/record');
  j.assert(j.path().startsWith('/login'), `the session still works after the timeout (${j.path()})`);
});

await j.finish();
