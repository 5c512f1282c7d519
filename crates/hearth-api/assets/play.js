// /play: a player's demo over the public API, in browser mode. Log in or register, play
// slots, dice and blackjack, read the ledger, rotate the server seed and re-derive any round
// in the browser (fair.js) to see that it matches what the server recorded.

import {
  $, api, ApiError, el, fill, getJson, hasSession, logout, newKey, onSubmit, say, sayError, when,
} from './hearth.js';
import { hexToBytes, sha256Hex, verifyRound } from './fair.js';

const show = (signedIn) => {
  $('#signed-out').hidden = signedIn;
  $('#signed-in').hidden = !signedIn;
  $('#who').hidden = !signedIn;
};

async function start() {
  if (hasSession()) {
    try {
      await enter();
      return;
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) throw error;
    }
  }
  show(false);
}

/** After login: who, wallet, fairness and ledger. */
async function enter() {
  const me = await getJson('/v1/me');
  $('#who-name').textContent = me.username;
  show(true);
  await Promise.all([refreshWallet(), refreshFairness(), refreshLedger()]);
}

async function refreshWallet() {
  const wallet = await getJson('/v1/wallet');
  $('#balance').textContent = String(wallet.balance);
}

function setBalance(balance) {
  $('#balance').textContent = String(balance);
}

async function refreshFairness() {
  const fair = await getJson('/v1/fairness');
  $('#fair-hash').textContent = fair.server_seed_hash;
  $('#fair-client').textContent = fair.client_seed;
  $('#fair-nonce').textContent = String(fair.nonce);
}

async function refreshLedger() {
  const page = await getJson('/v1/wallet/transactions?limit=20');
  const seen = new Set();
  const rows = page.items.map((entry) => {
    let round = '';
    if (entry.round_id && !seen.has(entry.round_id)) {
      seen.add(entry.round_id);
      round = el('button', {
        type: 'button',
        class: 'secondary verify',
        'data-round': entry.round_id,
        'aria-label': `Verify ${entry.game} round ${entry.round_id.slice(-8)}`,
        onclick: () => verify(entry.round_id),
      }, 'Verify');
    }
    return el('tr', {},
      el('td', {}, when(entry.created_at)),
      el('td', {}, entry.description || entry.kind),
      el('td', { class: 'num' }, String(entry.amount)),
      el('td', { class: 'num' }, String(entry.balance_after)),
      el('td', {}, round));
  });
  fill($('#ledger'), rows);
}

/** After a round: the balance it answered, then the nonce and the ledger. */
async function afterRound(round) {
  setBalance(round.balance);
  await Promise.all([refreshFairness(), refreshLedger()]);
}

// --- sign in -----------------------------------------------------------------------------

async function login(loginName, password, totp) {
  const body = { login: loginName, password, cookies: true };
  if (totp) body.totp = totp;
  await api('POST', '/v1/auth/login', body);
}

onSubmit($('#login-form'), $('#login-status'), async (form) => {
  say($('#login-status'), 'Logging in…');
  try {
    await login(form.get('login'), form.get('password'), form.get('totp').trim());
  } catch (error) {
    if (error instanceof ApiError && error.type === 'totp-required') {
      say($('#login-status'), 'This account has a second factor: enter the code from your authenticator app.', 'error');
      $('#login-form [name=totp]').focus();
      return;
    }
    throw error;
  }
  say($('#login-status'), '');
  $('#login-form').reset();
  await enter();
});

onSubmit($('#register-form'), $('#register-status'), async (form) => {
  say($('#register-status'), 'Creating the account…');
  await api('POST', '/v1/auth/register', {
    username: form.get('username'), email: form.get('email'), password: form.get('password'),
  });
  await login(form.get('username'), form.get('password'));
  say($('#register-status'), '');
  $('#register-form').reset();
  await enter();
});

$('#logout').addEventListener('click', async () => {
  await logout();
  show(false);
  $('#login-form [name=login]').focus();
});

// --- games -------------------------------------------------------------------------------

async function play(path, body) {
  return (await api('POST', path, body, { headers: { 'idempotency-key': newKey() } })).data;
}

onSubmit($('#slots-form'), $('#slots-status'), async (form) => {
  const round = await play('/v1/games/slots/spin', { bet: Number(form.get('bet')) });
  fill($('#reels'), round.reels.map((symbol) => el('span', {}, symbol)));
  say($('#slots-status'), round.win > 0
    ? `Won ${round.win} (×${round.multiplier}). Round ${round.round_id.slice(-8)}, nonce ${round.nonce}.`
    : `No win. Round ${round.round_id.slice(-8)}, nonce ${round.nonce}.`, round.win > 0 ? 'ok' : '');
  await afterRound(round);
});

onSubmit($('#dice-form'), $('#dice-status'), async (form) => {
  const round = await play('/v1/games/dice/roll', {
    bet: Number(form.get('bet')),
    target: Math.round(Number(form.get('target')) * 100),
    direction: form.get('direction'),
  });
  $('#dice-roll').textContent = (round.roll / 100).toFixed(2);
  say($('#dice-status'), round.won
    ? `Won ${round.payout} (×${(round.multiplier / 10000).toFixed(4)}).`
    : `Lost: the roll was not ${round.direction} ${(round.target / 100).toFixed(2)}.`, round.won ? 'ok' : '');
  await afterRound(round);
});

let hand = null;

