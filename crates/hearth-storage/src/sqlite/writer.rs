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
//! Two ways in. [`Writer::begin`] gives a [`WriteTx`] whose statements are sqlx queries, each
//! one a round trip to the connection's sqlx worker thread and back. [`Writer::write`] runs a
//! whole write as one synchronous closure on the calling thread, on the same connection lent by
//! sqlx (`lock_handle`) and wrapped as a rusqlite connection: one round trip per write, however
//! many statements it runs, so the lock is held for microseconds, not for a dozen thread hops.
//! The money paths (rounds) take the second way; `BEGIN IMMEDIATE`, which may wait in SQLite's
//! busy handler for another process, and `COMMIT`, which waits for the disk, stay on sqlx's
//! thread so that neither blocks the runtime.
//!
//! Reads do not come here: they use the pool's connections and, in WAL mode, run beside the
//! writer. Other processes on the same file (the worker) still meet this writer through SQLite's
//! lock and busy handler.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use sqlx::ConnectOptions;
use sqlx::SqliteConnection;
use sqlx::sqlite::{LockedSqliteHandle, SqliteConnectOptions, SqlitePool};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use crate::StorageError;

/// The most writes one commit carries; the writers after them wait for the next.
const MAX_BATCH: usize = 64;

/// A checkpoint (the WAL's pages copied into the database file) is started after this many
/// commits, or after the first commit once [`CHECKPOINT_INTERVAL`] has passed since the last.
const CHECKPOINT_EVERY: u64 = 64;
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

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
    /// Where checkpoints run: the pool, beside the writer (see [`Writer::checkpoint_soon`]).
    pool: SqlitePool,
    /// A checkpoint is running; commits since the last one started, and when it started.
    checkpointing: AtomicBool,
    since_checkpoint: AtomicU64,
    last_checkpoint: std::sync::Mutex<Instant>,
}

