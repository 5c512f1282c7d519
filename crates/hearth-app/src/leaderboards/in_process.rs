//! The in-process store: one mutex over small sorted sets, for the embedded setup.

use std::cmp::Reverse;
use std::collections::hash_map::Entry as Slot;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    Board, Entry, LeaderboardError, Leaderboards, MAX_LIMIT, Period, SettledScore, Snapshot,
};

/// Leaderboards in this process's memory, for a single-process (embedded) deployment.
///
/// Each board is a sorted set like Redis's (a score per user plus an ordered index), so
/// recording is `O(log n)` and a page is `O(limit)`; every call holds one mutex briefly and
/// never across an `.await`. Only the current day and ISO week are kept besides all time (see
/// the module docs); nothing survives a restart until the next rebuild.
#[derive(Default)]
pub struct InProcessLeaderboards {
    state: Mutex<State>,
}

impl InProcessLeaderboards {
    /// Empty boards.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every step, so a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for InProcessLeaderboards {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("InProcessLeaderboards")
            .field("boards", &state.boards.len())
            .field("names", &state.names.len())
            .finish()
    }
}

#[derive(Default)]
struct State {
    names: HashMap<Uuid, String>,
    /// One board per `(board, period)`: the period kept and its scores.
    boards: HashMap<(Board, Period), PeriodBoard>,
}

struct PeriodBoard {
    /// [`Period::id`]; ids of one period kind sort in time order.
    id: String,
    scores: SortedSet,
}

impl State {
    /// The scores of `board` for the period `id`. A newer period replaces (drops) the one kept;
    /// an older one than kept gives `None`: its board is gone.
    fn board_mut(&mut self, board: Board, period: Period, id: &str) -> Option<&mut SortedSet> {
        match self.boards.entry((board, period)) {
            Slot::Occupied(slot) if slot.get().id == id => Some(&mut slot.into_mut().scores),
            Slot::Occupied(slot) if slot.get().id.as_str() > id => None,
            Slot::Occupied(mut slot) => {
                *slot.get_mut() = PeriodBoard::new(id);
                Some(&mut slot.into_mut().scores)
            }
            Slot::Vacant(slot) => Some(&mut slot.insert(PeriodBoard::new(id)).scores),
        }
    }
}

impl PeriodBoard {
    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            scores: SortedSet::default(),
        }
    }
}

/// Scores by user, with an index in page order: score, then user id, both descending (what
/// Redis's `ZREVRANGE` gives for lowercase hyphenated UUID members).
#[derive(Default)]
struct SortedSet {
    scores: HashMap<Uuid, i64>,
    order: BTreeSet<(Reverse<i64>, Reverse<Uuid>)>,
}

impl SortedSet {
    fn set(&mut self, user: Uuid, score: i64) {
        if let Some(old) = self.scores.insert(user, score) {
            self.order.remove(&(Reverse(old), Reverse(user)));
        }
        self.order.insert((Reverse(score), Reverse(user)));
    }

    fn update(&mut self, user: Uuid, score: impl FnOnce(Option<i64>) -> i64) {
        let new = score(self.scores.get(&user).copied());
        self.set(user, new);
    }

    fn top(&self, limit: usize) -> impl Iterator<Item = (Uuid, i64)> + '_ {
        self.order
            .iter()
            .take(limit)
            .map(|(Reverse(score), Reverse(user))| (*user, *score))
    }
}

#[async_trait]
impl Leaderboards for InProcessLeaderboards {
    async fn record(&self, round: &SettledScore) -> Result<(), LeaderboardError> {
        let user = round.user_id;
        let (win, net) = (round.win, round.win.saturating_sub(round.bet));
        let ids = Period::ALL.map(|period| (period, period.id(round.at)));
        let mut state = self.lock();
        match state.names.get_mut(&user) {
            Some(name) if *name == round.username => {}
            Some(name) => name.clone_from(&round.username),
            None => {
                state.names.insert(user, round.username.clone());
            }
        }
        let all_time = Period::AllTime.id(round.at);
        if let Some(scores) = state.board_mut(Board::Balance, Period::AllTime, &all_time) {
            scores.set(user, round.balance);
        }
        for (period, id) in &ids {
            if win > 0
                && let Some(scores) = state.board_mut(Board::BiggestWin, *period, id)
            {
                scores.update(user, |old| old.map_or(win, |old| old.max(win)));
            }
            if let Some(scores) = state.board_mut(Board::NetWon, *period, id) {
                scores.update(user, |old| old.unwrap_or(0).saturating_add(net));
            }
        }
        Ok(())
    }

    async fn top(
        &self,
        board: Board,
        period: Period,
        at: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Entry>, LeaderboardError> {
        board.check_period(period)?;
        let limit = usize::try_from(limit.min(MAX_LIMIT)).unwrap_or(0);
        let id = period.id(at);
        let state = self.lock();
        let Some(kept) = state.boards.get(&(board, period)).filter(|b| b.id == id) else {
            return Ok(Vec::new());
        };
        Ok((1..)
            .zip(kept.scores.top(limit))
            .map(|(rank, (user_id, score))| Entry {
                rank,
                user_id,
                username: state.names.get(&user_id).cloned().unwrap_or_default(),
                score,
            })
            .collect())
    }

    async fn replace(&self, snapshot: Snapshot) -> Result<(), LeaderboardError> {
        snapshot.check()?;
        // Built outside the lock; swapped in under it, all boards at once.
        let mut names = Vec::new();
        let mut built = Vec::new();
        for ((board, period), rows) in snapshot.boards {
            let mut new = PeriodBoard::new(&period.id(snapshot.at));
            for row in rows {
                new.scores.set(row.user_id, row.score);
                names.push((row.user_id, row.username));
            }
            built.push(((board, period), new));
        }
        let mut state = self.lock();
        state.names.extend(names);
        for (key, new) in built {
            match state.boards.get(&key) {
                // A snapshot of a period older than the one kept has nothing to replace.
                Some(kept) if kept.id > new.id => {}
                _ => {
                    state.boards.insert(key, new);
                }
            }
        }
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "in_process"
    }
}
