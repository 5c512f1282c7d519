//! The mail that accounts cause: the welcome mail with its verification token (written with
//! the user), verification, login alerts from new addresses, and the clean-up of old tokens.

use std::collections::HashMap;

use hearth_storage::jobs::EMAIL_JOB_KIND;
use hearth_storage::{JobState, LoginAlert, NewEmail, NewVerification};
use hearth_test_support::{TestDb, backend_suite, new_user};
use time::{Duration, OffsetDateTime};

backend_suite!(
    a_welcome_mail_is_written_with_the_user_and_its_token_verifies_once,
    an_expired_verification_token_verifies_nothing,
    a_login_from_a_new_address_queues_one_alert,
    expired_tokens_are_purged,
    a_profile_is_the_user_with_its_verification_state_in_one_read,
);

fn mail(to: &str, subject: &str) -> NewEmail {
    NewEmail {
        to: to.to_owned(),
        subject: subject.to_owned(),
        body: format!("{subject} body"),
        html: Some(format!("<p>{subject}</p>")),
    }
}

fn welcome(to: &str, hash: &str, expires_at: OffsetDateTime) -> NewVerification {
    NewVerification {
        token_hash: hash.to_owned(),
        expires_at,
        email: mail(to, "Welcome"),
        trace_context: HashMap::new(),
    }
}

async fn email_jobs(t: &TestDb) -> usize {
    t.db.jobs_in_state(JobState::Queued, 100)
        .await
        .unwrap()
        .iter()
        .filter(|j| j.kind == EMAIL_JOB_KIND)
        .count()
}

async fn a_welcome_mail_is_written_with_the_user_and_its_token_verifies_once(t: &TestDb) {
    let mut new = new_user("Welcomed", 0);
    new.welcome = Some(welcome(
        &new.email,
        "verify-1",
        OffsetDateTime::now_utc() + Duration::days(1),
    ));
    let user = t.db.create_user(new).await.unwrap();
    let outbox = t.db.pending_emails(10).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].subject, "Welcome");
    assert_eq!(outbox[0].html_body.as_deref(), Some("<p>Welcome</p>"));
    assert_eq!(email_jobs(t).await, 1);
    assert!(!t.db.email_verified(user.id).await.unwrap());

    let now = OffsetDateTime::now_utc();
    assert_eq!(t.db.verify_email("unknown", now).await.unwrap(), None);
    assert_eq!(
        t.db.verify_email("verify-1", now).await.unwrap(),
        Some(user.id)
    );
    assert!(t.db.email_verified(user.id).await.unwrap());
    assert_eq!(
        t.db.verify_email("verify-1", now).await.unwrap(),
        None,
        "a token works once"
    );
    assert!(t.db.email_verified(uuid::Uuid::now_v7()).await.is_err());

    // A user created with a taken name writes no mail either.
    let mut twin = new_user("Welcomed", 0);
    twin.welcome = Some(welcome(&twin.email, "verify-2", now + Duration::days(1)));
    assert!(t.db.create_user(twin).await.is_err());
    assert_eq!(email_jobs(t).await, 1);
}

async fn an_expired_verification_token_verifies_nothing(t: &TestDb) {
    let mut new = new_user("Late", 0);
    let now = OffsetDateTime::now_utc();
    new.welcome = Some(welcome(&new.email, "late", now - Duration::seconds(1)));
    let user = t.db.create_user(new).await.unwrap();
    assert_eq!(t.db.verify_email("late", now).await.unwrap(), None);
    assert!(!t.db.email_verified(user.id).await.unwrap());
}

async fn a_login_from_a_new_address_queues_one_alert(t: &TestDb) {
    let user = t.db.create_user(new_user("Traveller", 0)).await.unwrap();
    let alert = || LoginAlert {
        email: mail(&user.email, "New sign-in"),
        trace_context: HashMap::new(),
    };
    assert!(
        !t.db
            .record_login_address(user.id, "192.0.2.1", alert())
            .await
            .unwrap(),
        "the first login sets the baseline"
    );
    assert!(
        !t.db
            .record_login_address(user.id, "192.0.2.1", alert())
            .await
            .unwrap()
    );
    assert_eq!(email_jobs(t).await, 0);
    assert!(
        t.db.record_login_address(user.id, "198.51.100.7", alert())
            .await
            .unwrap(),
        "a new address alerts"
    );
    assert!(
        !t.db
            .record_login_address(user.id, "198.51.100.7", alert())
            .await
            .unwrap(),
        "once"
    );
    assert_eq!(email_jobs(t).await, 1);
    let outbox = t.db.pending_emails(10).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].subject, "New sign-in");
}

async fn expired_tokens_are_purged(t: &TestDb) {
    let now = OffsetDateTime::now_utc();
    let mut new = new_user("Purged", 0);
    new.welcome = Some(welcome(&new.email, "old", now - Duration::days(2)));
    t.db.create_user(new).await.unwrap();
    let mut fresh = new_user("Fresh", 0);
    fresh.welcome = Some(welcome(&fresh.email, "fresh", now + Duration::days(2)));
    let fresh = t.db.create_user(fresh).await.unwrap();
    assert_eq!(t.db.purge_expired_tokens(now).await.unwrap(), 1);
    assert_eq!(t.db.purge_expired_tokens(now).await.unwrap(), 0);
    assert_eq!(
        t.db.verify_email("fresh", now).await.unwrap(),
        Some(fresh.id)
    );
}

async fn a_profile_is_the_user_with_its_verification_state_in_one_read(t: &TestDb) {
    let mut new = new_user("Profiled", 0);
    let now = OffsetDateTime::now_utc();
    new.welcome = Some(welcome(&new.email, "profile-1", now + Duration::days(1)));
    let user = t.db.create_user(new).await.unwrap();

    let before = t.db.find_profile(user.id).await.unwrap().unwrap();
    assert_eq!(before.user, user);
    assert!(!before.email_verified);
    t.db.verify_email("profile-1", now).await.unwrap();
    let after = t.db.find_profile(user.id).await.unwrap().unwrap();
    assert!(after.email_verified);
    assert_eq!(after.user, user);
    assert_eq!(t.db.find_profile(uuid::Uuid::now_v7()).await.unwrap(), None);
}
