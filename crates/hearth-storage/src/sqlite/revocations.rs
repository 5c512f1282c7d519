//! The record of revocations on SQLite: one row per revoked token, session, user and used
//! refresh token, each with the moment it stops mattering.

use async_trait::async_trait;
use uuid::Uuid;

use super::SqliteDatabase;
use crate::rows::{RevocationRow, epoch_column, revocation_columns};
use crate::{Revocation, RevocationRepository, StorageError};

#[async_trait]
impl RevocationRepository for SqliteDatabase {
    #[tracing::instrument(skip_all, err)]
    async fn record_revocation(&self, revocation: Revocation) -> Result<(), StorageError> {
        let (kind, id, cutoff_ms, expires_at) = revocation_columns(revocation);
        // A second revocation of the same thing only ever widens it.
        sqlx::query(
            "INSERT INTO revocations (kind, id, cutoff_ms, expires_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (kind, id) DO UPDATE SET \
             cutoff_ms = MAX(revocations.cutoff_ms, excluded.cutoff_ms), \
             expires_at = MAX(revocations.expires_at, excluded.expires_at)",
        )
        .bind(kind)
        .bind(id)
        .bind(cutoff_ms)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, err)]
    async fn active_revocations(&self, now: u64) -> Result<Vec<Revocation>, StorageError> {
        let rows: Vec<RevocationRow> = sqlx::query_as(
            "SELECT kind, id, cutoff_ms, expires_at FROM revocations \
             WHERE expires_at > ?1 AND kind <> 'used'",
        )
        .bind(epoch_column(now))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(RevocationRow::into_revocation)
            .collect()
    }

    #[tracing::instrument(skip_all, err)]
    async fn consume_refresh(&self, jti: Uuid, until: u64) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "INSERT INTO revocations (kind, id, cutoff_ms, expires_at) VALUES ('used', ?1, NULL, ?2) \
             ON CONFLICT (kind, id) DO NOTHING",
        )
        .bind(jti)
        .bind(epoch_column(until))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, err)]
    async fn purge_revocations(&self, now: u64) -> Result<u64, StorageError> {
        let done = sqlx::query("DELETE FROM revocations WHERE expires_at <= ?1")
            .bind(epoch_column(now))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
