//! Leaderboards as the database computes them, for rebuilds.
//!
//! The rules (which boards exist, their periods, how entries are ordered) are
//! `hearth_domain::leaderboard`; the stores that serve boards between rebuilds live in
//! `hearth-app`. This module holds the one part that needs SQL: [`LeaderboardSource`], which
//! computes every board from `wallets` and settled `game_rounds` in one snapshot, implemented
//! by both databases.

mod sql;

use async_trait::async_trait;
pub use hearth_domain::leaderboard::{Board, Period, Scored, Snapshot};
use time::OffsetDateTime;

use crate::StorageError;

pub use sql::connect_source;

/// A database that can compute leaderboards, for rebuilding a store of boards.
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
