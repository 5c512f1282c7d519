//! Leaderboard stores: the boards served between rebuilds, in this process or in Redis.
//!
//! The rules (boards, periods, ranks) are [`hearth_domain::leaderboard`], re-exported here.
//! Boards are updated as each round settles ([`Leaderboards::record`], called by
//! [`crate::rounds::Rounds`]) and rebuilt from the database ([`rebuild`], which reads a
//! [`Snapshot`] from a [`LeaderboardSource`] and swaps it in with
//! [`Leaderboards::replace`]). Two implementations pass one shared suite
//! (`tests/it/leaderboards.rs`):
//!
//! - [`InProcessLeaderboards`]: small sorted sets behind a mutex, for the embedded
//!   (single-process) setup.
//! - [`RedisLeaderboards`]: Redis sorted sets, shared by every gateway in production.
//!
//! [`LeaderboardPusher`] (`push`) turns them into the WebSocket's `leaderboard` pushes: each
//! gateway, once a second, delivers to its own subscribers the top 10 that changed.
//!
//! # Redis keys
//! With a configurable prefix (e.g. `hearth:`):
//! - `{prefix}lb:{board}:{period}:{period_id}`: one sorted set per board and period, member =
//!   user id (lowercase hyphenated), score = the board's score. For example
//!   `hearth:lb:biggest_win:daily:2026-11-22`, `hearth:lb:net_won:weekly:2026-W47`,
//!   `hearth:lb:balance:all_time:all`. Daily and weekly keys expire two periods (2 days,
//!   14 days) after their last write; all-time keys do not expire.
//! - `{prefix}lb:names`: a hash from user id to the username last recorded.
//! - `{prefix}lb:tmp:{token}:…`: a rebuild's boards before they are renamed into place,
//!   expiring after five minutes if the rebuild dies half-way.
//!
//! A round is recorded in one round trip (a `MULTI` pipeline: `HSET`, `ZADD`, `ZADD … GT`,
//! `ZINCRBY`, `EXPIRE`). Redis scores are doubles: values beyond ±2⁵³ would lose precision.
//!
//! # Bounded memory
//! [`InProcessLeaderboards`] keeps only the current day and the current ISO week (the newest
//! seen by [`Leaderboards::record`] or [`Leaderboards::replace`]) besides all time: when a
//! round of a new day arrives, the previous day's boards are dropped, and a late round of an
//! older day is still counted for the week and all time but not for its (dropped) day. Reading
//! a period that is not kept returns an empty page. In Redis old periods simply expire. The
//! all-time boards hold one entry per player who played; the names one per player.
//!
//! # What it does not do
//! - It does not read the database on its own: boards change through `record` (after a round
//!   settles) and through [`rebuild`] (at start for in-process boards, scheduled by the worker
//!   for Redis). Balances that change without a round (the welcome bonus) appear at the next
//!   rebuild.
//! - A rebuild carries the top `limit` of each board only. A player outside it restarts from
//!   the rebuild: their `net_won` counts only later rounds until the next rebuild. Rebuild with
//!   a `limit` well above [`MAX_LIMIT`] ([`REBUILD_LIMIT`]) so players near the page matter.
//! - A round recorded while a rebuild runs may be counted twice (read by the snapshot and
//!   recorded after the swap) or not at all in `net_won` until the next rebuild.
//! - It is not Redis-Cluster aware: a rebuild renames keys, which must share one node.
//! - No pagination beyond the top [`MAX_LIMIT`], no per-game boards.
//!
//! # Example
//! ```
//! # async fn example() -> Result<(), hearth_app::leaderboards::LeaderboardError> {
//! use hearth_app::leaderboards::{
//!     Board, InProcessLeaderboards, Leaderboards, Period, SettledScore,
//! };
//! use time::macros::datetime;
//!
//! let boards = InProcessLeaderboards::new();
//! let at = datetime!(2026-11-22 18:00 UTC);
//! let user_id = uuid::Uuid::now_v7();
//! let round = SettledScore { user_id, username: "alice".into(), bet: 10, win: 50, balance: 1_040, at };
//! boards.record(&round).await?;
//! let top = boards.top(Board::BiggestWin, Period::Daily, at, 10).await?;
//! assert_eq!((top[0].rank, top[0].score), (1, 50));
//! # Ok(()) }
//! ```

