//! Backups: a backup is written, restored into a new database (PostgreSQL: a scratch
//! database through `pg_restore`; SQLite: the copy opened on its own) and every wallet
//! reconciled there; a backup whose restored copy does not reconcile is refused and removed.

use hearth_storage::BackupError;
use hearth_test_support::{TestDb, backend_suite, new_user};
use time::OffsetDateTime;

backend_suite!(
    a_backup_restores_into_a_new_database_and_reconciles,
    a_backup_that_does_not_reconcile_is_refused_and_removed,
);

fn at() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap()
}

async fn a_backup_restores_into_a_new_database_and_reconciles(t: &TestDb) {
    t.db.create_user(new_user("Saver", 500)).await.unwrap();
    t.db.create_user(new_user("Spender", 0)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report = t.db.backup(dir.path(), at()).await.unwrap();
    assert_eq!(report.restored.wallets, 2, "every wallet was restored");
    assert!(report.restored.mismatches.is_empty());
    let name = report
        .path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name == "hearth-20300317T174640Z.dump" || name == "hearth-20300317T174640Z.sqlite3",
        "{name}"
    );
    assert_eq!(std::fs::metadata(&report.path).unwrap().len(), report.bytes);
    assert!(report.bytes > 0);
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 1, "no partial file is left behind");
}

async fn a_backup_that_does_not_reconcile_is_refused_and_removed(t: &TestDb) {
    t.db.create_user(new_user("Tampered", 250)).await.unwrap();
    t.execute_raw("UPDATE wallets SET balance = 999")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let refused = t.db.backup(dir.path(), at()).await;
    assert!(
        matches!(&refused, Err(BackupError::Verification(why)) if why.contains("1 of 1")),
        "{refused:?}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
