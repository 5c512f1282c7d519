// Provably fair, re-derived in the browser with Web Crypto: the scheme of docs/games.md
// ("Provably fair"), written again here independently of the server so that a player can
// check a round with nothing but the revealed seed. Every game's replay returns a list of
// checks, each with what the server recorded and what the browser computed.

const encoder = new TextEncoder();

/** Bytes of a hex string; throws on anything that is not an even run of hex digits. */
export function hexToBytes(hex) {
  if (typeof hex !== 'string' || !/^([0-9a-fA-F]{2})*$/.test(hex)) throw new Error('not hex');
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i += 1) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/** Lower-case hex of bytes. */
export function bytesToHex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** SHA-256 of bytes, as hex. */
export async function sha256Hex(bytes) {
  return bytesToHex(await crypto.subtle.digest('SHA-256', bytes));
}

/**
 * The round's stream of 32-bit draws: block(i) = HMAC-SHA256(server seed, "client:nonce:i"),
 * read 4 bytes at a time, big-endian.
 */
export class Stream {
  static async open(serverHex, clientSeed, nonce) {
    const key = await crypto.subtle.importKey(
      'raw', hexToBytes(serverHex), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'],
    );
    return new Stream(key, clientSeed, nonce);
  }

  constructor(key, clientSeed, nonce) {
    this.key = key;
    this.prefix = `${clientSeed}:${nonce}:`;
    this.block = 0;
    this.view = null;
    this.offset = 32;
  }

  async next() {
    if (this.offset === 32) {
      const message = encoder.encode(this.prefix + this.block);
      this.view = new DataView(await crypto.subtle.sign('HMAC', this.key, message));
      this.block += 1;
      this.offset = 0;
    }
    const value = this.view.getUint32(this.offset, false);
    this.offset += 4;
    return value;
  }

  /** A uniform integer in 0..n by rejection sampling (no modulo bias). */
  async below(n) {
    const limit = 2 ** 32 - (2 ** 32 % n);
    for (;;) {
      const x = await this.next();
      if (x < limit) return x % n;
    }
  }
}

