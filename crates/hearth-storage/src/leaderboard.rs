//! Leaderboards: the top players by balance, by biggest win and by net winnings, per UTC day,
//! ISO week and all time.
//!
//! Boards are kept outside the database, updated as each round settles
//! ([`Leaderboards::record`]) and rebuilt from the database on a schedule ([`rebuild`], which
//! reads a [`Snapshot`] from a [`LeaderboardSource`] and swaps it in with
//! [`Leaderboards::replace`]). Two implementations pass one shared suite:
//!
//! - [`InProcessLeaderboards`]: maps behind a mutex, for the embedded (single-process) setup.
//! - `RedisLeaderboards` (feature `redis`, on by default): Redis sorted sets, shared by every
//!   gateway in production.
//!
//! # Boards
//! | [`Board`] | score | periods |
//! |---|---|---|
//! | `balance` | the wallet balance after the player's latest round | `all_time` only; any other period is [`LeaderboardError::NoSuchPeriod`] |
//! | `biggest_win` | the largest single payout (`win`) of a settled round in the period; rounds that paid nothing are not counted, so a player who never won is not listed | `daily`, `weekly`, `all_time` |
//! | `net_won` | the sum of `win − bet` over the period's settled rounds; may be negative | `daily`, `weekly`, `all_time` |
//!
//! # Periods
//! All periods are UTC and identified by a time inside them ([`Period::id`]), so callers (and
//! tests) pass the time rather than a period name: `daily` is the calendar day (`2026-11-22`),
//! `weekly` the ISO 8601 week, starting on Monday and numbered in its ISO year (`2026-W47`;
//! 1 January 2027 falls in `2026-W53`), and `all_time` is `all`.
//!
//! # Order and ranks
//! Scores are sorted highest first. **Equal scores are ordered by user id, highest first**:
//! Redis orders the members of a sorted set that share a score lexicographically by their
//! bytes and `ZREVRANGE` reverses that; members are lowercase hyphenated UUIDs, whose byte
//! order is the UUID's own order, so the in-process board sorts by `(score, user_id)`
//! descending and both give the same page. With UUIDv7 ids the later-registered player comes
//! first among equals. Ranks are positions (`1..=limit`): equal scores get consecutive
//! ranks, never a shared one. A page holds at most [`MAX_LIMIT`] entries.
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
//!   settles, by the caller) and through [`rebuild`] (scheduled by the worker). Balances that
//!   change without a round (the welcome bonus) appear at the next rebuild.
//! - A rebuild carries the top `limit` of each board only. A player outside it restarts from
//!   the rebuild: their `net_won` counts only later rounds until the next rebuild. Rebuild with
//!   a `limit` well above [`MAX_LIMIT`] (the worker's choice) so players near the page matter.
//! - A round recorded while a rebuild runs may be counted twice (read by the snapshot and
//!   recorded after the swap) or not at all in `net_won` until the next rebuild.
//! - It is not Redis-Cluster aware: a rebuild renames keys, which must share one node.
//! - No pagination beyond the top [`MAX_LIMIT`], no per-game boards.
//!
//! # Example
//! ```
//! # async fn example() -> Result<(), hearth_storage::leaderboard::LeaderboardError> {
//! use hearth_storage::leaderboard::{
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
#[cfg(feature = "redis")]
mod redis_store;
mod sql;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime, UtcOffset};
use uuid::Uuid;

use crate::{SettledRound, StorageError};

pub use in_process::InProcessLeaderboards;
#[cfg(feature = "redis")]
pub use redis_store::{RedisLeaderboards, RedisTarget};
pub use sql::connect_source;

/// The most entries [`Leaderboards::top`] returns; larger limits are lowered to it.
pub const MAX_LIMIT: u32 = 100;

/// What a board ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Board {
    /// The wallet balance (all time only).
    Balance,
    /// The largest single payout of a round in the period.
    BiggestWin,
    /// The sum of `win − bet` over the period's rounds.
    NetWon,
}

impl Board {
    /// Every board.
    pub const ALL: [Self; 3] = [Self::Balance, Self::BiggestWin, Self::NetWon];

