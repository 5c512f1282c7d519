//! The one writer: every write transaction of the process, one after another on one connection,
//! and the ones that queued meanwhile made durable by one commit (group commit).
//!
//! SQLite admits one writer per file. With writers on several pool connections, the ones that
//! find the lock taken sleep in SQLite's busy handler, whose sleeps grow (1, 2, 5, … 100 ms) and
//! wake nobody when the lock frees: under a few dozen concurrent spins, one in a hundred waited
//! over a second. Here, writers queue in the process instead, on a fair (FIFO) lock around one
//! dedicated connection, and each write runs inside a `SAVEPOINT` of a transaction that stays
//! open while other writers wait: the last writer of the queue commits for all of them, and each
//! gets its answer once that commit is durable (`synchronous=FULL` is kept).
//!
//! Each write stays atomic on its own: a write that fails (a refused bet, a conflict, an error
//! mid-way) rolls back to its savepoint and leaves the others in the batch untouched. A commit
//! that fails fails every write in its batch, as it would fail a lone transaction: none of them
//! took effect.
//!
//! A caller may go away at any point (a client disconnecting drops the request's future). The
//! steps that must not stop half-way — taking the lock and opening the savepoint, and finishing
//! (release, commit) — run in spawned tasks; a [`WriteTx`] dropped without a commit (an early
//! `?` return, or a cancelled caller) marks its savepoint abandoned and spawns a task that rolls
//! it back and commits the rest. Whoever takes the lock next rolls back an abandoned savepoint
//! first, so the connection is never used with a half-done write in it.
//!
//! Two ways in, on two connections to the file that take turns. [`Writer::begin`] gives a
//! [`WriteTx`] whose statements are sqlx queries on the writer's sqlx connection, each one a
//! round trip to that connection's worker thread and back. [`Writer::write`] runs a whole write
//! as one synchronous closure on the calling thread, on the writer's own rusqlite connection:
//! one step, however many statements it runs, so the lock is held for microseconds, not for a
//! dozen thread hops. The money paths (rounds) take the second way. The open transaction is on
//! one connection at a time: a write for the other one commits the batch first. `BEGIN
//! IMMEDIATE`, which may wait in SQLite's busy handler for another process, and `COMMIT`, which
//! waits for the disk, run on a blocking thread (the rusqlite connection) or on sqlx's (the
//! other), so that neither blocks the runtime.
//!
//! Reads do not come here: they use the pool's connections and, in WAL mode, run beside the
//! writer. Other processes on the same file (the worker) still meet this writer through SQLite's
//! lock and busy handler.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteConnectOptions;
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use crate::StorageError;

/// The most writes one commit carries; the writers after them wait for the next.
const MAX_BATCH: usize = 64;

/// Every this many commits, the commit is followed by a `RESTART` checkpoint (see
/// [`Writer::open`]).
const WAL_RESTART_EVERY: u64 = 32;

/// How long a `RESTART` checkpoint waits for readers of older snapshots, in milliseconds. It
/// holds the write lock meanwhile: a long read (a report, a backup) makes it give up after this,
/// not stall every writer for the whole busy timeout; the next one tries again.
const WAL_RESTART_WAIT_MS: u64 = 20;

/// The process's writer for one SQLite file; cheap to clone (all clones share it).
#[derive(Clone)]
pub(crate) struct Writer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("waiting", &self.shared.waiting.load(Ordering::Relaxed))
            .field("commits", &self.shared.commits.load(Ordering::Relaxed))
            .field("writes", &self.shared.writes.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

struct Shared {
    /// The connection and its open batch. A tokio mutex because it is held across awaits, and
    /// because it is fair: writers are served in the order they came.
    state: Arc<Mutex<State>>,
    /// Tasks waiting for the lock. While one is, the holder leaves the transaction open for it
    /// to join; the last one commits. Counted in spawned tasks only, so every count is a task
    /// that will take the lock.
    waiting: AtomicUsize,
    /// Commits made, and the writes they carried.
    commits: AtomicU64,
    writes: AtomicU64,
    /// The file, and how long its rusqlite connection waits for another process's lock.
    path: PathBuf,
    busy_timeout: Duration,
    /// The `RESTART` checkpoint, run with the busy timeout cut to [`WAL_RESTART_WAIT_MS`]
    /// and set back after.
    restart_wal: String,
}

/// The connection a transaction is open on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// `State::conn`, for [`Writer::begin`].
    Sqlx,
    /// `State::raw`, for [`Writer::write`].
    Raw,
}

