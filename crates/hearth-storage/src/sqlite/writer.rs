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
//! Reads do not come here: they use the pool's connections and, in WAL mode, run beside the
//! writer. Other processes on the same file (the worker) still meet this writer through SQLite's
//! lock and busy handler.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use sqlx::ConnectOptions;
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteConnectOptions;
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use crate::StorageError;

/// The most writes one commit carries; the writers after them wait for the next.
const MAX_BATCH: usize = 64;

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
}

/// The writer's connection and what is open on it.
struct State {
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
    /// the busy timeout for other processes).
    pub(crate) async fn open(options: &SqliteConnectOptions) -> Result<Self, StorageError> {
        let conn = options.connect().await?;
        Ok(Self {
            shared: Arc::new(Shared {
                state: Arc::new(Mutex::new(State {
                    conn,
                    open: false,
                    abandoned: false,
                    members: Vec::new(),
                    writes: 0,
                })),
                waiting: AtomicUsize::new(0),
                commits: AtomicU64::new(0),
                writes: AtomicU64::new(0),
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
            }
            Err(why) => {
                tracing::warn!(error = %why, writes = state.writes, "a group commit failed");
                self.abort(state, &why).await;
            }
        }
        true
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
/// [`WriteTx::commit`] keeps its writes and returns once they are durable; dropping it (or
/// [`WriteTx::rollback`]) undoes them and leaves the other writes of its batch alone.
pub(crate) struct WriteTx {
    /// `Some` until the write is finished; taken only by `finish` and `drop`.
    guard: Option<OwnedMutexGuard<State>>,
    writer: Writer,
}

impl WriteTx {
    /// Keeps this write and waits until the commit carrying it is durable.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`] when the commit failed (then nothing of this write took
    /// effect) or the release of the savepoint did.
    pub(crate) async fn commit(self) -> Result<(), StorageError> {
        self.finish(true).await
    }

    /// Undoes this write; returns after the commit of the writes it may have read from
    /// (a replayed answer is only given once what it replays is durable).
    ///
    /// # Errors
    /// As [`WriteTx::commit`].
    pub(crate) async fn rollback(self) -> Result<(), StorageError> {
        self.finish(false).await
    }

    async fn finish(mut self, keep: bool) -> Result<(), StorageError> {
        let Some(guard) = self.guard.take() else {
            return Ok(());
        };
        let writer = self.writer.clone();
        let waited = tokio::spawn(async move {
            let mut guard = guard;
            let ended = if keep {
                sqlx::query("RELEASE hearth_write")
                    .execute(&mut guard.conn)
                    .await
            } else {
                match sqlx::query("ROLLBACK TO hearth_write")
                    .execute(&mut guard.conn)
                    .await
                {
                    Ok(_) => {
                        sqlx::query("RELEASE hearth_write")
                            .execute(&mut guard.conn)
                            .await
                    }
                    Err(error) => Err(error),
                }
            };
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
            // `guard` is taken only by `finish`, which consumes the value, and by `drop`.
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

#[cfg(test)]
mod tests;