    /// The name used in URLs and Redis keys: `balance`, `biggest_win`, `net_won`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Balance => "balance",
            Self::BiggestWin => "biggest_win",
            Self::NetWon => "net_won",
        }
    }

    /// The periods this board exists for.
    pub fn periods(self) -> &'static [Period] {
        match self {
            Self::Balance => &[Period::AllTime],
            Self::BiggestWin | Self::NetWon => &Period::ALL,
        }
    }

    /// Whether this board exists for `period`.
    pub fn has_period(self, period: Period) -> bool {
        self.periods().contains(&period)
    }

    /// `Ok` when this board exists for `period`.
    ///
    /// # Errors
    /// [`LeaderboardError::NoSuchPeriod`] otherwise (`balance` with `daily` or `weekly`).
    pub fn check_period(self, period: Period) -> Result<(), LeaderboardError> {
        if self.has_period(period) {
            Ok(())
        } else {
            Err(LeaderboardError::NoSuchPeriod)
        }
    }
}

impl fmt::Display for Board {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Board {
    type Err = UnknownName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|board| board.as_str() == name)
            .ok_or_else(|| UnknownName {
                kind: "board",
                name: name.to_owned(),
            })
    }
}

/// A span of time a board covers, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// The UTC calendar day.
    Daily,
    /// The ISO 8601 week (Monday to Sunday, UTC).
    Weekly,
    /// Everything.
    AllTime,
}

impl Period {
    /// Every period.
    pub const ALL: [Self; 3] = [Self::Daily, Self::Weekly, Self::AllTime];

    /// The name used in URLs and Redis keys: `daily`, `weekly`, `all_time`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::AllTime => "all_time",
        }
    }

    /// The id of the period holding `at`: `2026-11-22` (daily), `2026-W47` (weekly, ISO year
    /// and week), `all` (all time).
    ///
    /// Ids of one kind sort as their periods do.
    pub fn id(self, at: OffsetDateTime) -> String {
        let date = utc_date(at);
        match self {
            Self::Daily => format!(
                "{:04}-{:02}-{:02}",
                date.year(),
                u8::from(date.month()),
                date.day()
            ),
            Self::Weekly => {
                let (year, week, _) = date.to_iso_week_date();
                format!("{year:04}-W{week:02}")
            }
            Self::AllTime => "all".to_owned(),
        }
    }

    /// The half-open UTC window `[start, end)` of the period holding `at`; `None` for all time.
    pub fn window(self, at: OffsetDateTime) -> Option<(OffsetDateTime, OffsetDateTime)> {
        let date = utc_date(at);
        let (first, days) = match self {
            Self::Daily => (date, 1),
            Self::Weekly => {
                let back = i64::from(date.weekday().number_days_from_monday());
                (date.checked_sub(Duration::days(back))?, 7)
            }
            Self::AllTime => return None,
        };
        let start = first.midnight().assume_utc();
        Some((start, start.checked_add(Duration::days(days))?))
    }

    /// How long a Redis key of this period lives after its last write: two periods, so the
    /// previous period stays readable; `None` (no expiry) for all time.
    pub fn retention(self) -> Option<std::time::Duration> {
        const DAY: u64 = 24 * 60 * 60;
        match self {
            Self::Daily => Some(std::time::Duration::from_secs(2 * DAY)),
            Self::Weekly => Some(std::time::Duration::from_secs(14 * DAY)),
            Self::AllTime => None,
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Period {
    type Err = UnknownName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|period| period.as_str() == name)
            .ok_or_else(|| UnknownName {
                kind: "period",
                name: name.to_owned(),
            })
    }
}

fn utc_date(at: OffsetDateTime) -> Date {
    at.to_offset(UtcOffset::UTC).date()
}

/// A board or period name that does not exist (from [`Board::from_str`] or
/// [`Period::from_str`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {name:?}")]
pub struct UnknownName {
    /// `board` or `period`.
    pub kind: &'static str,
    /// The name given.
    pub name: String,
}

/// One line of a board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The position, from 1; equal scores get consecutive ranks in tie order (see the module
    /// docs).
    pub rank: u32,
    /// The player.
    pub user_id: Uuid,
    /// The player's username when last recorded (empty if the name is missing from the store).
    pub username: String,
    /// The board's score: coins.
    pub score: i64,
}

/// A settled round, as the boards need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettledScore {
    /// The player.
    pub user_id: Uuid,
    /// The player's username (stored for display).
    pub username: String,
    /// The stake.
    pub bet: i64,
    /// The payout (0 for a loss).
    pub win: i64,
    /// The wallet balance after the round.
    pub balance: i64,
    /// The round's time, which chooses the day and week it counts for: its `created_at`
    /// (what [`SettledScore::from_round`] takes), the time a rebuild filters on, so live and
    /// rebuilt boards agree even for a hand opened before midnight and settled after.
    pub at: OffsetDateTime,
}