/// The writer's connections and what is open on them.
struct State {
    conn: SqliteConnection,
    /// The rusqlite connection of [`Writer::write`], opened on its first use. `None` also while
    /// one of its statements runs on a blocking thread, and after that thread was lost.
    raw: Option<rusqlite::Connection>,
    /// Where a transaction (`BEGIN IMMEDIATE`) is open, holding the writes in `members`.
    open: Option<Side>,
    /// A write's savepoint is open and its holder is gone (or has not finished): whoever takes
    /// the lock next rolls it back first.
    abandoned: bool,
    /// The writes in the open transaction waiting for its commit, and how many there are
    /// (including the ones that need no answer).
    members: Vec<oneshot::Sender<Result<(), String>>>,
    writes: usize,
}

/// Counts of the writer's commits so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Commits made (each one durable write to the file).
    pub commits: u64,
    /// Write transactions those commits carried; divided by `commits`, the writes per commit.
    pub writes: u64,
}

impl Writer {
    /// Opens the writer's sqlx connection with `options` (the pool's: WAL, `synchronous=FULL`,
    /// the busy timeout for other processes), with a setting of its own, which its rusqlite
    /// connection (opened on the first [`Writer::write`], with `busy_timeout`) shares:
    /// `temp_store=MEMORY`. Each write's savepoint keeps the pages it changes in a sub-journal,
    /// which lasts as long as the batch's transaction; past 64 KiB SQLite spills it to a
    /// temporary file, a `pwrite` per page (14 % of the gateway's CPU under spins). In memory
    /// it is bounded by the batch: at most [`MAX_BATCH`] writes.
    ///
    /// Checkpoints run on the writer's connections, under its lock. SQLite's own (the commit
    /// that takes the WAL past 1,000 pages copies it into the database file) are passive:
    /// while readers keep reading, one of them always holds a snapshot in the WAL, which then
    /// is never started over and grows without bound (50 MB in the writer's test with two
    /// readers). So every [`WAL_RESTART_EVERY`] commits the writer also runs a `RESTART`
    /// checkpoint: it copies what is left, waits for the readers of older snapshots to finish
    /// (point reads: microseconds; new readers read the database file meanwhile; a long one
    /// makes it give up after [`WAL_RESTART_WAIT_MS`]), and the next transaction writes the
    /// WAL from its start. (A checkpoint beside the writer, on
    /// another connection, never catches up with a writer that keeps appending: 1.9 GB in a
    /// 10-second spin run.)
    pub(crate) async fn open(
        options: &SqliteConnectOptions,
        busy_timeout: Duration,
    ) -> Result<Self, StorageError> {
        let conn = options
            .clone()
            .pragma("temp_store", "MEMORY")
            .connect()
            .await?;
        Ok(Self {
            shared: Arc::new(Shared {
                state: Arc::new(Mutex::new(State {
                    conn,
                    raw: None,
                    open: None,
                    abandoned: false,
                    members: Vec::new(),
                    writes: 0,
                })),
                waiting: AtomicUsize::new(0),
                commits: AtomicU64::new(0),
                writes: AtomicU64::new(0),
                path: options.get_filename().to_owned(),
                busy_timeout,
                restart_wal: format!(
                    "PRAGMA busy_timeout = {WAL_RESTART_WAIT_MS}; \
                     PRAGMA wal_checkpoint(RESTART); PRAGMA busy_timeout = {}",
                    busy_timeout.as_millis()
                ),
            }),
        })
    }

    /// Commits and writes so far.
    pub(crate) fn stats(&self) -> WriterStats {
        WriterStats {
            commits: self.shared.commits.load(Ordering::Relaxed),
            writes: self.shared.writes.load(Ordering::Relaxed),
        }
    }