function cardNode(card) {
  const suit = { C: '♣', D: '♦', H: '♥', S: '♠' }[card[1]];
  const rank = card[0] === 'T' ? '10' : card[0];
  return el('span', { class: 'DH'.includes(card[1]) ? 'red' : '' }, `${rank}${suit}`);
}

function showHand(round) {
  hand = round;
  const h = round.hand;
  fill($('#bj-dealer'), h.dealer.cards.map(cardNode), h.hole_card_hidden ? el('span', { 'aria-label': 'hidden card' }, '🂠') : null);
  fill($('#bj-player'), h.player.cards.map(cardNode));
  $('#bj-dealer-total').textContent = `(${h.dealer.total}${h.dealer.soft ? ' soft' : ''})`;
  $('#bj-player-total').textContent = `(${h.player.total}${h.player.soft ? ' soft' : ''})`;
  for (const button of $('#bj-actions').querySelectorAll('button')) {
    button.disabled = !h.allowed_actions.includes(button.dataset.action);
  }
  $('#bj-deal').disabled = round.status === 'open';
  const outcome = {
    playing: 'Your move.', blackjack: 'Blackjack!', player_win: 'You win.', dealer_bust: 'The dealer busts: you win.',
    push: 'Push: your stake comes back.', player_bust: 'Bust.', dealer_win: 'The dealer wins.',
  }[h.status] || h.status;
  say($('#bj-status'), round.status === 'settled' ? `${outcome} Paid ${round.win}.` : outcome,
    round.status === 'settled' && round.win > 0 ? 'ok' : '');
  if (round.status === 'open') $('#bj-actions button:not([disabled])').focus();
}

/** An open hand from an earlier visit: the newest blackjack round, read back. */
async function resumeHand() {
  const page = await getJson('/v1/wallet/transactions?limit=1&game=blackjack');
  const entry = page.items[0];
  if (!entry) return false;
  const round = await getJson(`/v1/fairness/rounds/${entry.round_id}`);
  if (round.status !== 'open') return false;
  showHand({ ...round, ...round.detail, balance: Number($('#balance').textContent) });
  return true;
}

onSubmit($('#bj-form'), $('#bj-status'), async (form) => {
  let round;
  try {
    round = await play('/v1/games/blackjack', { bet: Number(form.get('bet')) });
  } catch (error) {
    if (error instanceof ApiError && error.status === 409 && await resumeHand()) return;
    throw error;
  }
  showHand(round);
  await afterRound(round);
});

$('#bj-actions').addEventListener('click', async (event) => {
  const button = event.target.closest('button');
  if (!button || !hand) return;
  const buttons = $('#bj-actions').querySelectorAll('button');
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const round = await play(`/v1/games/blackjack/${hand.round_id}/action`, { action: button.dataset.action });
    showHand(round);
    await afterRound(round);
    if (round.status === 'settled') $('#bj-deal').focus();
  } catch (error) {
    sayError($('#bj-status'), error);
    if (hand) showHand(hand);
  }
});

// --- fairness ----------------------------------------------------------------------------

onSubmit($('#client-seed-form'), $('#fair-status'), async (form) => {
  await api('PUT', '/v1/fairness/client-seed', { client_seed: form.get('client_seed') });
  say($('#fair-status'), 'Client seed set; it applies from the next round.', 'ok');
  await refreshFairness();
});

$('#rotate').addEventListener('click', async () => {
  const status = $('#fair-status');
  $('#rotate').disabled = true;
  try {
    const { data } = await api('POST', '/v1/fairness/rotate');
    const computed = await sha256Hex(hexToBytes(data.revealed_server_seed));
    $('#revealed').hidden = false;
    $('#revealed-seed').textContent = data.revealed_server_seed;
    $('#revealed-hash').textContent = data.revealed_server_seed_hash;
    const ok = computed === data.revealed_server_seed_hash;
    $('#revealed-check').textContent = ok
      ? 'SHA-256 of the revealed seed equals the commitment shown before you played.'
      : `Mismatch: SHA-256 gives ${computed}.`;
    $('#revealed-check').className = ok ? 'ok' : 'error';
    say(status, 'Seed rotated: every round played with the old seed can now be verified.', 'ok');
    await refreshFairness();
    await refreshLedger();
  } catch (error) {
    sayError(status, error);
  } finally {
    $('#rotate').disabled = false;
  }
});

async function verify(roundId) {
  const target = $('#verify');
  fill(target, el('p', { class: 'muted' }, 'Re-deriving…'));
  try {
    const round = await getJson(`/v1/fairness/rounds/${roundId}`);
    const result = await verifyRound(round);
    fill(target,
      el('p', {},
        `${round.game} round ${round.round_id.slice(-8)} (nonce ${round.nonce}): `,
        el('span', { class: `verdict ${result.ok ? 'match' : 'mismatch'}`, id: 'verdict' }, result.ok ? 'match' : 'mismatch')),
      el('ul', { class: 'checks' }, result.checks.map((c) => el('li', { class: c.ok ? 'ok' : 'error' },
        `${c.ok ? '✓' : '✗'} ${c.name}: server ${JSON.stringify(c.recorded)}`,
        c.ok ? '' : `, browser ${JSON.stringify(c.derived)}`))));
  } catch (error) {
    fill(target, el('p', { class: 'error', id: 'verdict-error' }, error.message));
  }
  target.focus?.();
}

$('#ledger-refresh').addEventListener('click', () => refreshLedger().catch((e) => sayError($('#ledger-status'), e)));

start().catch((error) => sayError($('#login-status'), error));
