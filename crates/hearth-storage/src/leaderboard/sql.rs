//! [`LeaderboardSource`] for both databases: every board computed by SQL (`GROUP BY`,
//! `ORDER BY`, `LIMIT`) over `wallets` and settled `game_rounds`, in one read transaction.
//!
//! The windowed statements filter on `status = 'settled'` and a `created_at` range, which a
//! BRIN index on `created_at` serves on PostgreSQL (rounds are appended in time order) and the
//! partial index `game_rounds_settled_win_idx` on SQLite; the top `limit` is taken before
//! joining `users` for the names. Ties are broken by user id descending, as the boards break
//! them (UUIDs compare by their bytes in both databases: PostgreSQL's `uuid` and SQLite's BLOB).

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Board, LeaderboardSource, Period, Scored, Snapshot};
use crate::postgres::PostgresDatabase;
use crate::sqlite::SqliteDatabase;
use crate::{DatabaseSettings, StorageError};

const SQLITE_BALANCE: &str = "SELECT w.user_id, u.username, w.balance AS score \
     FROM wallets w JOIN users u ON u.id = w.user_id \
     ORDER BY w.balance DESC, w.user_id DESC LIMIT ?1";
const SQLITE_BIGGEST_WIN_IN: &str = "SELECT s.user_id, u.username, s.score FROM ( \
         SELECT user_id, MAX(win) AS score FROM game_rounds \
         WHERE status = 'settled' AND win > 0 AND created_at >= ?2 AND created_at < ?3 \
         GROUP BY user_id ORDER BY score DESC, user_id DESC LIMIT ?1) s \
     JOIN users u ON u.id = s.user_id ORDER BY s.score DESC, s.user_id DESC";
const SQLITE_BIGGEST_WIN_ALL: &str = "SELECT s.user_id, u.username, s.score FROM ( \
         SELECT user_id, MAX(win) AS score FROM game_rounds \
         WHERE status = 'settled' AND win > 0 \
         GROUP BY user_id ORDER BY score DESC, user_id DESC LIMIT ?1) s \
     JOIN users u ON u.id = s.user_id ORDER BY s.score DESC, s.user_id DESC";
const SQLITE_NET_WON_IN: &str = "SELECT s.user_id, u.username, s.score FROM ( \
         SELECT user_id, SUM(win - bet) AS score FROM game_rounds \
         WHERE status = 'settled' AND created_at >= ?2 AND created_at < ?3 \
         GROUP BY user_id ORDER BY score DESC, user_id DESC LIMIT ?1) s \
     JOIN users u ON u.id = s.user_id ORDER BY s.score DESC, s.user_id DESC";
const SQLITE_NET_WON_ALL: &str = "SELECT s.user_id, u.username, s.score FROM ( \
         SELECT user_id, SUM(win - bet) AS score FROM game_rounds \
         WHERE status = 'settled' \
         GROUP BY user_id ORDER BY score DESC, user_id DESC LIMIT ?1) s \
     JOIN users u ON u.id = s.user_id ORDER BY s.score DESC, s.user_id DESC";

const PG_BALANCE: &str = "SELECT w.user_id, u.username, w.balance AS score \
     FROM wallets w JOIN users u ON u.id = w.user_id \
     ORDER BY w.balance DESC, w.user_id DESC LIMIT $1";
const PG_BIGGEST_WIN_IN: &str = "SELECT s.user_id, u.username, s.score FROM ( \
         SELECT user_id, MAX(win) AS score FROM game_rounds \
         WHERE status = 'settled' AND win > 0 AND created_at >= $2 AND created_at < $3 \
         GROUP BY user_id ORDER BY score DESC, user_id DESC LIMIT $1) s \
     JOIN users u ON u.id = s.user_id ORDER BY s.score DESC, s.user_id DESC";
const PG_BIGGEST_WIN_ALL: &str = "SELECT s.user_id, u.username, s.score FROM ( \
         SELECT user_id, MAX(win) AS score FROM game_rounds \
         WHERE status = 'settled' AND win > 0 \
         GROUP BY user_id ORDER BY score DESC, user_id DESC LIMIT $1) s \
     JOIN users u ON u.id = s.user_id ORDER BY s.score DESC, s.user_id DESC";
const PG_NET_WON_IN: &str = "SELECT s.user_id, u.username, s.score FROM ( \
         SELECT user_id, SUM(win - bet)::BIGINT AS score FROM game_rounds \
         WHERE status = 'settled' AND created_at >= $2 AND created_at < $3 \
         GROUP BY user_id ORDER BY score DESC, user_id DESC LIMIT $1) s \
     JOIN users u ON u.id = s.user_id ORDER BY s.score DESC, s.user_id DESC";
const PG_NET_WON_ALL: &str = "SELECT s.user_id, u.username, s.score FROM ( \
         SELECT user_id, SUM(win - bet)::BIGINT AS score FROM game_rounds \
         WHERE status = 'settled' \
         GROUP BY user_id ORDER BY score DESC, user_id DESC LIMIT $1) s \
     JOIN users u ON u.id = s.user_id ORDER BY s.score DESC, s.user_id DESC";