    /// Waits for the lock and opens a write: a savepoint in the open transaction, or in a new
    /// one. Runs in its own task, so a caller that goes away cannot leave the lock half-taken.
    pub(crate) async fn begin(&self) -> Result<WriteTx, StorageError> {
        let writer = self.clone();
        tokio::spawn(async move {
            let mut guard = writer.lock().await;
            writer.ready(&mut guard, Side::Sqlx).await?;
            // Marked before the statement: should it run and its answer be lost, the next
            // holder still rolls it back.
            guard.abandoned = true;
            if let Err(error) = sqlx::query("SAVEPOINT hearth_write")
                .execute(&mut guard.conn)
                .await
            {
                guard.abandoned = false;
                writer.abort(&mut guard, &error.to_string()).await;
                return Err(error.into());
            }
            Ok(WriteTx {
                guard: Some(guard),
                writer,
            })
        })
        .await
        .map_err(|_| StorageError::Unavailable(sqlx::Error::WorkerCrashed))?
    }

    /// Runs `work` as one write: in a savepoint of the open transaction (or a new one), on the
    /// calling thread, on the writer's rusqlite connection. Returns `work`'s value once the commit
    /// carrying it is durable; when `work` fails, its statements are undone and its error
    /// returned at once, and the other writes of the batch are left alone.
    ///
    /// `work` runs to its end without yielding, so a caller that goes away can only do so
    /// while waiting for the lock, the transaction's `BEGIN` (run in a task of its own) or the
    /// commit, and never leaves a write half-done.
    ///
    /// # Errors
    /// `work`'s error; [`StorageError::Unavailable`] when the transaction could not be begun
    /// or the commit made (then nothing of this write took effect).
    pub(crate) async fn write<R>(
        &self,
        work: impl FnOnce(&rusqlite::Connection) -> Result<R, StorageError>,
    ) -> Result<R, StorageError> {
        let mut held = Held::new(self).await;
        let state = held.state();
        if state.abandoned || state.open != Some(Side::Raw) || state.raw.is_none() {
            // In a task of its own: a statement cut short by a caller going away could run
            // without `open` recording it. Should the caller go, the task's `Held` still
            // hands the turn on when it drops.
            let writer = self.clone();
            held = tokio::spawn(async move {
                let mut held = held;
                writer.ready(held.state(), Side::Raw).await?;
                Ok::<_, StorageError>(held)
            })
            .await
            .map_err(|_| StorageError::Unavailable(sqlx::Error::WorkerCrashed))??;
        }
        let state = held.state();
        let Some(raw) = state.raw.as_ref() else {
            // `ready` leaves it in place; dropping `held` hands the turn on.
            return Err(StorageError::Unavailable(sqlx::Error::WorkerCrashed));
        };
        // Set before the savepoint opens: should `work` panic, the next holder rolls it back.
        state.abandoned = true;
        let (value, ended) = in_savepoint(raw, work);
        // Ended one way or the other; a broken one goes with the whole transaction below.
        state.abandoned = false;
        let guard = held.release();
        match ended {
            Ended::Kept => {
                let (answer, done) = oneshot::channel();
                self.join_batch(guard, answer);
                match done.await {
                    Ok(Ok(())) => value,
                    Ok(Err(why)) => Err(group_failed(why)),
                    Err(_) => Err(StorageError::Unavailable(sqlx::Error::WorkerCrashed)),
                }
            }
            Ended::Undone => {
                self.end_turn(guard, None);
                value
            }
            Ended::Broken(why) => {
                let error = group_failed(why.clone());
                self.end_turn(guard, Some(why));
                value.and(Err(error))
            }
        }
    }

    /// Adds a kept write to the open transaction; commits it unless another writer is
    /// waiting to join (which will commit it, or the one after).
    fn join_batch(
        &self,
        mut guard: OwnedMutexGuard<State>,
        answer: oneshot::Sender<Result<(), String>>,
    ) {
        guard.members.push(answer);
        guard.writes += 1;
        if self.shared.waiting.load(Ordering::SeqCst) > 0 && guard.writes < MAX_BATCH {
            // Released here: the waiting writer joins the transaction.
            return;
        }
        self.end_turn(guard, None);
    }

