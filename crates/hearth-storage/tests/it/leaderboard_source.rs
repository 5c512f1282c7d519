//! The leaderboard source: every board computed by each database's SQL, read in one snapshot.
//! The stores and the rebuild that uses this are tested in `hearth-app`.

use hearth_domain::leaderboard::{Board, Period, Snapshot};
use hearth_storage::leaderboard::connect_source;
use hearth_test_support::{TestDb, backend_suite, new_user};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

/// Inserts a settled round at a chosen time, bypassing `play_round` (which stamps `now`).
async fn insert_round(t: &TestDb, user: Uuid, bet: i64, win: i64, at: OffsetDateTime) {
    use hearth_storage::postgres::PostgresDatabase;
    use hearth_storage::sqlite::SqliteDatabase;
    if t.db.backend() == "sqlite" {
        let db = SqliteDatabase::connect(&t.settings).await.unwrap();
        sqlx::query(
            "INSERT INTO game_rounds (id, user_id, game, bet, win, status, detail, \
             server_seed_hash, client_seed, nonce, created_at) \
             VALUES (?1, ?2, 'slots', ?3, ?4, 'settled', '{}', 'hash', 'seed', 0, ?5)",
        )
        .bind(Uuid::now_v7())
        .bind(user)
        .bind(bet)
        .bind(win)
        .bind(at)
        .execute(db.pool())
        .await
        .unwrap();
        db.pool().close().await;
    } else {
        let db = PostgresDatabase::connect(&t.settings).await.unwrap();
        sqlx::query(
            "INSERT INTO game_rounds (id, user_id, game, bet, win, status, detail, \
             server_seed_hash, client_seed, nonce, created_at) \
             VALUES ($1, $2, 'slots', $3, $4, 'settled', '{}', 'hash', 'seed', 0, $5)",
        )
        .bind(Uuid::now_v7())
        .bind(user)
        .bind(bet)
        .bind(win)
        .bind(at)
        .execute(db.pool())
        .await
        .unwrap();
        db.pool().close().await;
    }
}

async fn database_periods_are_utc_days_and_iso_weeks(t: &TestDb) {
    let user = t.db.create_user(new_user("Erin", 1_000)).await.unwrap();
    // Around the midnights starting and ending Monday 23 (2026-W48; Sunday 22 is in W47),
    // including instants inside the first second of the day (stored by SQLite as
    // `…T00:00:00.5Z`, which sorts before `…T00:00:00Z`). Hearth writes every timestamp in UTC.
    for (win, at) in [
        (700, datetime!(2026-11-22 23:59:59.999 UTC)),
        (30, datetime!(2026-11-23 00:00 UTC)),
        (40, datetime!(2026-11-23 00:00:00.5 UTC)),
        (20, datetime!(2026-11-23 23:59:59.5 UTC)),
        (900, datetime!(2026-11-24 00:00 UTC)),
        (800, datetime!(2026-11-16 00:00:00.001 UTC)), // Monday of W47
    ] {
        insert_round(t, user.id, 10, win, at).await;
    }
    let source = connect_source(&t.settings).await.unwrap();
    let score = |snapshot: &Snapshot, board, period| -> Vec<i64> {
        snapshot
            .board(board, period)
            .unwrap()
            .iter()
            .map(|s| s.score)
            .collect()
    };
    let monday = source
        .leaderboard_snapshot(datetime!(2026-11-23 12:00 UTC), 10)
        .await
        .unwrap();
    assert_eq!(score(&monday, Board::BiggestWin, Period::Daily), [40]);
    assert_eq!(
        score(&monday, Board::NetWon, Period::Daily),
        [30 + 40 + 20 - 30]
    );
    assert_eq!(score(&monday, Board::BiggestWin, Period::Weekly), [900]);
    assert_eq!(score(&monday, Board::BiggestWin, Period::AllTime), [900]);
    assert_eq!(
        score(&monday, Board::NetWon, Period::AllTime),
        [700 + 30 + 40 + 20 + 900 + 800 - 60]
    );
    let sunday = source
        .leaderboard_snapshot(datetime!(2026-11-22 00:00 UTC), 10)
        .await
        .unwrap();
    assert_eq!(score(&sunday, Board::BiggestWin, Period::Daily), [700]);
    assert_eq!(
        score(&sunday, Board::NetWon, Period::Weekly),
        [700 + 800 - 20]
    );
    // An empty period is an empty board, not a missing one.
    let later = source
        .leaderboard_snapshot(datetime!(2026-12-01 12:00 UTC), 10)
        .await
        .unwrap();
    assert_eq!(
        score(&later, Board::NetWon, Period::Daily),
        Vec::<i64>::new()
    );
    assert_eq!(score(&later, Board::Balance, Period::AllTime), [1_000]);
}

backend_suite!(database_periods_are_utc_days_and_iso_weeks);
