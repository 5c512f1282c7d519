// /admin: the operators' console over the admin API (docs/api.md, "Operators"), in browser
// mode. Sign in with password and second factor; find users, view one, ban or unban and
// adjust the balance with a reason (each action carries a fresh authenticator code in
// `X-Hearth-TOTP` when the operator has one); read the audit trail and the figures.

import {
  $, api, ApiError, el, fill, getJson, hasSession, logout, newKey, onSubmit, say, sayError, when,
} from './hearth.js';
import { barChart, lineChart } from './chart.js';

let current = null; // the account shown in the detail panel
let searchCursor = null;
let searches = 0; // searches asked for: only the newest one's answer is shown
let auditCursor = null;
let pendingAdjustment = null; // {key, body} of an adjustment whose answer never arrived

function show(signedIn) {
  $('#signin').hidden = signedIn;
  $('#console').hidden = !signedIn;
  $('#who').hidden = !signedIn;
}

async function start() {
  if (hasSession()) {
    try {
      const me = await getJson('/v1/me');
      if (me.role === 'admin') {
        await enter(me);
        return;
      }
      say($('#signin-status'), `Signed in as ${me.username}, who is not an operator. Sign in with an operator account.`, 'error');
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) throw error;
    }
  }
  show(false);
}

/** Shows the console with the search field focused, then lists the newest accounts. */
async function enter(me) {
  $('#who-name').textContent = me.username;
  show(true);
  selectTab('users');
  $('#search-query').focus();
  try {
    await search('');
  } catch (error) {
    sayError($('#search-status'), error);
  }
}

onSubmit($('#signin-form'), $('#signin-status'), async (form) => {
  say($('#signin-status'), 'Signing in…');
  const body = { login: form.get('login'), password: form.get('password'), cookies: true };
  const code = form.get('totp').trim();
  if (code) body.totp = code;
  try {
    await api('POST', '/v1/auth/login', body);
  } catch (error) {
    if (error instanceof ApiError && error.type === 'totp-required') {
      say($('#signin-status'), 'Enter the code from your authenticator app (or a backup code).', 'error');
      $('#signin-form [name=totp]').focus();
      return;
    }
    throw error;
  }
  const me = await getJson('/v1/me');
  if (me.role !== 'admin') {
    await logout();
    say($('#signin-status'), 'This account is not an operator.', 'error');
    return;
  }
  $('#signin-form').reset();
  say($('#signin-status'), '');
  await enter(me);
});

$('#logout').addEventListener('click', async () => {
  await logout();
  current = null;
  $('#user').hidden = true;
  show(false);
  $('#signin-form [name=login]').focus();
});

// --- tabs --------------------------------------------------------------------------------

function selectTab(name) {
  for (const button of document.querySelectorAll('nav.tabs button')) {
    if (button.dataset.tab === name) button.setAttribute('aria-current', 'page');
    else button.removeAttribute('aria-current');
  }
  for (const tab of ['users', 'audit', 'figures']) $(`#tab-${tab}`).hidden = tab !== name;
}

for (const button of document.querySelectorAll('nav.tabs button')) {
  button.addEventListener('click', async () => {
    const tab = button.dataset.tab;
    selectTab(tab);
    try {
      if (tab === 'audit') await loadAudit(true);
      if (tab === 'figures') await loadFigures();
    } catch (error) {
      sayError($(`#${tab}-status`), error);
    }
  });
}

// --- users -------------------------------------------------------------------------------

function userState(user) {
  return user.disabled_at ? `banned ${when(user.disabled_at)}` : 'active';
}

async function search(query, more = false) {
  const asked = ++searches;
  const params = new URLSearchParams({ limit: '20' });
  if (query) params.set('query', query);
  if (more && searchCursor) params.set('cursor', searchCursor);
  const page = await getJson(`/v1/admin/users?${params}`);
  // A search typed while the first list was loading may be answered first; the older answer
  // must not replace it.
  if (asked !== searches) return;
  searchCursor = page.next_cursor;
  $('#search-more').hidden = !searchCursor;
  const rows = page.items.map((user) => el('tr', { 'data-user': user.id, class: current && current.user.id === user.id ? 'selected' : '' },
    el('td', {}, el('button', { type: 'button', class: 'secondary', onclick: () => view(user.id) }, user.username)),
    el('td', {}, user.email),
    el('td', {}, user.role),
    el('td', {}, userState(user)),
    el('td', {}, when(user.created_at))));
  if (more) $('#results').append(...rows);
  else fill($('#results'), rows);
  say($('#search-status'), page.items.length === 0 && !more ? 'No account matches.' : '');
}

onSubmit($('#search-form'), $('#search-status'), async (form) => {
  await search(form.get('query').trim());
});
$('#search-more').addEventListener('click', () => search($('#search-query').value.trim(), true).catch((e) => sayError($('#search-status'), e)));

