//! The life simulation's saved lives and the lease that lets one gateway at a time drive each
//! of them, behind [`LifeRepository`].
//!
//! One life per user, in the `lives` table. The engine's state is stored as its versioned JSON
//! (`hearth_life::Life::to_json`); this crate never reads it. The statements are written once,
//! in the dialect both backends accept (`$N` parameters, `ON CONFLICT … DO UPDATE … WHERE`,
//! `RETURNING`), and a macro implements the trait for both.
//!
//! # The lease
//!
//! `owner` is the id of the process driving the life and `lease_until` (Unix milliseconds)
//! when that claim lapses. A process takes a life that has no owner, whose lease has lapsed,
//! or that it already owns ([`LifeRepository::claim_life`]); every later write names the
//! owner, so a process that lost its lease (it stalled, another took over) writes nothing and
//! learns it from the answer. Times come from the caller, so tests choose them.

use async_trait::async_trait;
use uuid::Uuid;

use crate::StorageError;

/// The constraint a [`LifeRepository::create_life`] refusal names: another process holds the
/// life's lease.
pub const LEASED: &str = "life_leased";

/// Whether a life ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LifeStatus {
    /// Ticking while a process drives it.
    Running,
    /// Stopped by the player until `life.resume`.
    Paused,
    /// Over (the engine ended it, or the player stopped it).
    Ended,
}

impl LifeStatus {
    /// `running`, `paused` or `ended`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Ended => "ended",
        }
    }

    fn parse(text: &str) -> Result<Self, StorageError> {
        match text {
            "running" => Ok(Self::Running),
            "paused" => Ok(Self::Paused),
            "ended" => Ok(Self::Ended),
            other => Err(StorageError::Corrupt(format!(
                "unknown life status {other:?}"
            ))),
        }
    }
}

/// A saved life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifeRecord {
    /// Whose life.
    pub user_id: Uuid,
    /// 1 for the first life, one more for each restart.
    pub generation: u32,
    /// Whether it ticks.
    pub status: LifeStatus,
    /// Its speed, 1 to 5,000.
    pub ticks_per_minute: u32,
    /// Its age in days when saved.
    pub day: u32,
    /// The engine's versioned JSON.
    pub state: String,
    /// The process driving it, if any.
    pub owner: Option<Uuid>,
    /// When the owner's lease lapses, Unix milliseconds.
    pub lease_until: i64,
    /// When the life was created (or last restarted), Unix milliseconds.
    pub created_at: i64,
    /// When it was last saved, Unix milliseconds.
    pub updated_at: i64,
}

