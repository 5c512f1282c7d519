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
    let writer = Writer::open(&options).await.unwrap();
    let reader = SqlitePool::connect_with(options).await.unwrap();
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
    let mut first = f.writer.begin().await.unwrap();
    sqlx::query("INSERT INTO t (id, who) VALUES (1, 'first')")
        .execute(&mut *first)
        .await
        .unwrap();
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
    let mut first = f.writer.begin().await.unwrap();
    sqlx::query("INSERT INTO t (id, who) VALUES (1, 'first')")
        .execute(&mut *first)
        .await
        .unwrap();
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
    let writer = f.writer.clone();
    let later = tokio::spawn(async move {
        until_waiting(&writer, 1).await;
        let mut tx = writer.begin().await?;
        sqlx::query("INSERT INTO t (id, who) VALUES (3, 'later')")
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    });
    until_waiting(&f.writer, 1).await;
    // The first write leaves the transaction open for the abandoned one, which queued.
    let committing = tokio::spawn(first.commit());
    on_insert.await.unwrap();
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
async fn a_lone_write_commits_at_once_and_a_rolled_back_one_leaves_nothing() {
    let f = fixture().await;
    let mut tx = f.writer.begin().await.unwrap();
    sqlx::query("INSERT INTO t (id, who) VALUES (1, 'kept')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = f.writer.begin().await.unwrap();
    sqlx::query("INSERT INTO t (id, who) VALUES (2, 'undone')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let mut tx = f.writer.begin().await.unwrap();
    sqlx::query("INSERT INTO t (id, who) VALUES (3, 'dropped')")
        .execute(&mut *tx)
        .await
        .unwrap();
    drop(tx);
    // The dropped write's flush runs in a task; the next write queues behind it.
    let tx = f.writer.begin().await.unwrap();
    tx.commit().await.unwrap();

    assert_eq!(rows(&f.reader).await, vec![(1, "kept".to_owned())]);
}
