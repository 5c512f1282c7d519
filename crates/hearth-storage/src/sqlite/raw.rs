//! Values and errors for the statements that run through rusqlite on the writer's connection
//! (`Writer::write`). Values are stored exactly as sqlx stores them, so that a row written one
//! way reads back the other: a UUID as its 16 bytes, a time as RFC 3339 text, JSON as text.
//! rusqlite's errors become the [`StorageError`]s sqlx's would have been.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::error::{DatabaseError, ErrorKind};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::StorageError;

/// Opens a rusqlite connection to the file at `path` with `flags` (plus `NO_MUTEX`: each
/// connection is used by one thread at a time), waiting `busy_timeout` at most for a lock.
///
/// # Errors
/// [`StorageError::Unavailable`] when the file cannot be opened.
pub(super) fn open(
    path: &std::path::Path,
    flags: rusqlite::OpenFlags,
    busy_timeout: std::time::Duration,
) -> Result<rusqlite::Connection, StorageError> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        flags | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|error| StorageError::Unavailable(sqlx::Error::Io(std::io::Error::other(error))))?;
    conn.busy_timeout(busy_timeout)?;
    Ok(conn)
}

/// A UUID as sqlx binds it on SQLite: a 16-byte blob.
pub(super) fn uuid(id: &Uuid) -> &[u8] {
    id.as_bytes()
}

/// A time as sqlx binds an `OffsetDateTime` on SQLite: RFC 3339 text.
///
/// # Errors
/// [`StorageError::Corrupt`] for a time RFC 3339 cannot spell (a year past 9999).
pub(super) fn time(at: OffsetDateTime) -> Result<String, StorageError> {
    at.format(&Rfc3339)
        .map_err(|error| StorageError::Corrupt(format!("time: {error}")))
}

/// A value as sqlx's `Json` binds it: its JSON text.
///
/// # Errors
/// [`StorageError::Corrupt`] when it does not serialize.
pub(super) fn json<T: Serialize + ?Sized>(value: &T) -> Result<String, StorageError> {
    serde_json::to_string(value).map_err(|error| StorageError::Corrupt(format!("json: {error}")))
}

/// Column `i` of `row` as a UUID ([`uuid`]'s 16 bytes).
///
/// # Errors
/// rusqlite's conversion error when the column is not 16 bytes.
pub(super) fn uuid_at(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Uuid> {
    row.get::<_, [u8; 16]>(i).map(Uuid::from_bytes)
}

/// Column `i` of `row` as a time: as [`time`] writes it, or as SQLite's own
/// `CURRENT_TIMESTAMP` does (UTC, space-separated), both of which sqlx reads.
///
/// # Errors
/// rusqlite's conversion error when the column is not a time.
pub(super) fn time_at(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<OffsetDateTime> {
    let text = row.get_ref(i)?.as_str()?;
    parse_time(text).map_err(|error| conversion(i, error))
}

fn parse_time(text: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(text, &Rfc3339).or_else(|error| {
        let spaced = time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second][optional [.[subsecond]]]"
        );
        time::PrimitiveDateTime::parse(text, spaced)
            .map(time::PrimitiveDateTime::assume_utc)
            .map_err(|_| error)
    })
}

/// Column `i` of `row` as JSON text decoded ([`json`]), or `None` for NULL.
///
/// # Errors
/// rusqlite's conversion error when the column is not JSON of that shape.
pub(super) fn json_at<T: DeserializeOwned>(
    row: &rusqlite::Row<'_>,
    i: usize,
) -> rusqlite::Result<Option<T>> {
    let Some(text) = row.get_ref(i)?.as_str_or_null()? else {
        return Ok(None);
    };
    serde_json::from_str(text)
        .map(Some)
        .map_err(|error| conversion(i, error))
}

/// A column's text that did not convert; [`StorageError::Corrupt`] once it leaves rusqlite.
fn conversion(i: usize, error: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(error))
}

