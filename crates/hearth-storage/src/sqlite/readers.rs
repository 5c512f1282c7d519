//! Connections for the request path's reads, checked out and back without a round trip.
//!
//! sqlx's pool tests every connection it takes back (`ping`); on SQLite that is a command to
//! the connection's worker thread and its answer, two thread wake-ups as dear as the read
//! itself (`GET /v1/me` spent 12 % of the gateway's CPU there; see docs/benchmarks.md,
//! "Profiles of the request path"). A file connection has no server that could have dropped
//! it, and a read leaves no transaction open, so these go straight back to the idle list.
//!
//! A read whose future is dropped mid-way (a timed-out request) returns its connection with
//! the command possibly still running on the worker thread: the next command queues behind it
//! on the same thread, and the dropped query's rows are discarded when their channel is found
//! closed. Anything that begins a transaction uses the pool, never these.
//!
//! Without the ping nothing notices a connection that went bad (its worker thread gone): like
//! the pool, a connection is closed and replaced once it is older than the pool's
//! `max_lifetime_secs`, so such a connection fails for a bounded time, not for good.
//!
//! The hottest point reads (the caller's account, a wallet) skip the worker thread altogether:
//! [`Readers::read_here`] runs them on the calling thread, on rusqlite connections opened
//! read-only. A read of one row by key takes a few microseconds, less than the two thread
//! wake-ups of a sqlx read, and in WAL mode it never waits for the writer. Only such reads go
//! there: anything that scans belongs on a worker thread, not on the runtime's.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::ConnectOptions as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::StorageError;

/// Up to `max` read connections, opened when first needed and kept.
#[derive(Debug, Clone)]
pub(crate) struct Readers {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    options: SqliteConnectOptions,
    /// Idle connections, each with the moment it was opened.
    idle: Mutex<Vec<(SqliteConnection, Instant)>>,
    permits: Arc<Semaphore>,
    max_lifetime: Duration,
    /// Idle connections for [`Readers::read_here`], at most `max`.
    here: Mutex<Vec<rusqlite::Connection>>,
    max: usize,
    busy_timeout: Duration,
}

impl Readers {
    /// At most `max` connections (at least one) opened with `options`, each replaced once it
    /// is older than `max_lifetime`; [`Readers::read_here`]'s wait `busy_timeout` at most for
    /// a lock (in WAL mode only while the file is recovered).
    pub(crate) fn new(
        options: SqliteConnectOptions,
        max: u32,
        max_lifetime: Duration,
        busy_timeout: Duration,
    ) -> Self {
        let max = usize::try_from(max.max(1)).unwrap_or(1);
        Self {
            inner: Arc::new(Inner {
                options,
                idle: Mutex::new(Vec::with_capacity(max)),
                permits: Arc::new(Semaphore::new(max)),
                max_lifetime,
                here: Mutex::new(Vec::new()),
                max,
                busy_timeout,
            }),
        }
    }