/// What a save writes. `owner` must hold the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifeSave {
    /// Whose life.
    pub user_id: Uuid,
    /// The process that holds the lease and writes.
    pub owner: Uuid,
    /// The status.
    pub status: LifeStatus,
    /// The speed.
    pub ticks_per_minute: u32,
    /// The age in days.
    pub day: u32,
    /// The engine's versioned JSON.
    pub state: String,
    /// `Some(t)`: keep the lease until `t` (Unix ms); `None`: release it with this save.
    pub lease_until: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct LifeRow {
    user_id: Uuid,
    generation: i64,
    status: String,
    ticks_per_minute: i64,
    day: i64,
    state: String,
    owner: Option<Uuid>,
    lease_until: i64,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<LifeRow> for LifeRecord {
    type Error = StorageError;

    fn try_from(row: LifeRow) -> Result<Self, StorageError> {
        let number = |value: i64, column: &str| {
            u32::try_from(value)
                .map_err(|_| StorageError::Corrupt(format!("lives.{column} out of range")))
        };
        Ok(Self {
            user_id: row.user_id,
            generation: number(row.generation, "generation")?,
            status: LifeStatus::parse(&row.status)?,
            ticks_per_minute: number(row.ticks_per_minute, "ticks_per_minute")?,
            day: number(row.day, "day")?,
            state: row.state,
            owner: row.owner,
            lease_until: row.lease_until,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// Saved lives and their leases.
#[async_trait]
pub trait LifeRepository: Send + Sync {
    /// The user's life, if they have one.
    ///
    /// # Errors
    /// When the query fails.
    async fn life(&self, user: Uuid) -> Result<Option<LifeRecord>, StorageError>;

    /// Writes a new life for `save.user_id` (the first, or a restart that replaces the old
    /// one, counting one more generation), with the lease held by `save.owner` until
    /// `save.lease_until` (`None`: no lease). `now` is Unix milliseconds.
    ///
    /// # Errors
    /// [`StorageError::Conflict`] naming [`LEASED`] when another process holds a lease that
    /// has not lapsed at `now` (nothing is written then).
    async fn create_life(&self, save: LifeSave, now: i64) -> Result<LifeRecord, StorageError>;

    /// Takes the lease on the user's life until `lease_until` when it has no owner, its lease
    /// lapsed before `now`, or `owner` holds it already; returns the life then. `None` when
    /// there is no life, or another process holds a lease that has not lapsed.
    ///
    /// # Errors
    /// When the query fails.
    async fn claim_life(
        &self,
        user: Uuid,
        owner: Uuid,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<LifeRecord>, StorageError>;

    /// Saves a life its owner drives (and renews or releases the lease with it). `false`
    /// when `save.owner` no longer holds the lease: another process took the life over, and
    /// nothing is written.
    ///
    /// # Errors
    /// When the query fails.
    async fn save_life(&self, save: LifeSave, now: i64) -> Result<bool, StorageError>;

    /// Renews every lease `owner` holds until `lease_until`, in one statement; returns the
    /// users whose lives it still holds (a life missing from the answer was taken over).
    ///
    /// # Errors
    /// When the query fails.
    async fn renew_life_leases(
        &self,
        owner: Uuid,
        lease_until: i64,
    ) -> Result<Vec<Uuid>, StorageError>;
}

/// The columns every read returns, as a literal for `concat!`.
macro_rules! columns {
    () => {
        "user_id, generation, status, ticks_per_minute, day, state, owner, lease_until, \
         created_at, updated_at"
    };
}

mod sql {
    pub(super) const LIFE: &str = concat!("SELECT ", columns!(), " FROM lives WHERE user_id = $1");

    /// `$1` user, `$2` status, `$3` speed, `$4` day, `$5` state, `$6` owner, `$7` lease,
    /// `$8` now. A restart replaces the row only when no other live lease holds it.
    pub(super) const CREATE: &str = concat!(
        "INSERT INTO lives (user_id, generation, status, ticks_per_minute, day, state, owner, \
         lease_until, created_at, updated_at) VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8, $8) \
         ON CONFLICT (user_id) DO UPDATE SET generation = lives.generation + 1, \
         status = excluded.status, ticks_per_minute = excluded.ticks_per_minute, \
         day = excluded.day, state = excluded.state, owner = excluded.owner, \
         lease_until = excluded.lease_until, created_at = excluded.created_at, \
         updated_at = excluded.updated_at \
         WHERE lives.owner IS NULL OR lives.owner = excluded.owner OR lives.lease_until < $8 \
         RETURNING ",
        columns!()
    );

    /// `$1` user, `$2` owner, `$3` now, `$4` lease.
    pub(super) const CLAIM: &str = concat!(
        "UPDATE lives SET owner = $2, lease_until = $4 WHERE user_id = $1 \
         AND (owner IS NULL OR owner = $2 OR lease_until < $3) RETURNING ",
        columns!()
    );

    /// `$1` user, `$2` owner, `$3` status, `$4` speed, `$5` day, `$6` state, `$7` new owner
    /// (NULL to release), `$8` lease, `$9` now.
    pub(super) const SAVE: &str = "UPDATE lives SET status = $3, ticks_per_minute = $4, \
         day = $5, state = $6, owner = $7, lease_until = $8, updated_at = $9 \
         WHERE user_id = $1 AND owner = $2";

    pub(super) const RENEW: &str =
        "UPDATE lives SET lease_until = $2 WHERE owner = $1 RETURNING user_id";
}

/// Implements [`LifeRepository`] for a backend; the statements are the same on both.
macro_rules! life_repository {
    ($backend:ty) => {
        #[async_trait::async_trait]
        impl $crate::life::LifeRepository for $backend {
            #[tracing::instrument(skip_all, fields(user_id = %user), err)]
            async fn life(
                &self,
                user: uuid::Uuid,
            ) -> Result<Option<$crate::life::LifeRecord>, $crate::StorageError> {
                let row: Option<LifeRow> = sqlx::query_as(sql::LIFE)
                    .bind(user)
                    .fetch_optional(self.pool())
                    .await?;
                row.map(TryInto::try_into).transpose()
            }

            #[tracing::instrument(skip_all, fields(user_id = %save.user_id), err)]
            async fn create_life(
                &self,
                save: $crate::life::LifeSave,
                now: i64,
            ) -> Result<$crate::life::LifeRecord, $crate::StorageError> {
                let mut write = self.single_write().await?;
                let row: Option<LifeRow> = sqlx::query_as(sql::CREATE)
                    .bind(save.user_id)
                    .bind(save.status.as_str())
                    .bind(i64::from(save.ticks_per_minute))
                    .bind(i64::from(save.day))
                    .bind(&save.state)
                    .bind(save.lease_until.map(|_| save.owner))
                    .bind(save.lease_until.unwrap_or(0))
                    .bind(now)
                    .fetch_optional(&mut *write)
                    .await?;
                write.commit().await?;
                match row {
                    Some(row) => row.try_into(),
                    None => Err($crate::StorageError::Conflict {
                        constraint: LEASED.to_owned(),
                    }),
                }
            }

            #[tracing::instrument(skip_all, fields(user_id = %user), err)]
            async fn claim_life(
                &self,
                user: uuid::Uuid,
                owner: uuid::Uuid,
                now: i64,
                lease_until: i64,
            ) -> Result<Option<$crate::life::LifeRecord>, $crate::StorageError> {
                let mut write = self.single_write().await?;
                let row: Option<LifeRow> = sqlx::query_as(sql::CLAIM)
                    .bind(user)
                    .bind(owner)
                    .bind(now)
                    .bind(lease_until)
                    .fetch_optional(&mut *write)
                    .await?;
                write.commit().await?;
                row.map(TryInto::try_into).transpose()
            }

            #[tracing::instrument(skip_all, fields(user_id = %save.user_id), err)]
            async fn save_life(
                &self,
                save: $crate::life::LifeSave,
                now: i64,
            ) -> Result<bool, $crate::StorageError> {
                let mut write = self.single_write().await?;
                let done = sqlx::query(sql::SAVE)
                    .bind(save.user_id)
                    .bind(save.owner)
                    .bind(save.status.as_str())
                    .bind(i64::from(save.ticks_per_minute))
                    .bind(i64::from(save.day))
                    .bind(&save.state)
                    .bind(save.lease_until.map(|_| save.owner))
                    .bind(save.lease_until.unwrap_or(0))
                    .bind(now)
                    .execute(&mut *write)
                    .await?;
                write.commit().await?;
                Ok(done.rows_affected() > 0)
            }

            #[tracing::instrument(skip_all, err)]
            async fn renew_life_leases(
                &self,
                owner: uuid::Uuid,
                lease_until: i64,
            ) -> Result<Vec<uuid::Uuid>, $crate::StorageError> {
                let mut write = self.single_write().await?;
                let renewed = sqlx::query_scalar(sql::RENEW)
                    .bind(owner)
                    .bind(lease_until)
                    .fetch_all(&mut *write)
                    .await?;
                write.commit().await?;
                Ok(renewed)
            }
        }
    };
}

life_repository!(crate::sqlite::SqliteDatabase);
life_repository!(crate::postgres::PostgresDatabase);
