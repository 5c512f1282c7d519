//! Leaderboards: the top players by balance, by biggest win and by net winnings, per UTC day,
//! ISO week and all time.
//!
//! This module holds the rules: which boards exist, for which periods, how a period is
//! identified and how entries are ordered. It performs no I/O. The stores that keep boards
//! (in process or in Redis) live in `hearth-app`, and the SQL that recomputes them from the
//! database in `hearth-storage`; both speak these types.
//!
//! # Boards
//! | [`Board`] | score | periods |
//! |---|---|---|
//! | `balance` | the wallet balance after the player's latest round | `all_time` only; any other period is [`NoSuchPeriod`] |
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

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime, UtcOffset};
use uuid::Uuid;

/// The most entries a page of a board holds; larger limits are lowered to it.
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
    /// [`NoSuchPeriod`] otherwise (`balance` with `daily` or `weekly`).
    pub fn check_period(self, period: Period) -> Result<(), NoSuchPeriod> {
        if self.has_period(period) {
            Ok(())
        } else {
            Err(NoSuchPeriod)
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

/// The board does not exist for that period: `balance` is all-time only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this board has no such period (balance is all_time only)")]
pub struct NoSuchPeriod;

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
    /// The round's time, which chooses the day and week it counts for: its `created_at`, the
    /// time a rebuild filters on, so live and rebuilt boards agree even for a hand opened
    /// before midnight and settled after.
    pub at: OffsetDateTime,
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

/// Boards rebuilt from the database, to replace a store's boards whole.
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
    /// [`NoSuchPeriod`] for, e.g., a daily `balance` board.
    pub fn check(&self) -> Result<(), NoSuchPeriod> {
        self.boards
            .keys()
            .try_for_each(|(board, period)| board.check_period(*period))
    }
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
            Err(NoSuchPeriod)
        ));
        assert!(Board::NetWon.check_period(Period::Weekly).is_ok());
    }
}
