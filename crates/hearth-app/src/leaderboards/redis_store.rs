//! The Redis store: one sorted set per board and period, shared by every gateway.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use hearth_limits::RedisTarget;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Pipeline, RedisResult};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    Board, Entry, LeaderboardError, Leaderboards, MAX_LIMIT, Period, SettledScore, Snapshot,
};

/// How long a rebuild's staged boards live if the rebuild dies before renaming them.
const STAGING_TTL_SECS: u64 = 300;
/// Deadline of one connection attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Deadline of one call (a rebuild's staging pipeline included).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Leaderboards in Redis sorted sets (keys in the module docs). Cheap to clone.
///
/// `record` is one round trip (a `MULTI` pipeline), `top` two (`ZREVRANGE … WITHSCORES`, then
/// `HMGET` of the names), `replace` two (stage the new boards under temporary keys, then
/// `RENAME` them over the live ones in one `MULTI`). Needs Redis 6.2 or later (`ZADD … GT`).
/// Each call has a 2-second deadline; the connection reconnects on its own.
#[derive(Clone)]
pub struct RedisLeaderboards {
    conn: ConnectionManager,
    prefix: String,
}

impl fmt::Debug for RedisLeaderboards {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLeaderboards")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisLeaderboards {
    /// Boards under keys starting with `prefix` (e.g. `hearth:`; tests use a random one).
    ///
    /// Connects lazily: an unreachable server is not an error here but on the first call.
    /// Must be called inside a Tokio runtime.
    ///
    /// # Errors
    /// When the URL is malformed.
    pub fn new(target: impl Into<RedisTarget>, prefix: impl Into<String>) -> RedisResult<Self> {
        let conn = match target.into() {
            RedisTarget::Url(url) => manager(Client::open(url)?)?,
            RedisTarget::Client(client) => manager(client)?,
            RedisTarget::Manager(manager) => manager,
        };
        Ok(Self {
            conn,
            prefix: prefix.into(),
        })
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The sorted set holding `board` for the period `period_id` (see [`Period::id`]):
    /// `{prefix}lb:{board}:{period}:{period_id}`.
    pub fn board_key(&self, board: Board, period: Period, period_id: &str) -> String {
        format!("{}lb:{board}:{period}:{period_id}", self.prefix)
    }

    /// The hash from user id to username: `{prefix}lb:names`.
    pub fn names_key(&self) -> String {
        format!("{}lb:names", self.prefix)
    }
}

fn manager(client: Client) -> RedisResult<ConnectionManager> {
    // Few, short reconnect attempts: a leaderboard call must not queue behind a long backoff.
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(200));
    ConnectionManager::new_lazy_with_config(client, config)
}

/// Appends `EXPIRE key <two periods>` (or `PERSIST key` for all time when `persist`).
fn expire(pipe: &mut Pipeline, key: &str, period: Period, persist: bool) {
    match period.retention() {
        Some(ttl) => {
            pipe.cmd("EXPIRE").arg(key).arg(ttl.as_secs()).ignore();
        }
        None if persist => {
            pipe.cmd("PERSIST").arg(key).ignore();
        }
        None => {}
    }
}

#[async_trait]
impl Leaderboards for RedisLeaderboards {
    async fn record(&self, round: &SettledScore) -> Result<(), LeaderboardError> {
        let member = round.user_id.to_string();
        let net = round.win.saturating_sub(round.bet);
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("HSET")
            .arg(self.names_key())
            .arg(&member)
            .arg(&round.username)
            .ignore();
        let balance = self.board_key(
            Board::Balance,
            Period::AllTime,
            &Period::AllTime.id(round.at),
        );
        pipe.cmd("ZADD")
            .arg(balance)
            .arg(round.balance)
            .arg(&member)
            .ignore();
        for period in Period::ALL {
            let id = period.id(round.at);
            if round.win > 0 {
                let key = self.board_key(Board::BiggestWin, period, &id);
                pipe.cmd("ZADD")
                    .arg(&key)
                    .arg("GT")
                    .arg(round.win)
                    .arg(&member)
                    .ignore();
                expire(&mut pipe, &key, period, false);
            }
            let key = self.board_key(Board::NetWon, period, &id);
            pipe.cmd("ZINCRBY").arg(&key).arg(net).arg(&member).ignore();
            expire(&mut pipe, &key, period, false);
        }
        pipe.query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(LeaderboardError::Unavailable)
    }

    async fn top(
        &self,
        board: Board,
        period: Period,
        at: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Entry>, LeaderboardError> {
        board.check_period(period)?;
        let limit = limit.min(MAX_LIMIT);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let page: Vec<(String, f64)> = redis::cmd("ZREVRANGE")
            .arg(self.board_key(board, period, &period.id(at)))
            .arg(0)
            .arg(limit - 1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .map_err(LeaderboardError::Unavailable)?;
        if page.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.names_key())
            .arg(page.iter().map(|(member, _)| member).collect::<Vec<_>>())
            .query_async(&mut conn)
            .await
            .map_err(LeaderboardError::Unavailable)?;
        let rows = page
            .into_iter()
            .zip(names)
            .filter_map(|((member, score), name)| match Uuid::parse_str(&member) {
                Ok(user_id) => Some((user_id, score, name)),
                Err(_) => {
                    // Only this store writes these keys; skip rather than fail the page.
                    tracing::warn!(%member, "leaderboard member is not a user id");
                    None
                }
            });
        Ok((1..)
            .zip(rows)
            .map(|(rank, (user_id, score, name))| Entry {
                rank,
                user_id,
                username: name.unwrap_or_default(),
                // Scores are whole numbers; Redis stores them as doubles.
                score: score.round() as i64,
            })
            .collect())
    }

    async fn replace(&self, snapshot: Snapshot) -> Result<(), LeaderboardError> {
        snapshot.check()?;
        if snapshot.boards.is_empty() {
            return Ok(());
        }
        let token = Uuid::new_v4().simple();
        // Stage: every new board under a temporary key, and the names. Not atomic, not seen.
        let mut stage = redis::pipe();
        // Swap: one MULTI renaming every staged board over its live key.
        let mut swap = redis::pipe();
        swap.atomic();
        let mut names: HashMap<Uuid, &str> = HashMap::new();
        for ((board, period), rows) in &snapshot.boards {
            let id = period.id(snapshot.at);
            let key = self.board_key(*board, *period, &id);
            if rows.is_empty() {
                swap.cmd("DEL").arg(&key).ignore();
                continue;
            }
            let staged = format!("{}lb:tmp:{token}:{board}:{period}:{id}", self.prefix);
            stage.cmd("ZADD").arg(&staged);
            for row in rows {
                stage.arg(row.score).arg(row.user_id.to_string());
                names.insert(row.user_id, &row.username);
            }
            stage.ignore();
            stage
                .cmd("EXPIRE")
                .arg(&staged)
                .arg(STAGING_TTL_SECS)
                .ignore();
            // RENAME carries the staging TTL over: set the live key's own right after.
            swap.cmd("RENAME").arg(&staged).arg(&key).ignore();
            expire(&mut swap, &key, *period, true);
        }
        if !names.is_empty() {
            stage.cmd("HSET").arg(self.names_key());
            for (user_id, name) in names {
                stage.arg(user_id.to_string()).arg(name);
            }
            stage.ignore();
        }
        let mut conn = self.conn.clone();
        if !stage.is_empty() {
            stage
                .query_async::<()>(&mut conn)
                .await
                .map_err(LeaderboardError::Unavailable)?;
        }
        swap.query_async::<()>(&mut conn)
            .await
            .map_err(LeaderboardError::Unavailable)
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
