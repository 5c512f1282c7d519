//! Backups: a consistent copy of the database in a directory, verified by restoring it into a
//! scratch database and reconciling every wallet there.
//!
//! PostgreSQL runs `pg_dump --format=custom` (whose version must match the server's major
//! version or be newer) and `pg_restore` into a scratch database that is dropped afterwards;
//! the role needs `CREATEDB` for that. SQLite writes the copy with `VACUUM INTO`, SQLite's
//! online copy of a live database in one read transaction (the C backup API needs `unsafe`,
//! which this workspace forbids), then opens the copy, checks its integrity and reconciles it.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::{Reconciliation, StorageError};

/// A verified backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The file written.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// What reconciling the restored copy found: `mismatches` is empty for a good backup.
    pub restored: Reconciliation,
}

/// Why a backup failed. A failed backup leaves no file behind.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The directory or the file could not be written or read.
    #[error("backup file error: {0}")]
    Io(#[from] std::io::Error),
    /// A tool (`pg_dump`, `pg_restore`) failed; `detail` is the end of its standard error.
    #[error("{tool} failed ({status}): {detail}")]
    Tool {
        /// The program.
        tool: &'static str,
        /// Its exit status.
        status: String,
        /// What it said.
        detail: String,
    },
    /// The database refused a statement.
    #[error("backup database error")]
    Storage(#[from] StorageError),
    /// The restored copy is not sound (integrity check, or wallets that disagree with their
    /// ledger).
    #[error("the restored backup failed verification: {0}")]
    Verification(String),
}

impl From<sqlx::Error> for BackupError {
    fn from(error: sqlx::Error) -> Self {
        Self::Storage(StorageError::from(error))
    }
}

/// Taking backups.
#[async_trait]
pub trait BackupRepository: Send + Sync {
    /// Writes a backup of the whole database into `dir` (created if needed), named after `now`
    /// (`hearth-YYYYMMDDTHHMMSSZ.dump` or `.sqlite3`), and verifies it by restoring it into a
    /// scratch database and reconciling every wallet there.
    ///
    /// # Errors
    /// [`BackupError`] when writing, restoring or verifying fails; the file is removed then.
    async fn backup(&self, dir: &Path, now: OffsetDateTime) -> Result<BackupReport, BackupError>;
}

/// `hearth-20261205T033000Z.<extension>`.
pub(crate) fn file_name(now: OffsetDateTime, extension: &str) -> String {
    let now = now.to_offset(time::UtcOffset::UTC);
    format!(
        "hearth-{:04}{:02}{:02}T{:02}{:02}{:02}Z.{extension}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// Checks a restored copy's reconciliation.
pub(crate) fn verified(restored: &Reconciliation) -> Result<(), BackupError> {
    if restored.mismatches.is_empty() {
        Ok(())
    } else {
        Err(BackupError::Verification(format!(
            "{} of {} wallets differ from their ledger",
            restored.mismatches.len(),
            restored.wallets
        )))
    }
}