mod in_process;
mod push;
mod redis_store;

use async_trait::async_trait;
pub use hearth_domain::leaderboard::{
    Board, Entry, MAX_LIMIT, NoSuchPeriod, Period, Scored, SettledScore, Snapshot, UnknownName,
};
pub use hearth_limits::RedisTarget;
use hearth_storage::StorageError;
pub use hearth_storage::leaderboard::LeaderboardSource;
use time::OffsetDateTime;

pub use in_process::InProcessLeaderboards;
pub use push::{LeaderboardPusher, PUSHED_ENTRIES};
pub use redis_store::RedisLeaderboards;

/// How many entries per board a rebuild keeps: well above what is served ([`MAX_LIMIT`]), so
/// players just below the top keep their running totals.
pub const REBUILD_LIMIT: u32 = 1_000;

/// Why a leaderboard call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaderboardError {
    /// The board does not exist for that period: `balance` is all-time only.
    #[error("this board has no such period (balance is all_time only)")]
    NoSuchPeriod,
    /// Redis could not be reached in time or refused a command.
    #[error("leaderboard store unavailable")]
    Unavailable(#[source] redis::RedisError),
    /// Reading the database for a rebuild failed.
    #[error("leaderboard rebuild could not read the database")]
    Storage(#[from] StorageError),
}

impl From<NoSuchPeriod> for LeaderboardError {
    fn from(_: NoSuchPeriod) -> Self {
        Self::NoSuchPeriod
    }
}

/// A store of leaderboards.
#[async_trait]
pub trait Leaderboards: Send + Sync {
    /// Counts a settled round on every board, for its day, its ISO week and all time:
    /// `balance` is set to the round's balance, `biggest_win` raised to `win` when higher
    /// (rounds paying 0 are not counted), `net_won` increased by `win − bet`. The username is
    /// stored (or updated) for display.
    ///
    /// # Errors
    /// [`LeaderboardError::Unavailable`] when Redis fails; the round is then not counted
    /// (Redis applies all of it or none of it) until the next rebuild.
    async fn record(&self, round: &SettledScore) -> Result<(), LeaderboardError>;

    /// The top `limit` (at most [`MAX_LIMIT`]; 0 gives an empty page) of a board for the
    /// period holding `at`, ranked from 1, ties by user id descending.
    ///
    /// # Errors
    /// [`LeaderboardError::NoSuchPeriod`] for `balance` with `daily` or `weekly`;
    /// [`LeaderboardError::Unavailable`] when Redis fails.
    async fn top(
        &self,
        board: Board,
        period: Period,
        at: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Entry>, LeaderboardError>;

    /// Replaces each board the snapshot covers (for the periods holding `snapshot.at`) with
    /// the snapshot's contents. Readers see the old board or the new one, never a mix.
    ///
    /// # Errors
    /// [`LeaderboardError::NoSuchPeriod`] (before anything changes) when the snapshot holds a
    /// board for a period it does not exist in; [`LeaderboardError::Unavailable`] when Redis
    /// fails (boards already swapped stay swapped; each board is all old or all new).
    async fn replace(&self, snapshot: Snapshot) -> Result<(), LeaderboardError>;

    /// `"in_process"` or `"redis"`.
    fn backend(&self) -> &'static str;
}

/// Rebuilds `boards` from the database: reads [`LeaderboardSource::leaderboard_snapshot`] for
/// the periods holding `at` and swaps it in with [`Leaderboards::replace`]. Returns the number
/// of entries written across all boards.
///
/// # Errors
/// [`LeaderboardError::Storage`] when the database cannot be read (nothing changes);
/// [`LeaderboardError::Unavailable`] when Redis fails.
#[tracing::instrument(skip_all, fields(backend = boards.backend(), limit = limit), err)]
pub async fn rebuild(
    source: &dyn LeaderboardSource,
    boards: &dyn Leaderboards,
    at: OffsetDateTime,
    limit: u32,
) -> Result<usize, LeaderboardError> {
    let snapshot = source.leaderboard_snapshot(at, limit).await?;
    let entries = snapshot.len();
    boards.replace(snapshot).await?;
    tracing::info!(entries, "leaderboards rebuilt");
    Ok(entries)
}
