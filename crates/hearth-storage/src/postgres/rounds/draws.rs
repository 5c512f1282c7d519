//! Drawing ahead of the lock: the draw inputs this process last saw for each player, the
//! outcomes drawn from them for the next few nonces, and which of those a played nonce picks.
//! Nothing here talks to the database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use hearth_domain::fairness::{ClientSeed, FairRng, ServerSeed};
use time::OffsetDateTime;
use uuid::Uuid;

use super::coalesce::{Queue, RoundCall};
use crate::round::RoundStatus;
use crate::{RoundRequest, RoundStatements, SettledRound, StorageError};

/// The inputs of a player's next draw: their seeds and next nonce.
#[derive(Clone, sqlx::FromRow)]
pub(super) struct DrawInputs {
    pub(super) server_seed: String,
    pub(super) server_seed_hash: String,
    pub(super) client_seed: String,
    pub(super) nonce: i64,
}

impl DrawInputs {
    /// The seeds, parsed once for every outcome drawn from them; `None` when they do not parse,
    /// which the locked path then reports in its own order.
    fn seeds(&self) -> Option<(ServerSeed, ClientSeed)> {
        Some((
            ServerSeed::from_hex(&self.server_seed).ok()?,
            ClientSeed::parse(&self.client_seed).ok()?,
        ))
    }

    /// Runs the rules with `seeds` (these inputs' own, from [`Self::seeds`]) and the nonce
    /// `offset` after the next one; `None` when the rules refuse, which the locked path then
    /// reports in its own order.
    fn draw(
        &self,
        (server_seed, client_seed): &(ServerSeed, ClientSeed),
        request: &RoundRequest<'_>,
        offset: usize,
    ) -> Option<Drawn> {
        let nonce = u64::try_from(self.nonce)
            .ok()?
            .checked_add(u64::try_from(offset).ok()?)?;
        let play = (request.play)(&mut FairRng::new(server_seed, client_seed, nonce)).ok()?;
        let status = RoundStatus::of_play(&play).ok()?;
        Some(Drawn {
            settled: SettledRound {
                round_id: request.round_id,
                status: status.as_str().to_owned(),
                game: request.game.to_owned(),
                bet: request.bet,
                win: play.win,
                balance: 0,
                detail: play.detail,
                server_seed_hash: self.server_seed_hash.clone(),
                client_seed: self.client_seed.clone(),
                nonce,
                created_at: OffsetDateTime::UNIX_EPOCH,
            },
            status,
            state: play.state,
        })
    }

    /// Whether these are the same seeds as `other`'s.
    fn same_seeds(&self, other: &Self) -> bool {
        self.server_seed_hash == other.server_seed_hash && self.client_seed == other.client_seed
    }
}

impl std::fmt::Debug for DrawInputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The server seed is secret until rotated.
        f.debug_struct("DrawInputs")
            .field("server_seed_hash", &self.server_seed_hash)
            .field("nonce", &self.nonce)
            .finish_non_exhaustive()
    }
}

/// A round drawn ahead of the transaction that will (or will not) settle it; its balance and
/// time are the transaction's.
struct Drawn {
    settled: SettledRound,
    status: RoundStatus,
    state: Option<serde_json::Value>,
}

/// The outcomes of one round drawn for the nonces from `first_nonce` on.
pub(super) struct DrawnAhead {
    first_nonce: i64,
    rounds: Vec<Drawn>,
}

impl DrawnAhead {
    /// Draws `request`'s round from `inputs` for up to `ahead` nonces, stopping at the first
    /// the rules refuse; `None` when the seeds do not parse or the first draw is refused.
    pub(super) fn draw(
        inputs: &DrawInputs,
        request: &RoundRequest<'_>,
        ahead: usize,
    ) -> Option<Self> {
        let seeds = inputs.seeds()?;
        let mut rounds = Vec::with_capacity(ahead);
        for offset in 0..ahead {
            match inputs.draw(&seeds, request, offset) {
                Some(round) => rounds.push(round),
                None => break,
            }
        }
        (!rounds.is_empty()).then_some(Self {
            first_nonce: inputs.nonce,
            rounds,
        })
    }