    /// Runs `work` on the calling thread, on a read-only connection of its own (opened when
    /// none is idle). For reads of a few rows by key only: `work` blocks the thread it runs
    /// on.
    ///
    /// # Errors
    /// `work`'s; [`StorageError::Unavailable`] when the readers are closed or the file cannot
    /// be opened.
    pub(crate) fn read_here<R>(
        &self,
        work: impl FnOnce(&rusqlite::Connection) -> Result<R, StorageError>,
    ) -> Result<R, StorageError> {
        if self.inner.permits.is_closed() {
            return Err(StorageError::Unavailable(sqlx::Error::PoolClosed));
        }
        let idle = self
            .inner
            .here
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.open_here()?,
        };
        let value = work(&conn);
        let mut idle = self
            .inner
            .here
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.inner.max && !self.inner.permits.is_closed() {
            idle.push(conn);
        }
        value
    }

    fn open_here(&self) -> Result<rusqlite::Connection, StorageError> {
        super::raw::open(
            self.inner.options.get_filename(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            self.inner.busy_timeout,
        )
    }

    /// A connection for one or more reads; it goes back when the guard drops.
    pub(crate) async fn get(&self) -> Result<Reader, StorageError> {
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(|_| StorageError::Unavailable(sqlx::Error::PoolClosed))?;
        let idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let (conn, opened) = match idle {
            Some((conn, opened)) if opened.elapsed() < self.inner.max_lifetime => (conn, opened),
            stale => {
                if let Some((conn, _)) = stale {
                    let _ = sqlx::Connection::close(conn).await;
                }
                (self.inner.options.connect().await?, Instant::now())
            }
        };
        Ok(Reader {
            conn: Some(conn),
            opened,
            home: Arc::clone(&self.inner),
            _permit: permit,
        })
    }

    /// Closes the idle connections and refuses new checkouts.
    pub(crate) async fn close(&self) {
        self.inner.permits.close();
        let idle = std::mem::take(
            &mut *self
                .inner
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for (conn, _) in idle {
            let _ = sqlx::Connection::close(conn).await;
        }
        self.inner
            .here
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// A checked-out read connection: use it as `&mut *reader`.
#[derive(Debug)]
pub(crate) struct Reader {
    conn: Option<SqliteConnection>,
    opened: Instant,
    home: Arc<Inner>,
    _permit: OwnedSemaphorePermit,
}

impl Deref for Reader {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        // Only `drop` takes it.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for Reader {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !self.home.permits.is_closed()
        {
            self.home
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((conn, self.opened));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn options(dir: &tempfile::TempDir) -> SqliteConnectOptions {
        SqliteConnectOptions::new()
            .filename(dir.path().join("readers.db"))
            .create_if_missing(true)
    }

    #[tokio::test]
    async fn a_returned_connection_is_reused_and_checkouts_wait_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let readers = Readers::new(options(&dir), 1, Duration::from_secs(60), Duration::ZERO);
        let mut first = readers.get().await.unwrap();
        let one: i64 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut *first)
            .await
            .unwrap();
        assert_eq!(one, 1);
        // The limit is one: a second checkout waits for the first to come back.
        let waiting = tokio::time::timeout(Duration::from_millis(100), readers.get()).await;
        assert!(
            waiting.is_err(),
            "a second connection was opened past the limit"
        );
        drop(first);
        assert_eq!(readers.inner.idle.lock().unwrap().len(), 1);
        let mut again = readers.get().await.unwrap();
        assert_eq!(readers.inner.idle.lock().unwrap().len(), 0, "not reused");
        let two: i64 = sqlx::query_scalar("SELECT 2")
            .fetch_one(&mut *again)
            .await
            .unwrap();
        assert_eq!(two, 2);
        drop(again);
        readers.close().await;
        assert!(readers.get().await.is_err(), "checkout after close");
    }

    #[tokio::test]
    async fn a_connection_past_its_lifetime_is_replaced_at_checkout() {
        let dir = tempfile::tempdir().unwrap();
        let readers = Readers::new(options(&dir), 1, Duration::from_millis(50), Duration::ZERO);
        let first = readers.get().await.unwrap();
        let opened = first.opened;
        drop(first);
        let young = readers.get().await.unwrap();
        assert_eq!(young.opened, opened, "a young connection is reused");
        drop(young);
        tokio::time::sleep(Duration::from_millis(80)).await;
        let mut replaced = readers.get().await.unwrap();
        assert!(replaced.opened > opened, "an old connection is replaced");
        let four: i64 = sqlx::query_scalar("SELECT 4")
            .fetch_one(&mut *replaced)
            .await
            .unwrap();
        assert_eq!(four, 4);
    }

    #[tokio::test]
    async fn a_read_dropped_mid_way_leaves_its_connection_usable() {
        let dir = tempfile::tempdir().unwrap();
        let readers = Readers::new(options(&dir), 1, Duration::from_secs(60), Duration::ZERO);
        {
            let mut conn = readers.get().await.unwrap();
            // A long query, abandoned after its first poll or so.
            let slow = sqlx::query_scalar::<_, i64>(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000000) \
                 SELECT count(*) FROM n",
            )
            .fetch_one(&mut *conn);
            let _ = tokio::time::timeout(Duration::from_millis(1), slow).await;
        }
        let mut conn = readers.get().await.unwrap();
        let three: i64 = sqlx::query_scalar("SELECT 3")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(three, 3);
    }

    #[tokio::test]
    async fn reads_here_see_committed_rows_reuse_their_connection_and_never_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = options(&dir)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .connect()
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT NOT NULL)")
            .execute(&mut writer)
            .await
            .unwrap();
        sqlx::query("INSERT INTO t VALUES (1, 'one')")
            .execute(&mut writer)
            .await
            .unwrap();
        let readers = Readers::new(options(&dir), 2, Duration::from_secs(60), Duration::ZERO);
        let who = |id: i64| {
            readers.read_here(|conn| {
                Ok(conn
                    .prepare_cached("SELECT who FROM t WHERE id = ?1")?
                    .query_row([id], |row| row.get::<_, String>(0))?)
            })
        };
        assert_eq!(who(1).unwrap(), "one");
        assert!(matches!(who(2), Err(StorageError::NotFound)));
        assert_eq!(
            readers.inner.here.lock().unwrap().len(),
            1,
            "one connection, reused"
        );
        // A row committed since is seen: no read transaction is left open between reads.
        sqlx::query("INSERT INTO t VALUES (2, 'two')")
            .execute(&mut writer)
            .await
            .unwrap();
        assert_eq!(who(2).unwrap(), "two");
        let write = readers.read_here(|conn| Ok(conn.execute("DELETE FROM t", [])?));
        assert!(write.is_err(), "a read-only connection wrote: {write:?}");
        readers.close().await;
        assert!(matches!(who(1), Err(StorageError::Unavailable(_))));
    }
}