    /// Ends a holder's turn in a task of its own, so that the commit (or the rollback after a
    /// broken savepoint) is not cut short by a caller going away.
    fn end_turn(&self, guard: OwnedMutexGuard<State>, broken: Option<String>) {
        let writer = self.clone();
        tokio::spawn(async move {
            let mut guard = guard;
            match broken {
                Some(why) => writer.abort(&mut guard, &why).await,
                None => {
                    writer.commit_if_last(&mut guard).await;
                }
            }
        });
    }

    /// Takes the lock, counted as waiting meanwhile.
    async fn lock(&self) -> OwnedMutexGuard<State> {
        self.shared.waiting.fetch_add(1, Ordering::SeqCst);
        let guard = Arc::clone(&self.shared.state).lock_owned().await;
        self.shared.waiting.fetch_sub(1, Ordering::SeqCst);
        guard
    }

    /// Makes the connection of `side` ready for a write: an abandoned savepoint rolled back, a
    /// batch open on the other connection committed (its writes answered), and a transaction
    /// open on this one.
    async fn ready(&self, state: &mut State, side: Side) -> Result<(), StorageError> {
        self.settle(state).await;
        if state.open.is_some_and(|open| open != side) {
            self.commit_now(state).await;
        }
        if state.open.is_none() {
            self.run(state, side, "BEGIN IMMEDIATE").await?;
            state.open = Some(side);
        }
        Ok(())
    }

    /// Runs one statement that returns no rows on `side`'s connection: sqlx's on its worker
    /// thread, the rusqlite one on a blocking thread (opened there first if need be), since
    /// either may wait for the disk or for another process's lock.
    async fn run(&self, state: &mut State, side: Side, sql: &str) -> Result<(), StorageError> {
        match side {
            Side::Sqlx => {
                // Every statement run here is the writer's own: constants, and its checkpoint
                // built from a number of milliseconds.
                sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&mut state.conn)
                    .await?;
                Ok(())
            }
            Side::Raw => {
                if state.open == Some(Side::Raw) && state.raw.is_none() {
                    // Lost with a blocking thread, and its transaction with it.
                    return Err(StorageError::Unavailable(sqlx::Error::WorkerCrashed));
                }
                let raw = state.raw.take();
                let (path, busy_timeout) = (self.shared.path.clone(), self.shared.busy_timeout);
                let sql = sql.to_owned();
                let (raw, ran) = tokio::task::spawn_blocking(move || {
                    let raw = match raw {
                        Some(raw) => raw,
                        None => open_raw(&path, busy_timeout)?,
                    };
                    let ran = raw.execute_batch(&sql);
                    Ok::<_, StorageError>((raw, ran))
                })
                .await
                .map_err(|_| StorageError::Unavailable(sqlx::Error::WorkerCrashed))??;
                state.raw = Some(raw);
                Ok(ran?)
            }
        }
    }

    /// Rolls back a savepoint its holder abandoned; if that fails, the whole transaction.
    async fn settle(&self, state: &mut State) {
        if !state.abandoned {
            return;
        }
        state.abandoned = false;
        let Some(side) = state.open else {
            return;
        };
        let undone = async {
            self.run(state, side, "ROLLBACK TO hearth_write").await?;
            self.run(state, side, "RELEASE hearth_write").await
        }
        .await;
        if let Err(error) = undone {
            tracing::warn!(%error, "rolling back an abandoned write failed; the batch is lost");
            self.abort(state, &error.to_string()).await;
        }
    }

    /// Rolls the open transaction back and fails the writes waiting for it.
    async fn abort(&self, state: &mut State, why: &str) {
        if let Some(side) = state.open.take() {
            // It may be gone already (SQLite rolls back by itself on some errors, and a
            // rusqlite connection lost with its blocking thread took its transaction along).
            if side == Side::Sqlx || state.raw.is_some() {
                let _ = self.run(state, side, "ROLLBACK").await;
            }
        }
        state.writes = 0;
        for member in state.members.drain(..) {
            let _ = member.send(Err(why.to_owned()));
        }
    }

    /// Commits the open transaction now, if nobody is waiting to join it or it is full, and
    /// answers its writes. Returns whether it committed (or found nothing to commit).
    async fn commit_if_last(&self, state: &mut State) -> bool {
        if state.open.is_none() {
            return true;
        }
        if self.shared.waiting.load(Ordering::SeqCst) > 0 && state.writes < MAX_BATCH {
            return false;
        }
        self.commit_now(state).await;
        true
    }

    /// Commits the open transaction and answers its writes; rolls it back and fails them if
    /// the commit fails.
    async fn commit_now(&self, state: &mut State) {
        let Some(side) = state.open else {
            return;
        };
        match self.run(state, side, "COMMIT").await {
            Ok(()) => {
                let commits = self.shared.commits.fetch_add(1, Ordering::Relaxed) + 1;
                self.shared
                    .writes
                    .fetch_add(u64::try_from(state.writes).unwrap_or(0), Ordering::Relaxed);
                state.open = None;
                state.writes = 0;
                for member in state.members.drain(..) {
                    let _ = member.send(Ok(()));
                }
                if commits.is_multiple_of(WAL_RESTART_EVERY) {
                    let restarted = self.run(state, side, &self.shared.restart_wal);
                    if let Err(error) = restarted.await {
                        tracing::warn!(%error, "a WAL checkpoint failed; the next one retries");
                    }
                }
            }
            Err(error) => {
                let why = error.to_string();
                tracing::warn!(error = %why, writes = state.writes, "a group commit failed");
                self.abort(state, &why).await;
            }
        }
    }

    /// The task a dropped [`WriteTx`] leaves behind: rolls its savepoint back and commits the
    /// others when nobody else will.
    async fn flush(self) {
        let mut guard = self.lock().await;
        self.settle(&mut guard).await;
        self.commit_if_last(&mut guard).await;
    }
}