    /// The call of `hearth_play_round` that offers these outcomes for `request`.
    pub(super) fn call(&self, request: &RoundRequest<'_>) -> RoundCall {
        let (key, fingerprint) = match &request.idempotency {
            Some(i) => (Some(i.key.clone()), Some(i.fingerprint.clone())),
            None => (None, None),
        };
        // Every outcome was drawn from the same inputs.
        let (server_seed_hash, client_seed) = self
            .rounds
            .first()
            .map(|d| {
                (
                    d.settled.server_seed_hash.clone(),
                    d.settled.client_seed.clone(),
                )
            })
            .unwrap_or_default();
        RoundCall {
            user_id: request.user_id,
            round_id: request.round_id,
            game: request.game.to_owned(),
            bet: request.bet,
            server_seed_hash,
            client_seed,
            first_nonce: self.first_nonce,
            wins: self.rounds.iter().map(|d| d.settled.win).collect(),
            statuses: self.rounds.iter().map(|d| d.status.as_str()).collect(),
            details: self
                .rounds
                .iter()
                .map(|d| d.settled.detail.to_string())
                .collect(),
            states: self
                .rounds
                .iter()
                .map(|d| d.state.as_ref().map(ToString::to_string))
                .collect(),
            key,
            fingerprint,
        }
    }

    /// Where `nonce`'s outcome is, if it was drawn.
    fn at(&self, nonce: i64) -> Option<usize> {
        nonce
            .checked_sub(self.first_nonce)
            .and_then(|at| usize::try_from(at).ok())
            .filter(|at| *at < self.rounds.len())
    }

    /// The round played with `nonce`, which must be one drawn.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] for a nonce not drawn: the function plays only those offered.
    pub(super) fn take(mut self, nonce: i64) -> Result<SettledRound, StorageError> {
        self.at(nonce)
            .map(|at| self.rounds.swap_remove(at).settled)
            .ok_or_else(|| StorageError::Corrupt("nonce played".into()))
    }

    /// The win drawn for `nonce`, 0 when it was not drawn.
    pub(super) fn win_at(&self, nonce: i64) -> i64 {
        self.at(nonce)
            .and_then(|at| self.rounds.get(at))
            .map_or(0, |d| d.settled.win)
    }
}

/// What this process last saw of a player's draw inputs, and how many of their rounds it has in
/// flight. Only a guess: `hearth_play_round` checks it under the row lock, so another process or
/// a seed change costs a retry, never a wrong draw.
#[derive(Debug, Default)]
pub(super) struct PlayerDraws {
    last: Mutex<Option<DrawInputs>>,
    in_flight: AtomicUsize,
}

impl PlayerDraws {
    pub(super) fn last(&self) -> Option<DrawInputs> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Remembers `seen` unless it is older than what is remembered.
    pub(super) fn remember(&self, seen: DrawInputs) {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        match &*last {
            Some(known) if known.same_seeds(&seen) && known.nonce > seen.nonce => {}
            _ => *last = Some(seen),
        }
    }

    pub(super) fn forget(&self) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// Counts a round in flight, for its player and for the process, for as long as it lives.
pub(super) struct InFlight<'a> {
    player: &'a PlayerDraws,
    all: &'a AtomicUsize,
}

impl<'a> InFlight<'a> {
    /// Enters, and returns how many of the player's rounds and how many rounds in all are in
    /// flight, this one included.
    pub(super) fn enter(cache: &'a DrawCache, player: &'a PlayerDraws) -> (Self, usize, usize) {
        let mine = player.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        let all = cache.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        (
            Self {
                player,
                all: &cache.in_flight,
            },
            mine,
            all,
        )
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.player.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.all.fetch_sub(1, Ordering::Relaxed);
    }
}

/// [`PlayerDraws`] per player, and the queue rounds wait in while others are in flight.
#[derive(Debug)]
pub(in crate::postgres) struct DrawCache {
    players: Mutex<HashMap<Uuid, Arc<PlayerDraws>>>,
    /// Rounds in flight in this process.
    in_flight: AtomicUsize,
    /// Where rounds wait while others are in flight; `None` sends every round alone.
    pub(super) queue: Option<Arc<Queue>>,
}

impl DrawCache {
    /// Players remembered before idle ones are forgotten.
    const CAPACITY: usize = 50_000;
    /// The most outcomes drawn ahead for one round.
    pub(super) const MAX_AHEAD: usize = 32;

    /// With at most `batches` statements of queued rounds in flight; `0` sends every round
    /// alone.
    pub(in crate::postgres) fn new(batches: u32) -> Self {
        Self {
            players: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            queue: usize::try_from(batches)
                .ok()
                .filter(|n| *n > 0)
                .map(|n| Arc::new(Queue::new(n))),
        }
    }

