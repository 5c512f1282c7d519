//! Account security on SQLite. Writes run in `BEGIN IMMEDIATE` transactions, so a
//! read-then-write inside one is safe from other writers.

use async_trait::async_trait;
use rusqlite::OptionalExtension as _;
use time::OffsetDateTime;
use uuid::Uuid;

use super::SqliteDatabase;
use crate::rows::UserRow;
use crate::{
    AccountRepository, LoginAlert, NewEmail, NewPasswordReset, OutboxEmail, StorageError,
    TotpState, User,
};

#[async_trait]
impl AccountRepository for SqliteDatabase {
    async fn set_password(&self, user: Uuid, password_hash: &str) -> Result<(), StorageError> {
        let now = OffsetDateTime::now_utc();
        let mut tx = self.begin_write().await?;
        let done =
            sqlx::query("UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1")
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
            "UPDATE users SET role = ?2, updated_at = ?3 WHERE lower(username) = lower(?1) \
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
            "SELECT id, username, email, role, created_at, password_hash FROM users WHERE email = ?1",
        )
        .bind(email)
        .fetch_optional(&mut *self.readers.get().await?)
        .await?;
        Ok(row.map(UserRow::into_user))
    }

    async fn create_password_reset(&self, reset: NewPasswordReset) -> Result<(), StorageError> {
        let now = OffsetDateTime::now_utc();
        let email_id = Uuid::now_v7();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(&reset.token_hash)
        .bind(reset.user_id)
        .bind(now)
        .bind(reset.expires_at)
        .execute(&mut *tx)
        .await?;
        insert_outbox(&mut tx, email_id, &reset.email, now).await?;
        // The delivery job, in the same transaction: the message is sent if and only if the
        // reset was stored.
        super::jobs::insert_job(
            &mut tx,
            &crate::jobs::email_job(email_id, reset.trace_context),
        )
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
        let mut tx = self.begin_write().await?;
        let found: Option<(Uuid, OffsetDateTime)> = sqlx::query_as(
            "SELECT user_id, expires_at FROM password_resets \
             WHERE token_hash = ?1 AND used_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        // Expiry is compared here, not in SQL: SQLite keeps timestamps as text.
        let Some((user, _)) = found.filter(|(_, expires_at)| *expires_at > now) else {
            return Ok(None);
        };
        // The presented token and every other outstanding one of this user die together.
        void_resets(&mut tx, user, now).await?;
        sqlx::query("UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1")
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
            "SELECT totp_secret, totp_enabled, totp_last_step FROM users WHERE id = ?1",
        )
        .bind(user)
        .fetch_optional(&mut *self.readers.get().await?)
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
            "UPDATE users SET totp_secret = ?2, totp_last_step = NULL \
             WHERE id = ?1 AND totp_enabled = 0",
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
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE users SET totp_enabled = 1, totp_last_step = ?2 \
             WHERE id = ?1 AND totp_enabled = 0 AND totp_secret IS NOT NULL",
        )
        .bind(user)
        .bind(step)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM totp_backup_codes WHERE user_id = ?1")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        for hash in backup_code_hashes {
            sqlx::query("INSERT INTO totp_backup_codes (user_id, code_hash) VALUES (?1, ?2)")
                .bind(user)
                .bind(hash)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn disable_totp(&self, user: Uuid) -> Result<bool, StorageError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE users SET totp_enabled = 0, totp_secret = NULL, totp_last_step = NULL \
             WHERE id = ?1 AND totp_enabled = 1",
        )
        .bind(user)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM totp_backup_codes WHERE user_id = ?1")
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
        let mut tx = self.begin_write().await?;
        // `BEGIN IMMEDIATE` holds the write lock, so the check stays true until the commit.
        let enabled: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM users WHERE id = ?1 AND totp_enabled = 1")
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
        if enabled.is_none() {
            return Ok(false);
        }
        sqlx::query("DELETE FROM totp_backup_codes WHERE user_id = ?1")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        for hash in backup_code_hashes {
            sqlx::query("INSERT INTO totp_backup_codes (user_id, code_hash) VALUES (?1, ?2)")
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
            "UPDATE users SET totp_last_step = ?2 \
             WHERE id = ?1 AND (totp_last_step IS NULL OR totp_last_step < ?2)",
        )
        .bind(user)
        .bind(step)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn use_backup_code(&self, user: Uuid, code_hash: &str) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE totp_backup_codes SET used_at = ?3 \
             WHERE user_id = ?1 AND code_hash = ?2 AND used_at IS NULL",
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
            "SELECT id, to_address, subject, body, html_body, created_at, attempts FROM email_outbox \
             WHERE sent_at IS NULL ORDER BY created_at, id LIMIT ?1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }
    async fn unsent_email(&self, id: Uuid) -> Result<Option<OutboxEmail>, StorageError> {
        Ok(sqlx::query_as(
            "SELECT id, to_address, subject, body, html_body, created_at, attempts FROM email_outbox \
             WHERE id = ?1 AND sent_at IS NULL",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn record_email_attempt(
        &self,
        id: Uuid,
        sent: bool,
        now: OffsetDateTime,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE email_outbox SET attempts = attempts + 1, \
             sent_at = CASE WHEN ?2 THEN ?3 ELSE NULL END \
             WHERE id = ?1 AND sent_at IS NULL",
        )
        .bind(id)
        .bind(sent)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn verify_email(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Uuid>, StorageError> {
        let mut tx = self.begin_write().await?;
        let found: Option<(Uuid, String)> = sqlx::query_as(
            "UPDATE email_verifications SET used_at = ?2 \
             WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2 \
             RETURNING user_id, email",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((user, email)) = found else {
            return Ok(None);
        };
        // The token vouches for the address it was mailed to, not for a later one.
        let done =
            sqlx::query("UPDATE users SET email_verified_at = ?3 WHERE id = ?1 AND email = ?2")
                .bind(user)
                .bind(&email)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(user))
    }

    async fn email_verified(&self, user: Uuid) -> Result<bool, StorageError> {
        let verified: Option<bool> =
            sqlx::query_scalar("SELECT email_verified_at IS NOT NULL FROM users WHERE id = ?1")
                .bind(user)
                .fetch_optional(&mut *self.readers.get().await?)
                .await?;
        verified.ok_or(StorageError::NotFound)
    }

    async fn find_profile(&self, user: Uuid) -> Result<Option<crate::Profile>, StorageError> {
        self.readers.read_here(|conn| {
            let profile = conn
                .prepare_cached(
                    "SELECT id, username, email, role, created_at, \
                     email_verified_at IS NOT NULL FROM users WHERE id = ?1",
                )?
                .query_row(rusqlite::params![super::raw::uuid(&user)], |row| {
                    Ok(crate::Profile {
                        user: super::raw_user(row)?,
                        email_verified: row.get(5)?,
                    })
                })
                .optional()?;
            Ok(profile)
        })
    }

    async fn record_login_address(
        &self,
        user: Uuid,
        address: &str,
        alert: LoginAlert,
    ) -> Result<bool, StorageError> {
        let now = OffsetDateTime::now_utc();
        let mut tx = self.begin_write().await?;
        let known: i64 =
            sqlx::query_scalar("SELECT count(*) FROM login_addresses WHERE user_id = ?1")
                .bind(user)
                .fetch_one(&mut *tx)
                .await?;
        let new_address = sqlx::query(
            "INSERT INTO login_addresses (user_id, address, first_seen_at, last_seen_at) \
             VALUES (?1, ?2, ?3, ?3) ON CONFLICT (user_id, address) DO NOTHING",
        )
        .bind(user)
        .bind(address)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !new_address {
            sqlx::query(
                "UPDATE login_addresses SET last_seen_at = ?3 \
                 WHERE user_id = ?1 AND address = ?2",
            )
            .bind(user)
            .bind(address)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        // The first login of an account sets its baseline; it alerts no one.
        let alerted = known > 0 && new_address;
        if alerted {
            let email_id = Uuid::now_v7();
            insert_outbox(&mut tx, email_id, &alert.email, now).await?;
            super::jobs::insert_job(
                &mut tx,
                &crate::jobs::email_job(email_id, alert.trace_context),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(alerted)
    }

    async fn purge_expired_tokens(&self, before: OffsetDateTime) -> Result<u64, StorageError> {
        let mut tx = self.begin_write().await?;
        let resets = sqlx::query("DELETE FROM password_resets WHERE expires_at < ?1")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        let verifications = sqlx::query("DELETE FROM email_verifications WHERE expires_at < ?1")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(resets.rows_affected() + verifications.rows_affected())
    }
}

/// Marks every outstanding reset token of `user` used at `now`, inside the caller's transaction.
async fn void_resets(
    tx: &mut super::WriteTx,
    user: Uuid,
    now: OffsetDateTime,
) -> Result<(), StorageError> {
    sqlx::query("UPDATE password_resets SET used_at = ?2 WHERE user_id = ?1 AND used_at IS NULL")
        .bind(user)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Writes one outbox message on `conn` (the caller's transaction).
pub(crate) async fn insert_outbox(
    conn: &mut sqlx::SqliteConnection,
    id: Uuid,
    email: &NewEmail,
    now: OffsetDateTime,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO email_outbox (id, to_address, subject, body, html_body, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .bind(id)
    .bind(&email.to)
    .bind(&email.subject)
    .bind(&email.body)
    .bind(&email.html)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes the welcome mail's verification token, its outbox message and delivery job on
/// `conn` (the transaction creating the user).
pub(crate) async fn insert_welcome(
    conn: &mut sqlx::SqliteConnection,
    user: Uuid,
    email: &str,
    welcome: crate::NewVerification,
) -> Result<(), StorageError> {
    let now = OffsetDateTime::now_utc();
    sqlx::query(
        "INSERT INTO email_verifications (token_hash, user_id, email, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .bind(&welcome.token_hash)
    .bind(user)
    .bind(email)
    .bind(now)
    .bind(welcome.expires_at)
    .execute(&mut *conn)
    .await?;
    let email_id = Uuid::now_v7();
    insert_outbox(&mut *conn, email_id, &welcome.email, now).await?;
    super::jobs::insert_job(
        conn,
        &crate::jobs::email_job(email_id, welcome.trace_context),
    )
    .await
}