/// One write transaction: a savepoint on the writer's connection, holding the writer's lock.
/// Derefs to the connection, so queries run on `&mut *tx`.
///
/// [`WriteTx::commit`] keeps its writes and returns once they are durable; dropping it undoes
/// them and leaves the other writes of its batch alone.
pub(crate) struct WriteTx {
    /// `Some` until the write is finished; taken only by `commit` and `drop`.
    guard: Option<OwnedMutexGuard<State>>,
    writer: Writer,
}

impl WriteTx {
    /// Keeps this write and waits until the commit carrying it is durable.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`] when the commit failed (then nothing of this write took
    /// effect) or the release of the savepoint did.
    pub(crate) async fn commit(mut self) -> Result<(), StorageError> {
        let Some(guard) = self.guard.take() else {
            return Ok(());
        };
        let writer = self.writer.clone();
        let waited = tokio::spawn(async move {
            let mut guard = guard;
            let ended = sqlx::query("RELEASE hearth_write")
                .execute(&mut guard.conn)
                .await;
            guard.abandoned = false;
            if let Err(error) = ended {
                writer.abort(&mut guard, &error.to_string()).await;
                return Err(error.to_string());
            }
            let (answer, done) = oneshot::channel();
            guard.members.push(answer);
            guard.writes += 1;
            writer.commit_if_last(&mut guard).await;
            // Released here: a writer waiting joins the transaction and commits it later.
            drop(guard);
            Ok(done)
        })
        .await;
        let done = match waited {
            Ok(Ok(done)) => done,
            Ok(Err(why)) => return Err(group_failed(why)),
            Err(_) => return Err(StorageError::Unavailable(sqlx::Error::WorkerCrashed)),
        };
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(group_failed(why)),
            // The transaction's holder died (a panic, the runtime stopping) before answering.
            Err(_) => Err(StorageError::Unavailable(sqlx::Error::WorkerCrashed)),
        }
    }
}

fn group_failed(why: String) -> StorageError {
    StorageError::Unavailable(sqlx::Error::Protocol(format!(
        "the write was not committed: {why}"
    )))
}

impl Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match &self.guard {
            Some(guard) => &guard.conn,
            // `guard` is taken only by `commit`, which consumes the value, and by `drop`.
            None => unreachable!("a finished write is not used"),
        }
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match &mut self.guard {
            Some(guard) => &mut guard.conn,
            None => unreachable!("a finished write is not used"),
        }
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            // `abandoned` is still set: the next holder rolls the savepoint back. If nobody
            // waits, the flush task is that holder, and commits the rest of the batch.
            drop(guard);
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(self.writer.clone().flush());
                }
                Err(_) => tracing::warn!("a write was dropped outside the runtime"),
            }
        }
    }
}

