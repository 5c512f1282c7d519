// /play in Chromium: the page's fairness arithmetic gives the documented known answers; a
// player logs in, spins, rolls, plays a blackjack hand, rotates the seed and verifies rounds
// in the browser; a tampered round is caught; the page fits 360 px; no console error, no
// failed request and no CSP violation; and the policy really blocks an inline script.

import {
  baseUrl, env, expect, expectClean, expectNoHorizontalScroll, open, run, screenshot, waitForText,
} from './harness.mjs';

await run(async () => {
  const session = await open();
  const { page } = session;
  await page.goto(`${baseUrl}/play`);
  expect((await page.title()) === 'Hearth — play', 'the page has its title');
  await page.waitForSelector('#login-form');

  // The page's own fairness code against docs/games.md's known answers.
  const known = await page.evaluate(async () => (await import('/play/fair.js')).knownAnswers());
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  expect(same(known.pockets, [22, 1, 12, 7, 1]), `roulette known answers, got ${known.pockets}`);
  expect(same(known.rolls, [7065, 6042, 1820, 2401, 6017]), `dice known answers, got ${known.rolls}`);
  expect(same(known.ten, [0, 7, 1, 6, 8, 4, 2, 3, 9, 5]), `shuffle known answer, got ${known.ten}`);
  expect(known.shoe.join(' ') === '2H 8D 7C 2S AD 2S JC 6S TH 5S JD AC', `shoe known answer, got ${known.shoe}`);
  expect(known.first === 1203160825, `first draw known answer, got ${known.first}`);
  expect(known.commitment === '630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd', 'commitment known answer');
  expect(same(known.hand.player, ['2H', '7C']) && same(known.hand.dealer, ['8D', '2S', 'AD'])
    && known.hand.status === 'dealer_win', `blackjack known answer, got ${JSON.stringify(known.hand)}`);
  await screenshot(page, 'play-signed-out');

  // Log in (browser mode: cookies and CSRF).
  await page.fill('#login-form [name=login]', env('HEARTH_PLAYER'));
  await page.fill('#login-form [name=password]', env('HEARTH_PASSWORD'));
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#signed-in:not([hidden])');
  expect((await page.textContent('#who-name')) === env('HEARTH_PLAYER'), 'the header names the player');
  await waitForText(page, '#balance', (t) => /^\d+$/.test(t), 'the balance is shown');

  // Play each game once.
  await page.click('#slots-form button[type=submit]');
  await waitForText(page, '#slots-status', (t) => t.includes('Round'), 'the spin is answered');
  await page.fill('#dice-form [name=target]', '50.00');
  await page.click('#dice-form button[type=submit]');
  await waitForText(page, '#dice-status', (t) => /Won|Lost/.test(t), 'the roll is answered');
  await page.click('#bj-deal');
  await waitForText(page, '#bj-status', (t) => t.length > 0, 'the hand is dealt');
  if (await page.isEnabled('#bj-actions [data-action=stand]')) {
    await page.click('#bj-actions [data-action=stand]');
    await waitForText(page, '#bj-status', (t) => t.includes('Paid'), 'the hand settles');
  }
  await page.waitForSelector('#ledger tr:nth-child(3)');

  // Before a rotation the seed is secret, so the check says to rotate.
  await page.click('#ledger button.verify[aria-label^="Verify slots"]');
  await waitForText(page, '#verify', (t) => t.includes('rotate the seed first'), 'an unrevealed round asks for a rotation');

  // Rotate, check the revealed seed against the commitment, verify a round of each game.
  const commitment = await page.textContent('#fair-hash');
  await page.click('#rotate');
  await waitForText(page, '#revealed-check', (t) => t.includes('equals the commitment'), 'the revealed seed matches');
  expect((await page.textContent('#revealed-hash')) === commitment, 'the revealed hash is the commitment shown before');
  for (const game of ['slots', 'dice', 'blackjack']) {
    await page.click(`#ledger button.verify[aria-label^="Verify ${game}"]`);
    const verdict = await waitForText(page, '#verify', (t) => t.includes(`${game} round`), `the ${game} round is re-derived`);
    expect(verdict.includes(`${game} round`) && (await page.textContent('#verdict')) === 'match', `the ${game} round matches: ${verdict}`);
  }

  // The check can fail: the same round with one stop changed is a mismatch.
  const tampered = await page.evaluate(async () => {
    const { verifyRound } = await import('/play/fair.js');
    const id = document.querySelector('#ledger button.verify[aria-label^="Verify slots"]').dataset.round;
    const round = await (await fetch(`/v1/fairness/rounds/${id}`)).json();
    round.detail.stops[0] = (round.detail.stops[0] + 1) % 32;
    return (await verifyRound(round)).ok;
  });
  expect(tampered === false, 'a tampered round does not verify');

  await expectClean(session, '/play');
  await screenshot(page, 'play-desktop');
  await page.setViewportSize({ width: 360, height: 800 });
  await expectNoHorizontalScroll(page, '/play at 360 px');
  await screenshot(page, 'play-360');

  // The policy is enforced: an inline script injected now is refused and reported.
  const ran = await page.evaluate(async () => {
    const script = document.createElement('script');
    script.textContent = 'window.__inlineRan = true';
    document.head.append(script);
    await new Promise((resolve) => setTimeout(resolve, 100));
    return window.__inlineRan === true;
  });
  expect(!ran, 'an inline script does not run');
  const violations = await page.evaluate(() => window.__cspViolations);
  expect(violations.some((v) => v.startsWith('script-src')), `the refusal is reported: ${violations}`);
});