impl SettledScore {
    /// The score of a round returned by [`crate::GameRepository::play_round`] or
    /// [`crate::GameRepository::act`]; `None` while the round is still open (record it once,
    /// when it settles, or its stake would count twice).
    pub fn from_round(
        user_id: Uuid,
        username: impl Into<String>,
        round: &SettledRound,
    ) -> Option<Self> {
        (round.status == "settled").then(|| Self {
            user_id,
            username: username.into(),
            bet: round.bet,
            win: round.win,
            balance: round.balance,
            at: round.created_at,
        })
    }
}

/// A player's score on a board, without a rank (the store ranks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scored {
    /// The player.
    pub user_id: Uuid,
    /// The player's username.
    pub username: String,
    /// The score.
    pub score: i64,
}

/// Boards rebuilt from the database, for [`Leaderboards::replace`].
///
/// Each `(board, period)` present replaces that board for the period holding `at`; boards
/// absent are left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The time the snapshot describes: chooses the day and week of the daily and weekly
    /// boards.
    pub at: OffsetDateTime,
    /// The full contents of each board covered, in any order.
    pub boards: BTreeMap<(Board, Period), Vec<Scored>>,
}

impl Snapshot {
    /// An empty snapshot for the periods holding `at`.
    pub fn new(at: OffsetDateTime) -> Self {
        Self {
            at,
            boards: BTreeMap::new(),
        }
    }

    /// The contents of one board, if covered.
    pub fn board(&self, board: Board, period: Period) -> Option<&[Scored]> {
        self.boards.get(&(board, period)).map(Vec::as_slice)
    }

    /// Entries across all boards.
    pub fn len(&self) -> usize {
        self.boards.values().map(Vec::len).sum()
    }

    /// Whether no board has an entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `Ok` when every board covered exists for its period.
    ///
    /// # Errors
    /// [`LeaderboardError::NoSuchPeriod`] for, e.g., a daily `balance` board.
    pub fn check(&self) -> Result<(), LeaderboardError> {
        self.boards
            .keys()
            .try_for_each(|(board, period)| board.check_period(*period))
    }
}

