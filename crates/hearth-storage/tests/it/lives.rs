//! Saved lives and their leases: one life per user, one owner at a time, a lapsed lease taken
//! over, writes fenced by the owner, restarts counting generations.

use hearth_storage::life::LEASED;
use hearth_storage::{LifeSave, LifeStatus, StorageError};
use hearth_test_support::{TestDb, backend_suite, new_user};
use uuid::Uuid;

backend_suite!(
    a_new_life_is_saved_with_its_lease_and_read_back,
    a_live_lease_refuses_another_owner_and_a_lapsed_one_is_taken_over,
    a_save_by_an_owner_that_lost_the_lease_writes_nothing,
    a_release_frees_the_life_for_any_owner,
    renewing_extends_only_the_leases_still_held,
    a_restart_replaces_the_life_and_counts_a_generation,
    a_restart_is_refused_while_another_owner_holds_the_lease,
);

const NOW: i64 = 1_000_000;
const LEASE: i64 = 30_000;

async fn user(t: &TestDb, name: &str) -> Uuid {
    t.db.create_user(new_user(name, 0)).await.unwrap().id
}

fn save(user: Uuid, owner: Uuid, day: u32, lease_until: Option<i64>) -> LifeSave {
    LifeSave {
        user_id: user,
        owner,
        status: LifeStatus::Running,
        ticks_per_minute: 60,
        day,
        state: format!(r#"{{"day":{day}}}"#),
        lease_until,
    }
}

async fn a_new_life_is_saved_with_its_lease_and_read_back(t: &TestDb) {
    let alice = user(t, "alice").await;
    let gateway = Uuid::now_v7();
    assert_eq!(t.db.life(alice).await.unwrap(), None);
    let created =
        t.db.create_life(save(alice, gateway, 0, Some(NOW + LEASE)), NOW)
            .await
            .unwrap();
    assert_eq!(created.generation, 1);
    assert_eq!(created.owner, Some(gateway));
    assert_eq!(created.lease_until, NOW + LEASE);
    assert_eq!(created.status, LifeStatus::Running);
    assert_eq!(created.ticks_per_minute, 60);
    assert_eq!(created.created_at, NOW);
    assert_eq!(t.db.life(alice).await.unwrap(), Some(created));
}

async fn a_live_lease_refuses_another_owner_and_a_lapsed_one_is_taken_over(t: &TestDb) {
    let alice = user(t, "alice").await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    t.db.create_life(save(alice, a, 0, Some(NOW + LEASE)), NOW)
        .await
        .unwrap();
    // Before the lease lapses, b cannot take it; a can (it already holds it).
    assert_eq!(
        t.db.claim_life(alice, b, NOW + LEASE - 1, NOW + 2 * LEASE)
            .await
            .unwrap(),
        None
    );
    let renewed =
        t.db.claim_life(alice, a, NOW + 1, NOW + 1 + LEASE)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(renewed.lease_until, NOW + 1 + LEASE);
    // Once it lapses, b takes the life over with its state.
    let taken =
        t.db.claim_life(alice, b, NOW + 2 + LEASE, NOW + 2 + 2 * LEASE)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(taken.owner, Some(b));
    assert_eq!(taken.state, r#"{"day":0}"#);
    // Nobody else's life, and no life at all, is claimed.
    let bob = user(t, "bob").await;
    assert_eq!(
        t.db.claim_life(bob, a, NOW, NOW + LEASE).await.unwrap(),
        None
    );
}

async fn a_save_by_an_owner_that_lost_the_lease_writes_nothing(t: &TestDb) {
    let alice = user(t, "alice").await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    t.db.create_life(save(alice, a, 0, Some(NOW + LEASE)), NOW)
        .await
        .unwrap();
    assert!(
        t.db.save_life(save(alice, a, 10, Some(NOW + LEASE)), NOW + 5)
            .await
            .unwrap()
    );
    t.db.claim_life(alice, b, NOW + 2 * LEASE, NOW + 3 * LEASE)
        .await
        .unwrap()
        .unwrap();
    // a stalled past its lease; its late save must not overwrite b's life.
    assert!(
        !t.db
            .save_life(save(alice, a, 99, Some(NOW + 4 * LEASE)), NOW + 2 * LEASE)
            .await
            .unwrap()
    );
    let life = t.db.life(alice).await.unwrap().unwrap();
    assert_eq!((life.day, life.owner), (10, Some(b)));
    assert_eq!(life.updated_at, NOW + 5);
}

async fn a_release_frees_the_life_for_any_owner(t: &TestDb) {
    let alice = user(t, "alice").await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    t.db.create_life(save(alice, a, 0, Some(NOW + LEASE)), NOW)
        .await
        .unwrap();
    let mut paused = save(alice, a, 7, None);
    paused.status = LifeStatus::Paused;
    paused.ticks_per_minute = 5_000;
    assert!(t.db.save_life(paused, NOW + 1).await.unwrap());
    let life = t.db.life(alice).await.unwrap().unwrap();
    assert_eq!(life.owner, None);
    assert_eq!(life.status, LifeStatus::Paused);
    assert_eq!((life.day, life.ticks_per_minute), (7, 5_000));
    // Well before the old lease would have lapsed, another owner may take it.
    let taken =
        t.db.claim_life(alice, b, NOW + 2, NOW + 2 + LEASE)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(taken.owner, Some(b));
    // And the released owner's saves no longer land.
    assert!(
        !t.db
            .save_life(save(alice, a, 8, None), NOW + 3)
            .await
            .unwrap()
    );
}

async fn renewing_extends_only_the_leases_still_held(t: &TestDb) {
    let (alice, bob, carol) = (
        user(t, "alice").await,
        user(t, "bob").await,
        user(t, "carol").await,
    );
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    for u in [alice, bob] {
        t.db.create_life(save(u, a, 0, Some(NOW + LEASE)), NOW)
            .await
            .unwrap();
    }
    t.db.create_life(save(carol, b, 0, Some(NOW + LEASE)), NOW)
        .await
        .unwrap();
    // b takes bob's life after it lapsed.
    t.db.claim_life(bob, b, NOW + LEASE + 1, NOW + 3 * LEASE)
        .await
        .unwrap()
        .unwrap();
    let mut held = t.db.renew_life_leases(a, NOW + 5 * LEASE).await.unwrap();
    held.sort();
    assert_eq!(held, vec![alice]);
    let lease = |u| async move { t.db.life(u).await.unwrap().unwrap().lease_until };
    assert_eq!(lease(alice).await, NOW + 5 * LEASE);
    assert_eq!(lease(bob).await, NOW + 3 * LEASE);
    assert_eq!(lease(carol).await, NOW + LEASE);
}

async fn a_restart_replaces_the_life_and_counts_a_generation(t: &TestDb) {
    let alice = user(t, "alice").await;
    let a = Uuid::now_v7();
    t.db.create_life(save(alice, a, 0, Some(NOW + LEASE)), NOW)
        .await
        .unwrap();
    t.db.save_life(save(alice, a, 400, Some(NOW + LEASE)), NOW + 1)
        .await
        .unwrap();
    let restarted =
        t.db.create_life(save(alice, a, 0, Some(NOW + 10 + LEASE)), NOW + 10)
            .await
            .unwrap();
    assert_eq!(restarted.generation, 2);
    assert_eq!((restarted.day, restarted.created_at), (0, NOW + 10));
}

async fn a_restart_is_refused_while_another_owner_holds_the_lease(t: &TestDb) {
    let alice = user(t, "alice").await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    t.db.create_life(save(alice, a, 3, Some(NOW + LEASE)), NOW)
        .await
        .unwrap();
    let refused =
        t.db.create_life(save(alice, b, 0, Some(NOW + 1 + LEASE)), NOW + 1)
            .await;
    assert!(
        matches!(refused, Err(StorageError::Conflict { ref constraint }) if constraint == LEASED),
        "{refused:?}"
    );
    assert_eq!(t.db.life(alice).await.unwrap().unwrap().day, 3);
    // After the lease lapses, b may restart it.
    let restarted =
        t.db.create_life(save(alice, b, 0, Some(NOW + 3 * LEASE)), NOW + 2 * LEASE)
            .await
            .unwrap();
    assert_eq!((restarted.generation, restarted.owner), (2, Some(b)));
}