async function view(userId) {
  const account = await getJson(`/v1/admin/users/${userId}`);
  current = account;
  const u = account.user;
  fill($('#user-facts'),
    el('dt', {}, 'Username'), el('dd', { id: 'user-name' }, u.username),
    el('dt', {}, 'Id'), el('dd', { class: 'mono' }, u.id),
    el('dt', {}, 'E-mail'), el('dd', {}, u.email),
    el('dt', {}, 'Role'), el('dd', {}, u.role),
    el('dt', {}, 'Created'), el('dd', {}, when(u.created_at)),
    el('dt', {}, 'State'), el('dd', { id: 'user-state' }, userState(u)),
    u.disabled_reason ? [el('dt', {}, 'Ban reason'), el('dd', {}, u.disabled_reason)] : null,
    el('dt', {}, 'Balance'), el('dd', { id: 'user-balance' }, `${account.wallet.balance} coins`),
    el('dt', {}, 'Second factor'), el('dd', {}, account.totp_enabled ? 'on' : 'off'));
  $('#user-title').textContent = `Account: ${u.username}`;
  $('#ban-label').textContent = u.disabled_at ? 'Reason for lifting the ban' : 'Reason for the ban';
  $('#ban-button').textContent = u.disabled_at ? 'Unban' : 'Ban';
  $('#ban-button').className = u.disabled_at ? '' : 'danger';
  for (const row of $('#results').querySelectorAll('tr')) row.classList.toggle('selected', row.dataset.user === u.id);
  $('#user').hidden = false;
  await Promise.all([userLedger(u.id), userRounds(u.id), userAudit(u.id)]);
}

async function userLedger(userId) {
  const page = await getJson(`/v1/admin/users/${userId}/transactions?limit=10`);
  fill($('#user-ledger'), page.items.map((e) => el('tr', {},
    el('td', {}, when(e.created_at)), el('td', {}, `${e.kind}: ${e.description || ''}`),
    el('td', { class: 'num' }, String(e.amount)), el('td', { class: 'num' }, String(e.balance_after)))));
}

async function userRounds(userId) {
  const page = await getJson(`/v1/admin/users/${userId}/rounds?limit=10`);
  fill($('#user-rounds'), page.items.map((r) => el('tr', {},
    el('td', {}, when(r.created_at)), el('td', {}, r.game),
    el('td', { class: 'num' }, String(r.bet)), el('td', { class: 'num' }, String(r.win)), el('td', {}, r.status))));
}

function auditRow(row, withAccount) {
  return el('tr', { class: 'audit-row' },
    el('td', {}, when(row.at)),
    withAccount ? el('td', { class: 'mono' }, row.actor_id ? row.actor_id.slice(-8) : '–') : null,
    el('td', {}, row.action),
    withAccount ? el('td', { class: 'mono' }, row.target_user_id ? row.target_user_id.slice(-8) : '') : null,
    el('td', { class: row.outcome === 'done' ? 'ok' : 'error' }, row.refusal ? `${row.outcome} (${row.refusal})` : row.outcome),
    el('td', {}, row.reason || ''),
    withAccount ? el('td', {}, row.client_ip || '') : null,
    el('td', { class: 'mono' }, row.detail && Object.keys(row.detail).length ? JSON.stringify(row.detail) : ''));
}

async function userAudit(userId) {
  const page = await getJson(`/v1/admin/audit?user_id=${userId}&limit=10`);
  fill($('#user-audit'), page.items.map((row) => auditRow(row, false)));
}

/** Headers for an action: the second-factor code when one was typed (then it is used up). */
function actionHeaders() {
  const input = $('#action-code');
  const code = input.value.trim();
  input.value = '';
  return code ? { 'x-hearth-totp': code } : {};
}

/** Runs an action; a missing or wrong code sends the operator to the code field. */
async function action(run) {
  const status = $('#action-status');
  try {
    await run();
  } catch (error) {
    sayError(status, error);
    const field = error instanceof ApiError && (error.type === 'totp-required'
      || (error.problem.errors || []).some((e) => e.field === 'X-Hearth-TOTP'));
    if (field) {
      say(status, `${error.message}. Type a fresh code from your authenticator app and try again.`, 'error');
      $('#action-code').focus();
    }
  }
}

onSubmit($('#ban-form'), $('#action-status'), async (form) => {
  if (!current) return;
  const banned = Boolean(current.user.disabled_at);
  await action(async () => {
    const path = `/v1/admin/users/${current.user.id}/${banned ? 'unban' : 'ban'}`;
    await api('POST', path, { reason: form.get('reason') }, { headers: actionHeaders() });
    $('#ban-form').reset();
    await view(current.user.id);
    say($('#action-status'), banned ? `${current.user.username} may log in again.` : `${current.user.username} is banned; their sessions are ended.`, 'ok');
    await search($('#search-query').value.trim());
  });
});