/// Why a leaderboard call failed.
///
/// Non-exhaustive because `LeaderboardError::Unavailable` exists only with the `redis`
/// feature.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaderboardError {
    /// The board does not exist for that period: `balance` is all-time only.
    #[error("this board has no such period (balance is all_time only)")]
    NoSuchPeriod,
    /// Redis could not be reached in time or refused a command.
    #[cfg(feature = "redis")]
    #[error("leaderboard store unavailable")]
    Unavailable(#[source] redis::RedisError),
    /// Reading the database for a rebuild failed.
    #[error("leaderboard rebuild could not read the database")]
    Storage(#[from] StorageError),
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
    /// `LeaderboardError::Unavailable` when Redis fails; the round is then not counted
    /// (Redis applies all of it or none of it) until the next rebuild.
    async fn record(&self, round: &SettledScore) -> Result<(), LeaderboardError>;

    /// The top `limit` (at most [`MAX_LIMIT`]; 0 gives an empty page) of a board for the
    /// period holding `at`, ranked from 1, ties by user id descending.
    ///
    /// # Errors
    /// [`LeaderboardError::NoSuchPeriod`] for `balance` with `daily` or `weekly`;
    /// `LeaderboardError::Unavailable` when Redis fails.
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
    /// board for a period it does not exist in; `LeaderboardError::Unavailable` when Redis
    /// fails (boards already swapped stay swapped; each board is all old or all new).
    async fn replace(&self, snapshot: Snapshot) -> Result<(), LeaderboardError>;

    /// `"in_process"` or `"redis"`.
    fn backend(&self) -> &'static str;
}

/// A database that can compute leaderboards, for [`rebuild`].
///
/// Implemented by [`crate::sqlite::SqliteDatabase`] and [`crate::postgres::PostgresDatabase`];
/// [`connect_source`] opens one from settings.
#[async_trait]
pub trait LeaderboardSource: Send + Sync {
    /// The top `limit` players of every board for the periods holding `at`, computed by the
    /// database from `wallets` and settled `game_rounds`, all read from one snapshot of the
    /// database. Each list is ordered as the boards order it (score, then user id, both
    /// descending).
    ///
    /// # Errors
    /// [`StorageError::Unavailable`] or [`StorageError::Other`] when a query fails.
    async fn leaderboard_snapshot(
        &self,
        at: OffsetDateTime,
        limit: u32,
    ) -> Result<Snapshot, StorageError>;
}

/// Rebuilds `boards` from the database: reads [`LeaderboardSource::leaderboard_snapshot`] for
/// the periods holding `at` and swaps it in with [`Leaderboards::replace`]. Returns the number
/// of entries written across all boards.
///
/// # Errors
/// [`LeaderboardError::Storage`] when the database cannot be read (nothing changes);
/// `LeaderboardError::Unavailable` when Redis fails.
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

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn period_ids_and_windows_are_utc_days_and_iso_weeks() {
        let sunday = datetime!(2026-11-22 23:59:59.999 UTC);
        assert_eq!(Period::Daily.id(sunday), "2026-11-22");
        assert_eq!(Period::Weekly.id(sunday), "2026-W47");
        assert_eq!(Period::AllTime.id(sunday), "all");
        assert_eq!(
            Period::Daily.window(sunday),
            Some((
                datetime!(2026-11-22 00:00 UTC),
                datetime!(2026-11-23 00:00 UTC)
            ))
        );
        assert_eq!(
            Period::Weekly.window(sunday),
            Some((
                datetime!(2026-11-16 00:00 UTC),
                datetime!(2026-11-23 00:00 UTC)
            ))
        );
        assert_eq!(Period::AllTime.window(sunday), None);
        // The next Monday starts a new week.
        assert_eq!(
            Period::Weekly.id(datetime!(2026-11-23 00:00 UTC)),
            "2026-W48"
        );
        // An offset is converted to UTC first: 01:00 at +02:00 is the previous UTC day.
        assert_eq!(
            Period::Daily.id(datetime!(2026-11-23 01:00 +02:00)),
            "2026-11-22"
        );
        // ISO years: 1 January 2027 (a Friday) belongs to week 53 of 2026.
        assert_eq!(
            Period::Weekly.id(datetime!(2027-01-01 12:00 UTC)),
            "2026-W53"
        );
        assert_eq!(
            Period::Weekly.window(datetime!(2027-01-01 12:00 UTC)),
            Some((
                datetime!(2026-12-28 00:00 UTC),
                datetime!(2027-01-04 00:00 UTC)
            ))
        );
    }

    #[test]
    fn only_settled_rounds_score() {
        let mut round = SettledRound {
            round_id: Uuid::now_v7(),
            status: "open".into(),
            game: "blackjack".into(),
            bet: 20,
            win: 0,
            balance: 980,
            detail: serde_json::json!({}),
            server_seed_hash: String::new(),
            client_seed: String::new(),
            nonce: 0,
            created_at: datetime!(2026-11-22 23:59 UTC),
        };
        let user = Uuid::now_v7();
        assert_eq!(SettledScore::from_round(user, "ann", &round), None);
        round.status = "settled".into();
        round.win = 40;
        let score = SettledScore::from_round(user, "ann", &round).unwrap();
        assert_eq!(
            (score.bet, score.win, score.balance, score.at),
            (20, 40, 980, round.created_at)
        );
    }

    #[test]
    fn names_round_trip_and_balance_is_all_time_only() {
        for board in Board::ALL {
            assert_eq!(board.as_str().parse::<Board>(), Ok(board));
            assert_eq!(
                serde_json::to_value(board).unwrap(),
                serde_json::json!(board.as_str())
            );
        }
        for period in Period::ALL {
            assert_eq!(period.as_str().parse::<Period>(), Ok(period));
            assert_eq!(
                serde_json::from_value::<Period>(serde_json::json!(period.as_str())).unwrap(),
                period
            );
        }
        assert!("alltime".parse::<Period>().is_err());
        assert_eq!(
            "richest".parse::<Board>().unwrap_err().to_string(),
            "unknown board \"richest\""
        );
        assert!(Board::Balance.has_period(Period::AllTime));
        assert!(matches!(
            Board::Balance.check_period(Period::Daily),
            Err(LeaderboardError::NoSuchPeriod)
        ));
        assert!(Board::NetWon.check_period(Period::Weekly).is_ok());
    }
}
