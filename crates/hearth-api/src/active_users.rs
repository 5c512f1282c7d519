//! `hearth_active_users`: distinct users seen in the last [`WINDOW_SECS`], per gateway.
//!
//! Recording sits on the request path (every `AuthUser`), so it is cheap there: the user's
//! shard is read-locked (shared, never waited on while nobody prunes), and the stored second
//! is rewritten only when it differs, so a busy user costs one atomic store per second. Only a
//! user's first sighting since the last prune takes the shard's write lock and allocates.
//! Pruning and counting happen when `/metrics` is scraped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

/// How long a user counts as active after their last request or socket sign of life.
pub(crate) const WINDOW_SECS: u64 = 5 * 60;

/// Shards, so that a first sighting write-locks one sixteenth of the users.
const SHARDS: usize = 16;

/// User id → the last second (unix) the user was seen.
#[derive(Debug)]
pub(crate) struct ActiveUsers {
    shards: [RwLock<HashMap<Uuid, AtomicU64>>; SHARDS],
}

impl Default for ActiveUsers {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| RwLock::new(HashMap::new())),
        }
    }
}

impl ActiveUsers {
    /// Records `user` as seen now.
    pub(crate) fn seen(&self, user: Uuid) {
        self.seen_at(user, now_secs());
    }

    /// Records `user` as seen at `second` (unix). A later second never goes back.
    pub(crate) fn seen_at(&self, user: Uuid, second: u64) {
        let shard = &self.shards[shard_of(user)];
        {
            let users = shard.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(last) = users.get(&user) {
                if last.load(Ordering::Relaxed) < second {
                    last.fetch_max(second, Ordering::Relaxed);
                }
                return;
            }
        }
        shard
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(user)
            .or_insert_with(|| AtomicU64::new(0))
            .fetch_max(second, Ordering::Relaxed);
    }

    /// Forgets users not seen in the [`WINDOW_SECS`] before `now` (unix seconds) and counts
    /// the others.
    pub(crate) fn count_at(&self, now: u64) -> usize {
        let since = now.saturating_sub(WINDOW_SECS);
        self.shards
            .iter()
            .map(|shard| {
                let mut users = shard.write().unwrap_or_else(PoisonError::into_inner);
                users.retain(|_, last| last.load(Ordering::Relaxed) > since);
                users.len()
            })
            .sum()
    }

    /// [`Self::count_at`] now.
    pub(crate) fn count(&self) -> usize {
        self.count_at(now_secs())
    }
}

/// The shard of `user`: the low bits of the id, random in v4 and v7 ids alike.
fn shard_of(user: Uuid) -> usize {
    (user.as_u128() % SHARDS as u128) as usize
}

/// The wall clock in unix seconds.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_seen_within_the_window_are_counted_once_and_older_ones_are_forgotten() {
        let active = ActiveUsers::default();
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let now = 1_000_000;
        active.seen_at(a, now - WINDOW_SECS - 1);
        active.seen_at(b, now - WINDOW_SECS + 1);
        active.seen_at(c, now - 10);
        active.seen_at(c, now - 20);
        active.seen_at(c, now);
        assert_eq!(active.count_at(now), 2);
        // `b` ages out; `a` was pruned and stays gone until seen again.
        assert_eq!(active.count_at(now + 1), 1);
        active.seen_at(a, now + 2);
        assert_eq!(active.count_at(now + 2), 2);
    }

    #[test]
    fn an_earlier_sighting_does_not_move_the_last_second_back() {
        let active = ActiveUsers::default();
        let user = Uuid::new_v4();
        active.seen_at(user, 500);
        active.seen_at(user, 100);
        assert_eq!(active.count_at(500 + WINDOW_SECS - 1), 1);
        assert_eq!(active.count_at(500 + WINDOW_SECS), 0);
    }
}
