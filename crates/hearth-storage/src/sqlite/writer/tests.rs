//! The writer on its own: batching, a failing write inside a batch, an abandoned write.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};

use super::Writer;

struct Fixture {
    _dir: tempfile::TempDir,
    writer: Writer,
    reader: SqlitePool,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let options =
        SqliteConnectOptions::from_str(&format!("sqlite://{}", dir.path().join("w.db").display()))
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
    let reader = SqlitePool::connect_with(options.clone()).await.unwrap();
    let writer = Writer::open(&options, Duration::from_secs(5))
        .await
        .unwrap();
    sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT NOT NULL)")
        .execute(&reader)
        .await
        .unwrap();
    Fixture {
        _dir: dir,
        writer,
        reader,
    }
}

async fn rows(pool: &SqlitePool) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT id, who FROM t ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// A write that has inserted row 1 (`first`) and holds the writer's lock until committed.
async fn first_write(writer: &Writer) -> super::WriteTx {
    let mut first = writer.begin().await.unwrap();
    sqlx::query("INSERT INTO t (id, who) VALUES (1, 'first')")
        .execute(&mut *first)
        .await
        .unwrap();
    first
}

/// Waits until `n` tasks are queued for the writer's lock.
async fn until_waiting(writer: &Writer, n: usize) {
    for _ in 0..500 {
        if writer.shared.waiting.load(Ordering::SeqCst) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("the writers never queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_queued_behind_one_are_committed_together_and_a_failing_one_alone_is_undone() {
    let f = fixture().await;
    // The first write holds the lock while the others queue behind it.
    let first = first_write(&f.writer).await;
    let mut tasks = Vec::new();
    for id in 2..=6_i64 {
        let writer = f.writer.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = writer.begin().await?;
            sqlx::query("INSERT INTO t (id, who) VALUES (?1, 'queued')")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if id == 4 {
                // A write that fails half-way: its first row is in, its second is refused.
                sqlx::query("INSERT INTO t (id, who) VALUES (1, 'duplicate')")
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        }));
    }
    until_waiting(&f.writer, 5).await;
    let committing = tokio::spawn(first.commit());
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    committing.await.unwrap().unwrap();

    assert!(results[2].is_err(), "the duplicate key is refused");
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        4,
        "{results:?}"
    );
    assert_eq!(
        rows(&f.reader).await,
        vec![
            (1, "first".to_owned()),
            (2, "queued".to_owned()),
            (3, "queued".to_owned()),
            (5, "queued".to_owned()),
            (6, "queued".to_owned()),
        ],
        "everything but the failing write is durable, and nothing of it"
    );
    let stats = f.writer.stats();
    assert_eq!(stats.writes, 5, "{stats:?}");
    assert_eq!(stats.commits, 1, "one commit carried the batch: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_caller_goes_away_is_undone_and_the_batch_still_commits() {
    let f = fixture().await;
    let first = first_write(&f.writer).await;
    let writer = f.writer.clone();
    let (inserted, on_insert) = tokio::sync::oneshot::channel();
    let abandoned = tokio::spawn(async move {
        let mut tx = writer.begin().await.unwrap();
        sqlx::query("INSERT INTO t (id, who) VALUES (2, 'abandoned')")
            .execute(&mut *tx)
            .await
            .unwrap();
        inserted.send(()).unwrap();
        std::future::pending::<()>().await;
        drop(tx);
    });
    until_waiting(&f.writer, 1).await;
    // The first write leaves the transaction open for the abandoned one, which queued.
    let committing = tokio::spawn(first.commit());
    on_insert.await.unwrap();
    // A later write queues behind the abandoned one, which holds the lock.
    let writer = f.writer.clone();
    let later = tokio::spawn(async move {
        let mut tx = writer.begin().await?;
        sqlx::query("INSERT INTO t (id, who) VALUES (3, 'later')")
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    });
    until_waiting(&f.writer, 1).await;
    abandoned.abort();
    assert!(abandoned.await.unwrap_err().is_cancelled());
    committing.await.unwrap().unwrap();
    later.await.unwrap().unwrap();

    assert_eq!(
        rows(&f.reader).await,
        vec![(1, "first".to_owned()), (3, "later".to_owned())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_write_commits_at_once_and_a_dropped_one_leaves_nothing() {
    let f = fixture().await;
    let mut tx = f.writer.begin().await.unwrap();
    sqlx::query("INSERT INTO t (id, who) VALUES (1, 'kept')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = f.writer.begin().await.unwrap();
    sqlx::query("INSERT INTO t (id, who) VALUES (2, 'dropped')")
        .execute(&mut *tx)
        .await
        .unwrap();
    drop(tx);
    // The dropped write's flush runs in a task; the next write queues behind it.
    let tx = f.writer.begin().await.unwrap();
    tx.commit().await.unwrap();

    assert_eq!(rows(&f.reader).await, vec![(1, "kept".to_owned())]);
}

/// Inserts row `id` through [`Writer::write`], then fails when `fail` says so.
async fn write_row(
    writer: &Writer,
    id: i64,
    who: &'static str,
    fail: bool,
) -> Result<i64, crate::StorageError> {
    writer
        .write(move |conn| {
            conn.execute(
                "INSERT INTO t (id, who) VALUES (?1, ?2)",
                rusqlite::params![id, who],
            )?;
            if fail {
                return Err(crate::StorageError::Corrupt("refused half-way".into()));
            }
            Ok(id)
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronous_writes_join_the_batch_and_a_failing_one_is_undone_alone() {
    let f = fixture().await;
    // A sqlx-side write holds the lock while synchronous ones queue behind it.
    let first = first_write(&f.writer).await;
    let mut tasks = Vec::new();
    for id in 2..=6_i64 {
        let writer = f.writer.clone();
        tasks.push(tokio::spawn(async move {
            write_row(&writer, id, "queued", id == 4).await
        }));
    }
    until_waiting(&f.writer, 5).await;
    let committing = tokio::spawn(first.commit());
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    committing.await.unwrap().unwrap();

    assert!(
        matches!(results[2], Err(crate::StorageError::Corrupt(_))),
        "the write's own error comes back: {results:?}"
    );
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        4,
        "{results:?}"
    );
    assert_eq!(
        rows(&f.reader).await,
        vec![
            (1, "first".to_owned()),
            (2, "queued".to_owned()),
            (3, "queued".to_owned()),
            (5, "queued".to_owned()),
            (6, "queued".to_owned()),
        ],
    );
    let stats = f.writer.stats();
    assert_eq!(stats.writes, 5, "{stats:?}");
    // The synchronous writes run on the writer's other connection: they commit the sqlx
    // write's batch before they begin, then one commit carries the four of them.
    assert_eq!(stats.commits, 2, "{stats:?}");

    // A refused statement is the storage error sqlx would give, and undoes its write.
    let duplicate = write_row(&f.writer, 1, "duplicate", false).await;
    assert!(
        matches!(&duplicate, Err(crate::StorageError::Conflict { constraint }) if constraint == "t.id"),
        "{duplicate:?}"
    );
    assert_eq!(write_row(&f.writer, 7, "alone", false).await.unwrap(), 7);
    assert_eq!(rows(&f.reader).await.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronous_write_gone_while_queued_or_panicking_leaves_the_batch_to_commit() {
    let f = fixture().await;
    let first = first_write(&f.writer).await;
    // Queued behind `first`, then cancelled before its turn: `first` left the batch open for
    // it, and its flush commits `first`.
    let writer = f.writer.clone();
    let gone = tokio::spawn(async move { write_row(&writer, 2, "gone", false).await });
    until_waiting(&f.writer, 1).await;
    let committing = tokio::spawn(first.commit());
    gone.abort();
    let _ = gone.await;
    committing.await.unwrap().unwrap();

    // A write that panics half-way: its row is rolled back by the next holder.
    let writer = f.writer.clone();
    let panicked = tokio::spawn(async move {
        writer
            .write(|conn| -> Result<(), crate::StorageError> {
                conn.execute("INSERT INTO t (id, who) VALUES (3, 'panicked')", [])?;
                panic!("a bug in the middle of a write");
            })
            .await
    });
    assert!(panicked.await.unwrap_err().is_panic());
    assert_eq!(write_row(&f.writer, 4, "after", false).await.unwrap(), 4);

    let kept = rows(&f.reader).await;
    assert!(kept.contains(&(1, "first".to_owned())), "{kept:?}");
    assert!(kept.contains(&(4, "after".to_owned())), "{kept:?}");
    assert!(!kept.iter().any(|(id, _)| *id == 3), "{kept:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_keeps_savepoints_in_memory_and_its_wal_bounded_under_reads() {
    let f = fixture().await;
    let mut tx = f.writer.begin().await.unwrap();
    let temp_store: i64 = sqlx::query_scalar("PRAGMA temp_store")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let autocheckpoint: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        (temp_store, autocheckpoint),
        (2, 1_000),
        "MEMORY, and SQLite's checkpoints"
    );

    // The rusqlite connection is set the same way, and as durable as the pool's.
    let raw = f
        .writer
        .write(|conn| {
            let pragma = |name: &str| -> rusqlite::Result<i64> {
                conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
            };
            Ok([
                pragma("temp_store")?,
                pragma("wal_autocheckpoint")?,
                pragma("synchronous")?,
                pragma("foreign_keys")?,
                pragma("busy_timeout")?,
            ])
        })
        .await
        .unwrap();
    assert_eq!(
        raw,
        [2, 1_000, 2, 1, 5_000],
        "MEMORY, checkpoints, FULL, keys, 5 s"
    );

    // 4,000 writes of a page each, 16 at a time, with readers reading all along: without
    // checkpoints that start the WAL over, it would hold 4,000 pages and more.
    let page: &'static str = Box::leak("p".repeat(3_000).into_boxed_str());
    let reading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (pool, reading) = (f.reader.clone(), std::sync::Arc::clone(&reading));
        readers.push(tokio::spawn(async move {
            while reading.load(Ordering::Relaxed) {
                // Point reads, as the gateway's are (a scan of the growing table would hold
                // its snapshot for longer than a checkpoint waits).
                let _: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM t")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            }
        }));
    }
    let mut writers = Vec::new();
    for lane in 0..16_i64 {
        let writer = f.writer.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..250_i64 {
                write_row(&writer, 10 + lane * 1_000 + i, page, false)
                    .await
                    .unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    reading.store(false, Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
    assert_eq!(rows(&f.reader).await.len(), 4_000);
    let wal = std::fs::metadata(f._dir.path().join("w.db-wal"))
        .unwrap()
        .len();
    // Unbounded, the 4,000 writes leave about 12,000 frames (50 MB); started over every 32
    // commits, 2,000–4,300 frames were seen, depending on how the writes fell into batches.
    assert!(
        wal < 6_000 * 4_120,
        "the WAL is started over after checkpoints: {wal} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_writes_on_both_connections_all_finish_and_keep_exactly_the_kept_ones() {
    let f = fixture().await;
    let mut tasks = Vec::new();
    for id in 1..=400_i64 {
        let writer = f.writer.clone();
        // Every third write is a sqlx one, every seventh fails, and every eleventh caller
        // goes away at once (at whatever step its write had reached).
        let task = tokio::spawn(async move {
            if id % 3 == 0 {
                let mut tx = writer.begin().await?;
                sqlx::query("INSERT INTO t (id, who) VALUES (?1, 'sqlx')")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if id % 7 == 0 {
                    return Err(crate::StorageError::Corrupt("refused".into()));
                }
                tx.commit().await.map(|()| id)
            } else {
                write_row(&writer, id, "raw", id % 7 == 0).await
            }
        });
        if id % 11 == 0 {
            task.abort();
        }
        tasks.push(task);
    }
    let finished = tokio::time::timeout(Duration::from_secs(60), async {
        let mut kept = Vec::new();
        for task in tasks {
            if let Ok(Ok(id)) = task.await {
                kept.push(id);
            }
        }
        kept
    })
    .await
    .expect("every write finishes (no write waits forever)");

    let stored: Vec<i64> = rows(&f.reader)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert!(
        finished.iter().all(|id| stored.contains(id)),
        "every write answered Ok is stored"
    );
    assert!(
        stored.iter().all(|id| id % 7 != 0),
        "no refused write left a row: {stored:?}"
    );
    assert!(finished.len() > 250, "{}", finished.len());
    // A write whose caller went away may still have committed; nothing else is there.
    assert!(
        stored
            .iter()
            .all(|id| finished.contains(id) || id % 11 == 0),
        "{stored:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waits_out_another_process_holding_the_file_without_blocking_the_runtime() {
    let f = fixture().await;
    // Opens the rusqlite connection (and leaves no batch open).
    write_row(&f.writer, 1, "before", false).await.unwrap();
    // Another process's writer, as the worker's would be: it holds the file's write lock.
    let mut other = f.reader.acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *other)
        .await
        .unwrap();
    let writer = f.writer.clone();
    let waiting = tokio::spawn(async move { write_row(&writer, 2, "after", false).await });
    // The runtime keeps serving while the write waits for the lock.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !waiting.is_finished(),
        "the write waits for the other writer"
    );
    sqlx::query("COMMIT").execute(&mut *other).await.unwrap();
    assert_eq!(waiting.await.unwrap().unwrap(), 2);
    assert_eq!(rows(&f.reader).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_read_does_not_stall_the_writer_at_its_wal_restarts() {
    let f = fixture().await;
    // A report holding a snapshot open across many commits: every `RESTART` checkpoint
    // meanwhile finds it and cannot finish.
    let mut report = f.reader.acquire().await.unwrap();
    sqlx::query("BEGIN").execute(&mut *report).await.unwrap();
    let _: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(&mut *report)
        .await
        .unwrap();
    // Three restarts' worth of lone commits. Waiting out the 5 s busy timeout at each would
    // take 15 s; giving up after a few milliseconds takes well under one.
    let writes = async {
        for id in 1..=i64::try_from(3 * super::WAL_RESTART_EVERY).unwrap() {
            write_row(&f.writer, id, "during the report", false)
                .await
                .unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(4), writes)
        .await
        .expect("the writer gives up on a checkpoint a reader blocks, not on its writes");
    sqlx::query("COMMIT").execute(&mut *report).await.unwrap();
    // The busy timeout is back for the writes that follow.
    let busy = f
        .writer
        .write(|conn| Ok(conn.query_row("PRAGMA busy_timeout", [], |row| row.get::<_, i64>(0))?))
        .await
        .unwrap();
    assert_eq!(busy, 5_000);
    assert_eq!(rows(&f.reader).await.len(), 96);
}
