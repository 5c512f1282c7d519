//! Account security on PostgreSQL. Every check-and-change is one conditional
//! `UPDATE`, so concurrent requests cannot both succeed.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::PostgresDatabase;
use crate::rows::UserRow;
use crate::{AccountRepository, NewPasswordReset, OutboxEmail, StorageError, TotpState, User};

#[async_trait]
impl AccountRepository for PostgresDatabase {
    async fn set_password(&self, user: Uuid, password_hash: &str) -> Result<(), StorageError> {
        let now = OffsetDateTime::now_utc();
        let mut tx = self.pool.begin().await?;
        let done =
            sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
                .bind(user)
                .bind(password_hash)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        void_resets(&mut tx, user, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_role(&self, username: &str, role: &str) -> Result<User, StorageError> {
        let row: Option<UserRow> = sqlx::query_as(
            "UPDATE users SET role = $2, updated_at = $3 WHERE lower(username) = lower($1) \
             RETURNING id, username, email, role, created_at, password_hash",
        )
        .bind(username)
        .bind(role)
        .bind(OffsetDateTime::now_utc())
        .fetch_optional(&self.pool)
        .await?;
        row.map(UserRow::into_user).ok_or(StorageError::NotFound)
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, StorageError> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT id, username, email, role, created_at, password_hash FROM users WHERE email = $1",
        )
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(UserRow::into_user))
    }

    async fn create_password_reset(&self, reset: NewPasswordReset) -> Result<(), StorageError> {
        let now = OffsetDateTime::now_utc();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&reset.token_hash)
        .bind(reset.user_id)
        .bind(now)
        .bind(reset.expires_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO email_outbox (id, to_address, subject, body, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(Uuid::now_v7())
        .bind(&reset.email.to)
        .bind(&reset.email.subject)
        .bind(&reset.email.body)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn complete_password_reset(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Uuid>, StorageError> {
        let mut tx = self.pool.begin().await?;
        let found: Option<Uuid> = sqlx::query_scalar(
            "UPDATE password_resets SET used_at = $2 \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING user_id",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(user) = found else {
            return Ok(None);
        };
        // Every other outstanding token of this user dies with the one presented.
        void_resets(&mut tx, user, now).await?;
        sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
            .bind(user)
            .bind(password_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(user))
    }

    async fn totp(&self, user: Uuid) -> Result<TotpState, StorageError> {
        let row: Option<(Option<String>, bool, Option<i64>)> = sqlx::query_as(
            "SELECT totp_secret, totp_enabled, totp_last_step FROM users WHERE id = $1",
        )
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        let (secret, enabled, last_step) = row.ok_or(StorageError::NotFound)?;
        Ok(TotpState {
            secret,
            enabled,
            last_step,
        })
    }

    async fn begin_totp(&self, user: Uuid, secret: &str) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE users SET totp_secret = $2, totp_last_step = NULL \
             WHERE id = $1 AND NOT totp_enabled",
        )
        .bind(user)
        .bind(secret)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn enable_totp(
        &self,
        user: Uuid,
        step: i64,
        backup_code_hashes: &[String],
    ) -> Result<bool, StorageError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE users SET totp_enabled = TRUE, totp_last_step = $2 \
             WHERE id = $1 AND NOT totp_enabled AND totp_secret IS NOT NULL",
        )
        .bind(user)
        .bind(step)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM totp_backup_codes WHERE user_id = $1")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        for hash in backup_code_hashes {
            sqlx::query("INSERT INTO totp_backup_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user)
                .bind(hash)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn disable_totp(&self, user: Uuid) -> Result<bool, StorageError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE users SET totp_enabled = FALSE, totp_secret = NULL, totp_last_step = NULL \
             WHERE id = $1 AND totp_enabled",
        )
        .bind(user)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM totp_backup_codes WHERE user_id = $1")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn replace_backup_codes(
        &self,
        user: Uuid,
        backup_code_hashes: &[String],
    ) -> Result<bool, StorageError> {
        let mut tx = self.pool.begin().await?;
        // The row lock keeps a concurrent disable from slipping between check and write.
        let enabled: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM users WHERE id = $1 AND totp_enabled FOR UPDATE")
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
        if enabled.is_none() {
            return Ok(false);
        }
        sqlx::query("DELETE FROM totp_backup_codes WHERE user_id = $1")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        for hash in backup_code_hashes {
            sqlx::query("INSERT INTO totp_backup_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user)
                .bind(hash)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn use_totp_step(&self, user: Uuid, step: i64) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE users SET totp_last_step = $2 \
             WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
        )
        .bind(user)
        .bind(step)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn use_backup_code(&self, user: Uuid, code_hash: &str) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE totp_backup_codes SET used_at = $3 \
             WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
        )
        .bind(user)
        .bind(code_hash)
        .bind(OffsetDateTime::now_utc())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn pending_emails(&self, limit: u32) -> Result<Vec<OutboxEmail>, StorageError> {
        Ok(sqlx::query_as(
            "SELECT id, to_address, subject, body, created_at, attempts FROM email_outbox \
             WHERE sent_at IS NULL ORDER BY created_at, id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }
}

/// Marks every outstanding reset token of `user` used at `now`, inside the caller's transaction.
async fn void_resets(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    user: Uuid,
    now: OffsetDateTime,
) -> Result<(), StorageError> {
    sqlx::query("UPDATE password_resets SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL")
        .bind(user)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