/// The per-round boards and their statements: `(board, within a window, all time)`.
const SQLITE_ROUND_BOARDS: [(Board, &str, &str); 2] = [
    (
        Board::BiggestWin,
        SQLITE_BIGGEST_WIN_IN,
        SQLITE_BIGGEST_WIN_ALL,
    ),
    (Board::NetWon, SQLITE_NET_WON_IN, SQLITE_NET_WON_ALL),
];
const PG_ROUND_BOARDS: [(Board, &str, &str); 2] = [
    (Board::BiggestWin, PG_BIGGEST_WIN_IN, PG_BIGGEST_WIN_ALL),
    (Board::NetWon, PG_NET_WON_IN, PG_NET_WON_ALL),
];

#[derive(sqlx::FromRow)]
struct ScoredRow {
    user_id: Uuid,
    username: String,
    score: i64,
}

fn put(snapshot: &mut Snapshot, board: Board, period: Period, rows: Vec<ScoredRow>) {
    let rows = rows
        .into_iter()
        .map(|row| Scored {
            user_id: row.user_id,
            username: row.username,
            score: row.score,
        })
        .collect();
    snapshot.boards.insert((board, period), rows);
}

/// Opens the database the settings name as a [`LeaderboardSource`] (a pool of its own), for
/// a worker that holds the database only as `Arc<dyn Database>`.
///
/// # Errors
/// As [`crate::connect`]: [`StorageError::UnsupportedUrl`] for another scheme,
/// [`StorageError::Unavailable`] when the server cannot be reached.
pub async fn connect_source(
    settings: &DatabaseSettings,
) -> Result<Arc<dyn LeaderboardSource>, StorageError> {
    let url = secrecy::ExposeSecret::expose_secret(&settings.url);
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteDatabase::connect(settings).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PostgresDatabase::connect(settings).await?))
    } else {
        Err(StorageError::UnsupportedUrl {
            scheme: settings.scheme().to_owned(),
        })
    }
}

#[async_trait]
impl LeaderboardSource for SqliteDatabase {
    #[tracing::instrument(skip_all, err)]
    async fn leaderboard_snapshot(
        &self,
        at: OffsetDateTime,
        limit: u32,
    ) -> Result<Snapshot, StorageError> {
        let limit = i64::from(limit);
        let mut snapshot = Snapshot::new(at);
        // One read transaction (a WAL snapshot): every board describes the same moment.
        let mut tx = self.pool().begin().await?;
        let rows = sqlx::query_as(SQLITE_BALANCE)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        put(&mut snapshot, Board::Balance, Period::AllTime, rows);
        for (board, within, all_time) in SQLITE_ROUND_BOARDS {
            for period in Period::ALL {
                let rows = match period.window(at) {
                    // Timestamps are stored as RFC 3339 text in UTC (`…T13:04:05.5Z`), which
                    // sorts as time does; the bounds are bound as bare dates (`2026-11-22`),
                    // which sort before every instant of their day. (A bound of
                    // `2026-11-22T00:00:00Z` would sort after `…T00:00:00.5Z`.)
                    Some((start, end)) => {
                        sqlx::query_as(within)
                            .bind(limit)
                            .bind(Period::Daily.id(start))
                            .bind(Period::Daily.id(end))
                            .fetch_all(&mut *tx)
                            .await?
                    }
                    None => {
                        sqlx::query_as(all_time)
                            .bind(limit)
                            .fetch_all(&mut *tx)
                            .await?
                    }
                };
                put(&mut snapshot, board, period, rows);
            }
        }
        tx.commit().await?;
        Ok(snapshot)
    }
}

#[async_trait]
impl LeaderboardSource for PostgresDatabase {
    #[tracing::instrument(skip_all, err)]
    async fn leaderboard_snapshot(
        &self,
        at: OffsetDateTime,
        limit: u32,
    ) -> Result<Snapshot, StorageError> {
        let limit = i64::from(limit);
        let mut snapshot = Snapshot::new(at);
        // REPEATABLE READ: every board comes from one snapshot.
        let mut tx = self
            .pool()
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let rows = sqlx::query_as(PG_BALANCE)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        put(&mut snapshot, Board::Balance, Period::AllTime, rows);
        for (board, within, all_time) in PG_ROUND_BOARDS {
            for period in Period::ALL {
                let rows = match period.window(at) {
                    Some((start, end)) => {
                        sqlx::query_as(within)
                            .bind(limit)
                            .bind(start)
                            .bind(end)
                            .fetch_all(&mut *tx)
                            .await?
                    }
                    None => {
                        sqlx::query_as(all_time)
                            .bind(limit)
                            .fetch_all(&mut *tx)
                            .await?
                    }
                };
                put(&mut snapshot, board, period, rows);
            }
        }
        tx.commit().await?;
        Ok(snapshot)
    }
}