    pub(super) fn player(&self, user: Uuid) -> Arc<PlayerDraws> {
        let mut players = self.players.lock().unwrap_or_else(PoisonError::into_inner);
        if players.len() >= Self::CAPACITY && !players.contains_key(&user) {
            players.retain(|_, player| Arc::strong_count(player) > 1);
        }
        Arc::clone(players.entry(user).or_default())
    }

    /// What the queue has sent so far; nothing without one.
    pub(in crate::postgres) fn statements(&self) -> RoundStatements {
        self.queue
            .as_ref()
            .map(|queue| queue.sent())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use hearth_domain::fairness::RandomSource;
    use hearth_domain::games::GameError;

    use super::*;
    use crate::{RoundPlay, RoundRequest};

    const SERVER_SEED: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn inputs(nonce: i64) -> DrawInputs {
        DrawInputs {
            server_seed: SERVER_SEED.into(),
            server_seed_hash: "hash".into(),
            client_seed: "client".into(),
            nonce,
        }
    }

    /// A win that depends on the nonce drawn with.
    fn spin(rng: &mut FairRng<'_>) -> Result<RoundPlay, GameError> {
        Ok(RoundPlay {
            win: i64::from(rng.next_u32()),
            detail: serde_json::Value::Null,
            state: None,
        })
    }

    fn request<'a>(play: &'a crate::model::PlayFn<'a>) -> RoundRequest<'a> {
        RoundRequest {
            user_id: Uuid::nil(),
            round_id: Uuid::nil(),
            game: "slots",
            bet: 10,
            play,
            idempotency: None,
        }
    }

    fn win_at_nonce(nonce: u64) -> i64 {
        let server = ServerSeed::from_hex(SERVER_SEED).unwrap();
        let client = ClientSeed::parse("client").unwrap();
        spin(&mut FairRng::new(&server, &client, nonce))
            .unwrap()
            .win
    }

    #[test]
    fn each_outcome_drawn_ahead_is_the_one_its_nonce_draws() {
        let drawn = DrawnAhead::draw(&inputs(5), &request(&spin), 3).unwrap();
        let call = drawn.call(&request(&spin));
        assert_eq!(call.first_nonce, 5);
        assert_eq!(
            call.wins,
            vec![win_at_nonce(5), win_at_nonce(6), win_at_nonce(7)]
        );
        assert_eq!(call.statuses, vec!["settled"; 3]);
        assert_eq!(drawn.win_at(6), win_at_nonce(6));
        let played = drawn.take(7).unwrap();
        assert_eq!((played.nonce, played.win), (7, win_at_nonce(7)));
    }

    #[test]
    fn a_nonce_not_drawn_wins_nothing_and_cannot_be_taken() {
        let drawn = DrawnAhead::draw(&inputs(5), &request(&spin), 2).unwrap();
        assert_eq!(drawn.win_at(4), 0);
        assert_eq!(drawn.win_at(7), 0);
        assert_eq!(drawn.win_at(i64::MIN), 0);
        assert!(matches!(drawn.take(7), Err(StorageError::Corrupt(_))));
    }

    #[test]
    fn drawing_ahead_stops_at_the_first_refusal_and_none_is_nothing() {
        let calls = AtomicUsize::new(0);
        let refuses_third = |rng: &mut FairRng<'_>| {
            if calls.fetch_add(1, Ordering::Relaxed) == 2 {
                return Err(GameError::CorruptState);
            }
            spin(rng)
        };
        let drawn = DrawnAhead::draw(&inputs(0), &request(&refuses_third), 5).unwrap();
        assert_eq!(drawn.call(&request(&spin)).wins.len(), 2);
        let refuses = |_: &mut FairRng<'_>| Err(GameError::CorruptState);
        assert!(DrawnAhead::draw(&inputs(0), &request(&refuses), 5).is_none());
        let mut bad_seed = inputs(0);
        bad_seed.server_seed = "not hex".into();
        assert!(DrawnAhead::draw(&bad_seed, &request(&spin), 5).is_none());
    }

    #[test]
    fn a_player_remembers_the_newest_inputs_for_the_same_seeds() {
        let player = PlayerDraws::default();
        player.remember(inputs(8));
        player.remember(inputs(6));
        assert_eq!(player.last().map(|i| i.nonce), Some(8));
        let mut rotated = inputs(0);
        rotated.server_seed_hash = "rotated".into();
        player.remember(rotated);
        assert_eq!(player.last().map(|i| i.nonce), Some(0));
        player.forget();
        assert!(player.last().is_none());
    }
}