/// How a [`Writer::write`]'s savepoint ended.
enum Ended {
    /// Released: the write joins the transaction and waits for its commit.
    Kept,
    /// Rolled back: nothing of the write remains.
    Undone,
    /// The savepoint could not be opened or ended; the whole transaction must be rolled back.
    Broken(String),
}

/// Runs `work` in the savepoint `hearth_write`: released when it succeeds, rolled back when it
/// fails.
fn in_savepoint<R>(
    raw: &rusqlite::Connection,
    work: impl FnOnce(&rusqlite::Connection) -> Result<R, StorageError>,
) -> (Result<R, StorageError>, Ended) {
    let statement = |sql: &str| raw.prepare_cached(sql).and_then(|mut s| s.execute([]));
    if let Err(error) = statement("SAVEPOINT hearth_write") {
        let why = error.to_string();
        return (Err(error.into()), Ended::Broken(why));
    }
    let value = work(raw);
    let ended = if value.is_ok() {
        statement("RELEASE hearth_write").map(|_| Ended::Kept)
    } else {
        statement("ROLLBACK TO hearth_write")
            .and_then(|_| statement("RELEASE hearth_write"))
            .map(|_| Ended::Undone)
    };
    match ended {
        Ok(ended) => (value, ended),
        Err(error) => (value, Ended::Broken(error.to_string())),
    }
}

/// The writer's lock taken for [`Writer::write`], counted as waiting until it is taken. Should
/// the caller go away (or `work` panic) before the turn is handed on, dropping this leaves a
/// flush task behind to roll back what is open and commit the rest of the batch, as a dropped
/// [`WriteTx`] does.
struct Held {
    guard: Option<OwnedMutexGuard<State>>,
    writer: Writer,
}

impl Held {
    async fn new(writer: &Writer) -> Self {
        /// The waiting count, given back however the wait ends.
        struct Waiting<'a>(&'a Writer, bool);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                if !self.1 {
                    // Gone while waiting: a holder may have left the batch open for this
                    // writer; the flush commits it. Spawned before the count drops, so the
                    // batch always has a writer to come.
                    spawn_flush(self.0);
                }
                self.0.shared.waiting.fetch_sub(1, Ordering::SeqCst);
            }
        }
        writer.shared.waiting.fetch_add(1, Ordering::SeqCst);
        let mut waiting = Waiting(writer, false);
        let guard = Arc::clone(&writer.shared.state).lock_owned().await;
        waiting.1 = true;
        drop(waiting);
        Self {
            guard: Some(guard),
            writer: writer.clone(),
        }
    }

    fn state(&mut self) -> &mut State {
        match &mut self.guard {
            Some(guard) => guard,
            // `guard` is taken only by `release`, which consumes the value, and by `drop`.
            None => unreachable!("a released lock is not used"),
        }
    }

    /// The lock, for the holder to hand on itself.
    fn release(mut self) -> OwnedMutexGuard<State> {
        match self.guard.take() {
            Some(guard) => guard,
            None => unreachable!("the lock is released once"),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            drop(guard);
            spawn_flush(&self.writer);
        }
    }
}

fn spawn_flush(writer: &Writer) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(writer.clone().flush());
        }
        Err(_) => tracing::warn!("a write was dropped outside the runtime"),
    }
}

/// Opens the writer's rusqlite connection to `path`, set as the sqlx one is: `synchronous=FULL`
/// (a committed coin movement survives power loss), foreign keys on, the savepoints' journal in
/// memory (see [`Writer::open`]), and `busy_timeout` for another process's lock.
///
/// # Errors
/// [`StorageError::Unavailable`] when the file cannot be opened or set.
fn open_raw(path: &Path, busy_timeout: Duration) -> Result<rusqlite::Connection, StorageError> {
    let conn = super::raw::open(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE,
        busy_timeout,
    )?;
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
         PRAGMA temp_store = MEMORY;",
    )?;
    // A round runs about a dozen statements, a campaign grant or an action a few more.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

#[cfg(test)]
mod tests;
