//! The life session manager on both databases: an idle life saved, released and carried on,
//! and a life another process took over dropped without a save.

use std::time::Duration;

use hearth_app::life::Command;
use hearth_app::{Hearth, Settings};
use hearth_test_support::{TestDb, backend_suite, new_user};
use uuid::Uuid;

backend_suite!(
    an_idle_life_is_saved_released_and_carried_on_by_the_next_command,
    a_life_another_process_took_over_is_dropped_without_a_save,
);

async fn hearth(t: &TestDb, idle: u64, lease: u64) -> Hearth {
    let mut settings = Settings::default();
    settings.life.idle_timeout_secs = idle;
    settings.life.lease_secs = lease;
    settings.life.save_interval_secs = 1;
    Hearth::wire(t.db.clone(), settings, "test").await.unwrap()
}

async fn player(t: &TestDb, name: &str) -> Uuid {
    t.db.create_user(new_user(name, 0)).await.unwrap().id
}

async fn fast_life(hearth: &Hearth, user: Uuid) {
    hearth.lives.command(user, Command::Start).await.unwrap();
    hearth
        .lives
        .command(
            user,
            Command::Speed {
                ticks_per_minute: 5_000,
            },
        )
        .await
        .unwrap();
}

async fn an_idle_life_is_saved_released_and_carried_on_by_the_next_command(t: &TestDb) {
    let hearth = hearth(t, 1, 30).await;
    let user = player(t, "idler").await;
    fast_life(&hearth, user).await;
    assert_eq!(hearth.lives.live(), 1);

    // No socket and no command for the idle timeout: saved, released, unloaded.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    assert_eq!(hearth.lives.live(), 0);
    let saved = t.db.life(user).await.unwrap().unwrap();
    assert_eq!(saved.owner, None);
    assert!(saved.day > 50, "it lived at 83 days a second: {saved:?}");
    assert_eq!(saved.ticks_per_minute, 5_000);
    let shown = hearth.lives.snapshot(user).await.unwrap().unwrap();
    assert_eq!(shown.age_days, saved.day, "read from the save");

    // The next command takes it again and it carries on from the saved day.
    hearth.lives.command(user, Command::Start).await.unwrap();
    assert_eq!(hearth.lives.live(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let now = hearth.lives.snapshot(user).await.unwrap().unwrap();
    assert!(
        now.age_days > saved.day,
        "{} after {}",
        now.age_days,
        saved.day
    );
}

async fn a_life_another_process_took_over_is_dropped_without_a_save(t: &TestDb) {
    let hearth = hearth(t, 300, 1).await;
    let user = player(t, "stalled").await;
    fast_life(&hearth, user).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Another process takes the life as if this one's lease had lapsed (it stalled).
    let other = Uuid::new_v4();
    let far = i64::MAX / 2;
    let taken =
        t.db.claim_life(user, other, far, far + 1_000)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(taken.owner, Some(other));

    // Its next renewal (every third of the lease) finds out and drops the life, unsaved.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(hearth.lives.live(), 0);
    let after = t.db.life(user).await.unwrap().unwrap();
    assert_eq!(after.owner, Some(other));
    assert_eq!(after.day, taken.day, "the old driver wrote nothing more");
    assert_eq!(after.updated_at, taken.updated_at);
}