onSubmit($('#adjust-form'), $('#action-status'), async (form) => {
  if (!current) return;
  const body = { amount: Number(form.get('amount')), reason: form.get('reason') };
  const userId = current.user.id;
  // A retry after a lost answer reuses the key, so the adjustment cannot happen twice.
  const same = pendingAdjustment && pendingAdjustment.userId === userId
    && JSON.stringify(pendingAdjustment.body) === JSON.stringify(body);
  const key = same ? pendingAdjustment.key : newKey();
  await action(async () => {
    let answer;
    try {
      answer = await api('POST', `/v1/admin/users/${userId}/adjustments`, body,
        { headers: { ...actionHeaders(), 'idempotency-key': key } });
    } catch (error) {
      pendingAdjustment = error instanceof ApiError ? null : { userId, body, key };
      throw error;
    }
    pendingAdjustment = null;
    $('#adjust-form').reset();
    await view(userId);
    say($('#action-status'), `Adjusted by ${answer.data.entry.amount}: the balance is now ${answer.data.wallet.balance}.`, 'ok');
  });
});

// --- audit -------------------------------------------------------------------------------

async function loadAudit(fresh) {
  const params = new URLSearchParams({ limit: '50' });
  if (!fresh && auditCursor) params.set('cursor', auditCursor);
  const page = await getJson(`/v1/admin/audit?${params}`);
  auditCursor = page.next_cursor;
  $('#audit-more').hidden = !auditCursor;
  const rows = page.items.map((row) => auditRow(row, true));
  if (fresh) fill($('#audit'), rows);
  else $('#audit').append(...rows);
  say($('#audit-status'), '');
}
$('#audit-refresh').addEventListener('click', () => loadAudit(true).catch((e) => sayError($('#audit-status'), e)));
$('#audit-more').addEventListener('click', () => loadAudit(false).catch((e) => sayError($('#audit-status'), e)));

// --- figures -----------------------------------------------------------------------------

const rtpText = (rtp) => (rtp === null || rtp === undefined ? '–' : `${(rtp * 100).toFixed(2)} %`);

async function loadFigures() {
  const stats = await getJson('/v1/admin/stats');
  $('#figures-at').textContent = `as of ${when(stats.generated_at)} UTC`;
  const rec = stats.reconciliation;
  const jobs = stats.jobs;
  fill($('#figures-facts'),
    el('dt', {}, 'Active players today / 7 days'), el('dd', {}, `${stats.active_users.today} / ${stats.active_users.last_7_days}`),
    el('dt', {}, 'Seen by this gateway (5 min)'), el('dd', {}, String(stats.active_users.this_gateway_last_5_minutes)),
    el('dt', {}, 'Open blackjack hands'), el('dd', {}, String(stats.open_blackjack_hands)),
    el('dt', {}, 'Last reconciliation'), el('dd', { class: rec && rec.mismatches > 0 ? 'error' : '' },
      rec ? `${when(rec.at)}: ${rec.wallets} wallets, ${rec.mismatches} mismatches` : 'none yet'),
    jobs ? [el('dt', {}, 'Jobs'), el('dd', { class: jobs.dead > 0 ? 'error' : '' },
      `${jobs.queued} queued, ${jobs.running} running, ${jobs.dead} dead; oldest due waited ${jobs.oldest_due_age_secs} s`)] : null);
  const periods = [['today', 'Today'], ['last_7_days', '7 days'], ['all_time', 'All time']];
  fill($('#figures-games'), stats.games.flatMap((g) => periods.map(([key, label], i) => el('tr', {},
    el('td', {}, i === 0 ? g.game : ''), el('td', {}, label),
    el('td', { class: 'num' }, String(g[key].rounds)), el('td', { class: 'num' }, String(g[key].wagered)),
    el('td', { class: 'num' }, String(g[key].paid)), el('td', { class: 'num' }, rtpText(g[key].rtp))))));

  // The last 14 UTC days, oldest first, whether or not they had rounds.
  const days = [];
  const today = new Date(`${stats.generated_at.slice(0, 10)}T00:00:00Z`);
  for (let i = 13; i >= 0; i -= 1) days.push(new Date(today.getTime() - i * 86400000).toISOString().slice(0, 10));
  const games = [...new Set([...stats.games.map((g) => g.game), ...stats.daily.map((d) => d.game)])];
  const cell = (game, day) => stats.daily.find((d) => d.game === game && d.day === day);
  const rounds = games.map((game) => ({ name: game, values: days.map((day) => cell(game, day)?.rounds ?? 0) }));
  const rtp = games.map((game) => ({
    name: game,
    values: days.map((day) => { const c = cell(game, day); return c && c.wagered > 0 ? c.paid / c.wagered : null; }),
  }));
  fill($('#chart-rounds'), barChart('Settled rounds per day and game, last 14 days', days, rounds));
  fill($('#chart-rtp'), lineChart('Observed RTP (paid ÷ wagered) per day and game; the dashed line is 100 %', days, rtp,
    (v) => `${Math.round(v * 100)}%`, 1));
  say($('#figures-status'), '');
}
$('#figures-refresh').addEventListener('click', () => loadFigures().catch((e) => sayError($('#figures-status'), e)));

start().catch((error) => sayError($('#signin-status'), error));