/// The writer's connection and what is open on it.
struct State {
    /// `conn`'s handle as a rusqlite connection, made on the first [`Writer::write`] and used
    /// only while sqlx lends the handle; it keeps that path's prepared statements. Finalized
    /// in `Drop`, before `conn` closes the handle.
    raw: Option<rusqlite::Connection>,
    conn: SqliteConnection,
    /// A transaction (`BEGIN IMMEDIATE`) is open and holds the writes in `members`.
    open: bool,
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
    /// Opens the writer's own connection with `options` (the pool's: WAL, `synchronous=FULL`,
    /// the busy timeout for other processes), with two settings of its own:
    ///
    /// - `temp_store=MEMORY`: each write's savepoint keeps the pages it changes in a
    ///   sub-journal, which lasts as long as the batch's transaction; past 64 KiB SQLite
    ///   spills it to a temporary file, a `pwrite` per page (14 % of the gateway's CPU under
    ///   spins). In memory it is bounded by the batch: at most [`MAX_BATCH`] writes.
    /// - `wal_autocheckpoint=0`: the commit that pushes the WAL past 1,000 pages no longer
    ///   copies it into the database file while every queued writer waits on the lock; the
    ///   writer starts a passive checkpoint on `pool` after answering instead.
    pub(crate) async fn open(
        options: &SqliteConnectOptions,
        pool: SqlitePool,
    ) -> Result<Self, StorageError> {
        let conn = options
            .clone()
            .pragma("temp_store", "MEMORY")
            .pragma("wal_autocheckpoint", "0")
            .connect()
            .await?;
        Ok(Self {
            shared: Arc::new(Shared {
                state: Arc::new(Mutex::new(State {
                    raw: None,
                    conn,
                    open: false,
                    abandoned: false,
                    members: Vec::new(),
                    writes: 0,
                })),
                waiting: AtomicUsize::new(0),
                commits: AtomicU64::new(0),
                writes: AtomicU64::new(0),
                pool,
                checkpointing: AtomicBool::new(false),
                since_checkpoint: AtomicU64::new(0),
                last_checkpoint: std::sync::Mutex::new(Instant::now()),
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
            writer.settle(&mut guard).await;
            if !guard.open {
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut guard.conn)
                    .await?;
                guard.open = true;
            }
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
    /// calling thread, with the connection lent by sqlx. Returns `work`'s value once the commit
    /// carrying it is durable; when `work` fails, its statements are undone and its error
    /// returned at once, and the other writes of the batch are left alone.
    ///
    /// `work` runs to its end without yielding, so a caller that goes away can only do so
    /// while waiting for the lock, the transaction's `BEGIN` (run in a task of its own), the
    /// handle or the commit, and never leaves a write half-done.
    ///
    /// # Errors
    /// `work`'s error; [`StorageError::Unavailable`] when the transaction could not be begun,
    /// the handle lent, or the commit made (then nothing of this write took effect).
    pub(crate) async fn write<R>(
        &self,
        work: impl FnOnce(&rusqlite::Connection) -> Result<R, StorageError>,
    ) -> Result<R, StorageError> {
        let mut held = Held::new(self).await;
        if held.state().abandoned || !held.state().open {
            // In a task of its own: a statement cut short by a caller going away could run
            // without `open` recording it. Should the caller go, the task's `Held` still
            // hands the turn on when it drops.
            let writer = self.clone();
            held = tokio::spawn(async move {
                let mut held = held;
                let state = held.state();
                writer.settle(state).await;
                if !state.open {
                    sqlx::query("BEGIN IMMEDIATE")
                        .execute(&mut state.conn)
                        .await?;
                    state.open = true;
                }
                Ok::<_, StorageError>(held)
            })
            .await
            .map_err(|_| StorageError::Unavailable(sqlx::Error::WorkerCrashed))??;
        }
        let state = held.state();
        let mut lent = state.conn.lock_handle().await?;
        let raw = match &mut state.raw {
            Some(raw) => raw,
            empty => empty.insert(lend(&mut lent)?),
        };
        // Set before the savepoint opens: should `work` panic, the next holder rolls it back.
        state.abandoned = true;
        let (value, ended) = in_savepoint(raw, work);
        // Ended one way or the other; a broken one goes with the whole transaction below.
        state.abandoned = false;
        drop(lent);
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

    /// Rolls back a savepoint its holder abandoned; if that fails, the whole transaction.
    async fn settle(&self, state: &mut State) {
        if !state.abandoned {
            return;
        }
        let undone = async {
            sqlx::query("ROLLBACK TO hearth_write")
                .execute(&mut state.conn)
                .await?;
            sqlx::query("RELEASE hearth_write")
                .execute(&mut state.conn)
                .await
        }
        .await;
        state.abandoned = false;
        if let Err(error) = undone {
            tracing::warn!(%error, "rolling back an abandoned write failed; the batch is lost");
            self.abort(state, &error.to_string()).await;
        }
    }

    /// Rolls the open transaction back and fails the writes waiting for it.
    async fn abort(&self, state: &mut State, why: &str) {
        if state.open {
            // It may be gone already (SQLite rolls back by itself on some errors).
            let _ = sqlx::query("ROLLBACK").execute(&mut state.conn).await;
        }
        state.open = false;
        state.writes = 0;
        for member in state.members.drain(..) {
            let _ = member.send(Err(why.to_owned()));
        }
    }

    /// Commits the open transaction now, if nobody is waiting to join it or it is full, and
    /// answers its writes. Returns whether it committed (or found nothing to commit).
    async fn commit_if_last(&self, state: &mut State) -> bool {
        if !state.open {
            return true;
        }
        if self.shared.waiting.load(Ordering::SeqCst) > 0 && state.writes < MAX_BATCH {
            return false;
        }
        let outcome = match sqlx::query("COMMIT").execute(&mut state.conn).await {
            Ok(_) => {
                self.shared.commits.fetch_add(1, Ordering::Relaxed);
                self.shared
                    .writes
                    .fetch_add(u64::try_from(state.writes).unwrap_or(0), Ordering::Relaxed);
                Ok(())
            }
            Err(error) => Err(error.to_string()),
        };
        match outcome {
            Ok(()) => {
                state.open = false;
                state.writes = 0;
                for member in state.members.drain(..) {
                    let _ = member.send(Ok(()));
                }
                self.checkpoint_soon();
            }
            Err(why) => {
                tracing::warn!(error = %why, writes = state.writes, "a group commit failed");
                self.abort(state, &why).await;
            }
        }
        true
    }

    /// Starts a passive checkpoint on the pool when one is due and none is running. Passive:
    /// it copies what it can without waiting for readers or writers, so the writer carries
    /// on meanwhile; the WAL is reused from its start once a checkpoint has copied all of it.
    fn checkpoint_soon(&self) {
        let commits = self.shared.since_checkpoint.fetch_add(1, Ordering::Relaxed) + 1;
        let last = *self
            .shared
            .last_checkpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if commits < CHECKPOINT_EVERY && last.elapsed() < CHECKPOINT_INTERVAL {
            return;
        }
        if self.shared.checkpointing.swap(true, Ordering::SeqCst) {
            return;
        }
        self.shared.since_checkpoint.store(0, Ordering::Relaxed);
        *self
            .shared
            .last_checkpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&shared.pool)
                .await
            {
                tracing::warn!(%error, "a WAL checkpoint failed; the next commit retries");
            }
            shared.checkpointing.store(false, Ordering::SeqCst);
        });
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

/// The handle sqlx lends, as a rusqlite connection that does not own it.
///
/// # Errors
/// rusqlite's, should it refuse the handle.
#[allow(
    unsafe_code,
    reason = "wrapping the handle sqlx lends; see the safety argument"
)]
fn lend(lent: &mut LockedSqliteHandle<'_>) -> Result<rusqlite::Connection, StorageError> {
    // SAFETY: the pointer is the live handle of the writer's sqlx connection, which outlives
    // the wrapper: the wrapper sits in `State::raw` beside that connection and is dropped
    // first (`State`'s `Drop`). `from_handle` does not take ownership, so dropping the wrapper
    // does not close the handle; it finalizes only the statements the wrapper prepared. The
    // wrapper is used only while sqlx lends the handle (a `LockedSqliteHandle` is alive), so
    // sqlx's worker thread, the handle's only other user, is not inside SQLite meanwhile.
    let raw = unsafe { rusqlite::Connection::from_handle(lent.as_raw_handle().as_ptr()) }?;
    Ok(raw)
}

impl Drop for State {
    fn drop(&mut self) {
        // The rusqlite wrapper's statements are finalized before sqlx closes the handle (a
        // close with statements left would fail), and under the lend, so that sqlx's worker
        // thread is not in SQLite meanwhile. If the worker is gone, so is its use of the
        // handle.
        if let Some(raw) = self.raw.take() {
            let lent = futures_executor::block_on(self.conn.lock_handle());
            drop(raw);
            drop(lent);
        }
    }
}

#[cfg(test)]
mod tests;
