//! Backups on SQLite: `VACUUM INTO` a new file, then open it, check it and reconcile it.

use std::path::Path;
use std::str::FromStr as _;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use time::OffsetDateTime;

use super::SqliteDatabase;
use crate::WalletRepository as _;
use crate::backup::{BackupError, BackupReport, BackupRepository, file_name, verified};

#[async_trait]
impl BackupRepository for SqliteDatabase {
    #[tracing::instrument(skip_all, err)]
    async fn backup(&self, dir: &Path, now: OffsetDateTime) -> Result<BackupReport, BackupError> {
        tokio::fs::create_dir_all(dir).await?;
        let path = dir.join(file_name(now, "sqlite3"));
        let partial = dir.join(format!(".{}.partial", file_name(now, "sqlite3")));
        let _ = tokio::fs::remove_file(&partial).await;
        let result = async {
            // One read transaction: a consistent copy while writers carry on.
            sqlx::query("VACUUM INTO ?1")
                .bind(partial.to_string_lossy().into_owned())
                .execute(&self.pool)
                .await?;
            let restored = verify_copy(&partial).await?;
            tokio::fs::rename(&partial, &path).await?;
            let bytes = tokio::fs::metadata(&path).await?.len();
            Ok(BackupReport {
                path: path.clone(),
                bytes,
                restored,
            })
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&partial).await;
        }
        result
    }
}

/// Opens the copy on its own (read-only), checks its integrity and reconciles every wallet.
async fn verify_copy(path: &Path) -> Result<crate::Reconciliation, BackupError> {
    let options = SqliteConnectOptions::from_str("sqlite://")?
        .filename(path)
        .read_only(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    // Never used for writing: the copy is opened read-only.
    let writer = super::Writer::open(&options, std::time::Duration::ZERO).await?;
    let readers = super::Readers::new(
        options,
        1,
        std::time::Duration::MAX,
        std::time::Duration::ZERO,
    );
    let copy = SqliteDatabase {
        pool,
        readers,
        writer,
    };
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&copy.pool)
        .await?;
    let restored = copy.reconcile().await;
    copy.readers.close().await;
    copy.pool.close().await;
    if integrity != "ok" {
        return Err(BackupError::Verification(format!(
            "integrity check: {integrity}"
        )));
    }
    let restored = restored?;
    verified(&restored)?;
    Ok(restored)
}