/** Fisher–Yates in place, with `below(i + 1)` for i from the end down to 1. */
export async function shuffle(stream, items) {
  for (let i = items.length - 1; i > 0; i -= 1) {
    const j = await stream.below(i + 1);
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

// --- slots -----------------------------------------------------------------------------

const SYMBOLS = { C: 'cherry', L: 'lemon', O: 'orange', P: 'plum', B: 'bell', R: 'bar', S: 'seven' };
const STRIPS = [
  'LOCPBLCROLCPOLSCBLOCPLCROBLCPOLC',
  'OLPBRLCOPLBOLSRPOLCBLOPLORLBCPOL',
  'OLPBRLOLCPBOLSLRPOLBOLPLCORBLPOL',
];
const THREE_OF_A_KIND = { seven: 250, bar: 75, cherry: 30, bell: 25, plum: 15, orange: 10, lemon: 5 };

/** The multiplier of a payline (docs/games.md, "Paytable"). */
export function slotsMultiplier([a, b, c]) {
  if (a === b && b === c) return THREE_OF_A_KIND[a];
  if (a === 'cherry' && b === 'cherry') return 6;
  if (a === 'cherry') return 2;
  return 0;
}

async function replaySlots(stream, round) {
  const stops = [];
  for (let reel = 0; reel < 3; reel += 1) stops.push(await stream.below(32));
  const reels = stops.map((stop, reel) => SYMBOLS[STRIPS[reel][stop]]);
  const multiplier = slotsMultiplier(reels);
  return [
    check('stops', round.detail.stops, stops),
    check('reels', round.detail.reels, reels),
    check('win', round.win, round.bet * multiplier),
  ];
}

// --- dice ------------------------------------------------------------------------------

async function replayDice(stream, round) {
  const d = round.detail;
  const roll = await stream.below(10000);
  const won = d.direction === 'under' ? roll < d.target : roll > d.target;
  const chance = d.direction === 'under' ? d.target : 9999 - d.target;
  // The multiplier depends on the operator's house edge, which the round does not carry:
  // the recorded one is used for the payout, and must be at most the fair one.
  const payout = won ? Number((BigInt(d.amount) * BigInt(d.multiplier)) / 10000n) : 0;
  return [
    check('roll', d.roll, roll),
    check('won', d.won, won),
    check('chance', d.chance, chance),
    check('multiplier ≤ fair (×10000/chance)', true, d.multiplier <= Math.floor(1e8 / chance)),
    check('win', round.win, payout),
  ];
}

// --- roulette --------------------------------------------------------------------------

const RED = new Set([1, 3, 5, 7, 9, 12, 14, 16, 18, 19, 21, 23, 25, 27, 30, 32, 34, 36]);

/** The pockets a bet covers (docs/games.md, "Bets and payouts"). */
export function covers(bet) {
  const all = Array.from({ length: 36 }, (_, i) => i + 1);
  const sel = (bet.numbers || [])[0];
  switch (bet.kind) {
    case 'dozen': return all.filter((n) => Math.ceil(n / 12) === sel);
    case 'column': return all.filter((n) => ((n - 1) % 3) + 1 === sel);
    case 'red': return all.filter((n) => RED.has(n));
    case 'black': return all.filter((n) => !RED.has(n));
    case 'odd': return all.filter((n) => n % 2 === 1);
    case 'even': return all.filter((n) => n % 2 === 0);
    case 'low': return all.filter((n) => n <= 18);
    case 'high': return all.filter((n) => n >= 19);
    default: return bet.numbers || [];
  }
}

async function replayRoulette(stream, round) {
  const pocket = await stream.below(37);
  const color = pocket === 0 ? 'green' : RED.has(pocket) ? 'red' : 'black';
  let paid = 0;
  const checks = [check('pocket', round.detail.pocket, pocket), check('color', round.detail.color, color)];
  round.detail.bets.forEach((bet, index) => {
    const covered = covers(bet);
    const payout = covered.includes(pocket) ? (bet.amount * 36) / covered.length : 0;
    paid += payout;
    checks.push(check(`bets[${index}] payout`, bet.payout, payout));
  });
  checks.push(check('win', round.win, paid));
  return checks;
}

// --- blackjack -------------------------------------------------------------------------

/** The six-deck shoe in its documented order, before the shuffle. */
export function orderedShoe() {
  const cards = [];
  for (let deck = 0; deck < 6; deck += 1) {
    for (const suit of 'CDHS') for (const rank of 'A23456789TJQK') cards.push(rank + suit);
  }
  return cards;
}

/** The best count of a hand: an ace counts 11 when that stays at or below 21. */
export function count(cards) {
  let hard = 0;
  let ace = false;
  for (const card of cards) {
    const rank = card[0];
    if (rank === 'A') { hard += 1; ace = true; } else if ('TJQK'.includes(rank)) hard += 10; else hard += Number(rank);
  }
  return ace && hard <= 11 ? hard + 10 : hard;
}

/** Replays a hand from its shuffled shoe, bet and actions (docs/games.md, blackjack). */
export function playHand(shoe, bet, actions) {
  const player = [shoe[0], shoe[2]];
  const dealer = [shoe[1], shoe[3]];
  let next = 4;
  let stake = bet;
  let status;
  const natural = (hand) => hand.length === 2 && count(hand) === 21;
  if (natural(player) || natural(dealer)) {
    status = natural(player) ? (natural(dealer) ? 'push' : 'blackjack') : 'dealer_win';
  } else {
    status = 'playing';
    for (const action of actions) {
      if (status !== 'playing') throw new Error('an action after the hand was over');
      if (action === 'double') stake = 2 * bet;
      if (action === 'hit' || action === 'double') { player.push(shoe[next]); next += 1; }
      const p = count(player);
      if (p > 21) {
        status = 'player_bust';
      } else if (action === 'stand' || action === 'double' || p === 21) {
        while (count(dealer) < 17) { dealer.push(shoe[next]); next += 1; }
        const d = count(dealer);
        status = d > 21 ? 'dealer_bust' : p > d ? 'player_win' : p < d ? 'dealer_win' : 'push';
      }
    }
  }
  const payout = { blackjack: (bet * 5) / 2, player_win: 2 * stake, dealer_bust: 2 * stake, push: stake }[status] || 0;
  return { player, dealer, status, payout, stake };
}

async function replayBlackjack(stream, round) {
  const hand = round.detail.hand;
  const shoe = await shuffle(stream, orderedShoe());
  const replay = playHand(shoe, hand.bet, hand.actions);
  const checks = [check('player cards', hand.player.cards, replay.player)];
  if (hand.hole_card_hidden) {
    checks.push(check('dealer up card', hand.dealer.cards, replay.dealer.slice(0, 1)));
  } else {
    checks.push(check('dealer cards', hand.dealer.cards, replay.dealer));
  }
  checks.push(check('status', hand.status, replay.status));
  if (round.status === 'settled') checks.push(check('win', round.win, replay.payout));
  return checks;
}

// --- rounds ----------------------------------------------------------------------------

function check(name, recorded, derived) {
  return { name, recorded, derived, ok: JSON.stringify(recorded) === JSON.stringify(derived) };
}

const REPLAYS = { slots: replaySlots, dice: replayDice, roulette: replayRoulette, blackjack: replayBlackjack };

/**
 * Verifies a round as answered by `GET /v1/fairness/rounds/{id}`: the revealed seed against
 * the commitment, then the game's outcome re-derived from the seeds and nonce.
 * Returns `{ok, checks}`; throws when the seed is not revealed yet.
 */
export async function verifyRound(round) {
  if (!round.server_seed) throw new Error('the server seed is not revealed yet: rotate the seed first');
  const replay = REPLAYS[round.game];
  if (!replay) throw new Error(`no in-browser replay for ${round.game}`);
  const checks = [
    check('SHA-256(server seed) = commitment', round.server_seed_hash, await sha256Hex(hexToBytes(round.server_seed))),
  ];
  const stream = await Stream.open(round.server_seed, round.client_seed, round.nonce);
  checks.push(...(await replay(stream, round)));
  return { ok: checks.every((c) => c.ok), checks };
}

/**
 * The known answers of docs/games.md, computed here. The browser test runs it, so the page's
 * arithmetic is pinned to the same figures as the server's unit tests.
 */
export async function knownAnswers() {
  const seed = '07'.repeat(32);
  const pockets = [];
  const rolls = [];
  for (let nonce = 0; nonce < 5; nonce += 1) {
    pockets.push(await (await Stream.open(seed, 'lucky', nonce)).below(37));
    rolls.push(await (await Stream.open(seed, 'lucky', nonce)).below(10000));
  }
  const ten = await shuffle(await Stream.open(seed, 'lucky', 0), Array.from({ length: 10 }, (_, i) => i));
  const shoe = await shuffle(await Stream.open(seed, 'lucky', 0), orderedShoe());
  const first = await (await Stream.open('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'player-seed', 7)).next();
  const commitment = await sha256Hex(hexToBytes('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'));
  return { pockets, rolls, ten, shoe: shoe.slice(0, 12), first, commitment, hand: playHand(shoe, 10, ['stand']) };
}
