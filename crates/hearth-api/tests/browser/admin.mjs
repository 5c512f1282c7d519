// /admin in Chromium, with the keyboard wherever a person would use it: an operator signs in
// with a password and an authenticator code, finds a player, bans them and adjusts their
// balance with reasons (each action with one of their backup codes in X-Hearth-TOTP), and
// sees both in the audit trail; the figures draw their charts; every tab fits 360 px; no
// console error, no failed request and no CSP violation.

import {
  baseUrl, env, expect, expectClean, expectNoHorizontalScroll, open, run, screenshot, totp, waitForText,
} from './harness.mjs';

const focused = (page) => page.evaluate(() => {
  const a = document.activeElement;
  return { id: a.id, name: a.getAttribute('name'), text: a.textContent.trim(), tag: a.tagName };
});

await run(async () => {
  const session = await open();
  const { page } = session;
  const target = env('HEARTH_TARGET');
  const [banCode, adjustCode] = env('HEARTH_BACKUP_CODES').split(',');
  await page.goto(`${baseUrl}/admin`);
  await page.waitForSelector('#signin:not([hidden])');
  await screenshot(page, 'admin-signin');

  // Sign in with the keyboard alone: the skip link, then the three fields, then Enter.
  await page.keyboard.press('Tab');
  expect((await focused(page)).text === 'Skip to content', 'the first Tab reaches the skip link');
  await page.keyboard.press('Tab');
  expect((await focused(page)).name === 'login', 'the next Tab reaches the login field');
  await page.keyboard.type(env('HEARTH_ADMIN'));
  await page.keyboard.press('Tab');
  await page.keyboard.type(env('HEARTH_PASSWORD'));
  await page.keyboard.press('Tab');
  await page.keyboard.type(totp(env('HEARTH_TOTP_SECRET')));
  await page.keyboard.press('Enter');
  await page.waitForSelector('#console:not([hidden])');
  expect((await focused(page)).id === 'search-query', 'after sign-in the search field has the focus');

  // Find the player and open the account with the keyboard.
  await page.keyboard.type(target);
  await page.keyboard.press('Enter');
  // The first list holds every account; the search's answer only the player.
  await waitForText(page, '#results', (t) => t.includes(target) && !t.includes(env('HEARTH_ADMIN')), 'the search finds the player alone');
  await page.waitForSelector('#search-form button:not([disabled])');
  await page.keyboard.press('Tab'); // the Search button
  await page.keyboard.press('Tab'); // the first result
  const result = await focused(page);
  expect(result.text === target, `Tab reaches the result, not ${JSON.stringify(result)}`);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#user:not([hidden])');
  await waitForText(page, '#user-name', (t) => t === target, 'the account opens');
  const before = Number((await page.textContent('#user-balance')).split(' ')[0]);

  // Ban with a reason and a backup code.
  await page.focus('#action-code');
  await page.keyboard.type(banCode);
  await page.focus('#ban-form [name=reason]');
  await page.keyboard.type('browser test: chargeback fraud');
  await page.keyboard.press('Enter');
  await waitForText(page, '#action-status', (t) => t.includes('is banned'), 'the ban is confirmed');
  await waitForText(page, '#user-state', (t) => t.startsWith('banned'), 'the account shows as banned');
  expect((await page.textContent('#ban-button')) === 'Unban', 'the form now offers the unban');

  // Adjust with a reason and another backup code.
  await page.focus('#action-code');
  await page.keyboard.type(adjustCode);
  await page.focus('#adjust-form [name=amount]');
  await page.keyboard.type('250');
  await page.keyboard.press('Tab');
  await page.keyboard.type('browser test: goodwill credit');
  await page.keyboard.press('Enter');
  await waitForText(page, '#action-status', (t) => t.includes('Adjusted by 250'), 'the adjustment is confirmed');
  await waitForText(page, '#user-balance', (t) => Number(t.split(' ')[0]) === before + 250, 'the balance grows by 250');
  await waitForText(page, '#user-ledger', (t) => t.includes('browser test: goodwill credit'), 'the ledger shows the adjustment');
  await waitForText(page, '#user-audit', (t) => t.includes('users.adjust') && t.includes('users.ban'), 'the account audit shows both actions');
  await screenshot(page, 'admin-users');

  // The audit log tab shows the ban line with its reason.
  await page.click('nav.tabs [data-tab=audit]');
  await waitForText(page, '#audit', (t) => t.includes('users.ban') && t.includes('browser test: chargeback fraud'), 'the audit log shows the ban');
  await screenshot(page, 'admin-audit');

  // Figures and their charts.
  await page.click('nav.tabs [data-tab=figures]');
  await page.waitForSelector('#chart-rounds svg rect');
  await page.waitForSelector('#chart-rtp svg circle');
  await waitForText(page, '#figures-games', (t) => t.includes('slots'), 'the figures list slots');
  await screenshot(page, 'admin-figures');
  await expectClean(session, '/admin');

  // Each tab at 360 px.
  await page.setViewportSize({ width: 360, height: 800 });
  for (const tab of ['users', 'audit', 'figures']) {
    await page.click(`nav.tabs [data-tab=${tab}]`);
    await page.waitForSelector(`#tab-${tab}:not([hidden])`);
    await expectNoHorizontalScroll(page, `/admin ${tab} at 360 px`);
    await screenshot(page, `admin-${tab}-360`);
  }
  await expectClean(session, '/admin at 360 px');
});