impl From<rusqlite::Error> for StorageError {
    fn from(error: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match &error {
            rusqlite::Error::QueryReturnedNoRows => Self::NotFound,
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => Self::Corrupt(error.to_string()),
            rusqlite::Error::SqliteFailure(failure, _)
                if matches!(
                    failure.code,
                    ErrorCode::DatabaseBusy
                        | ErrorCode::DatabaseLocked
                        | ErrorCode::SystemIoFailure
                        | ErrorCode::DiskFull
                        | ErrorCode::CannotOpen
                ) =>
            {
                Self::Unavailable(sqlx::Error::Database(Box::new(RawError::new(error))))
            }
            _ => sqlx::Error::Database(Box::new(RawError::new(error))).into(),
        }
    }
}

/// A rusqlite error, as sqlx reports a database error: its message and code, and the kind
/// (a unique violation maps to [`StorageError::Conflict`] as sqlx's does).
#[derive(Debug)]
struct RawError {
    message: String,
    /// SQLite's extended result code.
    code: Option<i32>,
    source: rusqlite::Error,
}

impl RawError {
    fn new(source: rusqlite::Error) -> Self {
        let (message, code) = match &source {
            rusqlite::Error::SqliteFailure(failure, message) => (
                message.clone().unwrap_or_else(|| failure.to_string()),
                Some(failure.extended_code),
            ),
            other => (other.to_string(), None),
        };
        Self {
            message,
            code,
            source,
        }
    }
}

impl fmt::Display for RawError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RawError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl DatabaseError for RawError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        self.code.map(|code| Cow::Owned(code.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        match self.code {
            Some(
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY,
            ) => ErrorKind::UniqueViolation,
            Some(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => ErrorKind::ForeignKeyViolation,
            Some(rusqlite::ffi::SQLITE_CONSTRAINT_NOTNULL) => ErrorKind::NotNullViolation,
            Some(rusqlite::ffi::SQLITE_CONSTRAINT_CHECK) => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    #[test]
    fn values_are_spelled_as_sqlx_spells_them_and_read_back() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let read = |sql: &str| {
            conn.query_row(sql, [], |row| {
                Ok((time_at(row, 0), json_at::<serde_json::Value>(row, 1)))
            })
            .unwrap()
        };
        let id = Uuid::now_v7();
        assert_eq!(uuid(&id), id.as_bytes());
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_764_979_200_123_456_789).unwrap();
        let text = time(at).unwrap();
        assert_eq!(text, "2025-12-06T00:00:00.123456789Z");
        assert_eq!(json(&serde_json::json!({ "a": 1 })).unwrap(), r#"{"a":1}"#);

        let (t, j) = read(&format!("SELECT '{text}', '{{\"a\":1}}'"));
        assert_eq!(t.unwrap(), at);
        assert_eq!(j.unwrap(), Some(serde_json::json!({ "a": 1 })));
        let (t, j) = read("SELECT '2025-12-06 00:00:00', NULL");
        assert_eq!(
            t.unwrap(),
            OffsetDateTime::from_unix_timestamp(1_764_979_200).unwrap(),
            "SQLite's CURRENT_TIMESTAMP, read as UTC"
        );
        assert_eq!(j.unwrap(), None);
        let (t, j) = read("SELECT 'yesterday', '{'");
        assert!(matches!(
            StorageError::from(t.unwrap_err()),
            StorageError::Corrupt(_)
        ));
        assert!(matches!(
            StorageError::from(j.unwrap_err()),
            StorageError::Corrupt(_)
        ));
    }

    #[test]
    fn a_unique_violation_is_a_conflict_named_as_on_postgres_and_no_row_is_not_found() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT UNIQUE)")
            .unwrap();
        conn.execute("INSERT INTO users (email) VALUES ('a@x')", [])
            .unwrap();
        let duplicate = conn
            .execute("INSERT INTO users (email) VALUES ('a@x')", [])
            .unwrap_err();
        assert!(matches!(
            StorageError::from(duplicate),
            StorageError::Conflict { constraint } if constraint == "users_email_key"
        ));
        let none = conn
            .query_row("SELECT id FROM users WHERE email = 'b@x'", [], |row| {
                row.get::<_, i64>(0)
            })
            .unwrap_err();
        assert!(matches!(StorageError::from(none), StorageError::NotFound));
        let bad = conn
            .execute("INSERT INTO nowhere VALUES (1)", [])
            .unwrap_err();
        assert!(matches!(StorageError::from(bad), StorageError::Other(_)));
    }
}
