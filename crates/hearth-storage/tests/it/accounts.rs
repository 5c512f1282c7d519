//! Account security: passwords, roles, resets with their outbox e-mail, TOTP and backup codes.

use hearth_storage::{NewEmail, NewPasswordReset, StorageError};
use hearth_test_support::{TestDb, backend_suite, new_user};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

backend_suite!(
    a_password_and_a_role_can_be_changed,
    a_reset_token_works_once_before_it_expires_and_queues_its_email,
    totp_enrolment_steps_and_backup_codes_are_single_use,
    a_reset_or_a_password_change_voids_every_outstanding_reset_token,
    totp_can_be_turned_off_and_its_backup_codes_replaced,
);

async fn a_password_and_a_role_can_be_changed(t: &TestDb) {
    let user = t.db.create_user(new_user("Changer", 0)).await.unwrap();
    t.db.set_password(user.id, "$2b$04$another").await.unwrap();
    let credentials = t.db.find_credentials("changer").await.unwrap().unwrap();
    assert_eq!(credentials.password_hash, "$2b$04$another");
    assert!(matches!(
        t.db.set_password(Uuid::now_v7(), "x").await,
        Err(StorageError::NotFound)
    ));

    let admin = t.db.set_role("CHANGER", "admin").await.unwrap();
    assert_eq!((admin.id, admin.role.as_str()), (user.id, "admin"));
    assert!(matches!(
        t.db.set_role("nobody", "admin").await,
        Err(StorageError::NotFound)
    ));
    assert!(
        t.db.set_role("changer", "emperor").await.is_err(),
        "the CHECK refuses roles"
    );
    let by_email =
        t.db.find_user_by_email("changer@example.com")
            .await
            .unwrap();
    assert_eq!(by_email.map(|u| u.id), Some(user.id));
    assert_eq!(
        t.db.find_user_by_email("nobody@example.com").await.unwrap(),
        None
    );
}

/// Stores a reset token with this hash for `user`, as the reset request does.
async fn reset_token(
    t: &TestDb,
    user: &hearth_storage::User,
    hash: &str,
    expires_at: OffsetDateTime,
) {
    t.db.create_password_reset(NewPasswordReset {
        user_id: user.id,
        token_hash: hash.to_owned(),
        expires_at,
        email: NewEmail {
            to: user.email.clone(),
            subject: "Reset".to_owned(),
            body: format!("token for {hash}"),
            html: None,
        },
        trace_context: std::collections::HashMap::new(),
    })
    .await
    .unwrap();
}

async fn a_reset_token_works_once_before_it_expires_and_queues_its_email(t: &TestDb) {
    let user = t.db.create_user(new_user("Forgetful", 0)).await.unwrap();
    let now = OffsetDateTime::now_utc();
    for (hash, expires_at) in [
        ("live", now + Duration::minutes(30)),
        ("stale", now - Duration::seconds(1)),
    ] {
        reset_token(t, &user, hash, expires_at).await;
    }
    let outbox = t.db.pending_emails(10).await.unwrap();
    assert_eq!(outbox.len(), 2);
    assert_eq!(outbox[0].to_address, "forgetful@example.com");
    assert_eq!(outbox[0].body, "token for live");

    assert_eq!(
        t.db.complete_password_reset("stale", "$2b$new", now)
            .await
            .unwrap(),
        None,
        "an expired token is refused"
    );
    assert_eq!(
        t.db.complete_password_reset("unknown", "$2b$new", now)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        t.db.complete_password_reset("live", "$2b$new", now)
            .await
            .unwrap(),
        Some(user.id)
    );
    assert_eq!(
        t.db.find_credentials("forgetful")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$2b$new"
    );
    assert_eq!(
        t.db.complete_password_reset("live", "$2b$again", now)
            .await
            .unwrap(),
        None,
        "a token works once"
    );
    assert_eq!(
        t.db.find_credentials("forgetful")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$2b$new"
    );
}

async fn totp_enrolment_steps_and_backup_codes_are_single_use(t: &TestDb) {
    let user = t.db.create_user(new_user("Careful", 0)).await.unwrap();
    let state = t.db.totp(user.id).await.unwrap();
    assert!(!state.enabled && state.secret.is_none());
    assert!(
        !t.db.enable_totp(user.id, 1, &[]).await.unwrap(),
        "nothing to enable yet"
    );

    assert!(t.db.begin_totp(user.id, "SECRETONE").await.unwrap());
    assert!(
        t.db.begin_totp(user.id, "SECRETTWO").await.unwrap(),
        "re-enrolment before confirming"
    );
    let hashes = vec!["h1".to_owned(), "h2".to_owned()];
    assert!(t.db.enable_totp(user.id, 100, &hashes).await.unwrap());
    let state = t.db.totp(user.id).await.unwrap();
    assert_eq!(
        (state.secret.as_deref(), state.enabled, state.last_step),
        (Some("SECRETTWO"), true, Some(100))
    );
    assert!(
        !t.db.begin_totp(user.id, "SECRETTHREE").await.unwrap(),
        "enabled: no silent swap"
    );
    assert!(!t.db.enable_totp(user.id, 101, &hashes).await.unwrap());

    assert!(
        !t.db.use_totp_step(user.id, 100).await.unwrap(),
        "the confirming code is spent"
    );
    assert!(t.db.use_totp_step(user.id, 101).await.unwrap());
    assert!(!t.db.use_totp_step(user.id, 101).await.unwrap());
    assert!(!t.db.use_totp_step(user.id, 99).await.unwrap());

    assert!(t.db.use_backup_code(user.id, "h1").await.unwrap());
    assert!(!t.db.use_backup_code(user.id, "h1").await.unwrap());
    assert!(!t.db.use_backup_code(user.id, "nope").await.unwrap());
    let other = t.db.create_user(new_user("Other", 0)).await.unwrap();
    assert!(
        !t.db.use_backup_code(other.id, "h2").await.unwrap(),
        "codes belong to their user"
    );
    assert!(t.db.use_backup_code(user.id, "h2").await.unwrap());
    assert!(matches!(
        t.db.totp(Uuid::now_v7()).await,
        Err(StorageError::NotFound)
    ));
}

async fn a_reset_or_a_password_change_voids_every_outstanding_reset_token(t: &TestDb) {
    let user = t.db.create_user(new_user("Twice", 0)).await.unwrap();
    let other = t.db.create_user(new_user("Bystander", 0)).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let later = now + Duration::minutes(30);
    for hash in ["first", "second"] {
        reset_token(t, &user, hash, later).await;
    }
    reset_token(t, &other, "theirs", later).await;

    assert_eq!(
        t.db.complete_password_reset("first", "$2b$one", now)
            .await
            .unwrap(),
        Some(user.id)
    );
    assert_eq!(
        t.db.complete_password_reset("second", "$2b$two", now)
            .await
            .unwrap(),
        None,
        "the reset voided the user's other outstanding token"
    );
    let hash = |name: &'static str| async move {
        t.db.find_credentials(name)
            .await
            .unwrap()
            .unwrap()
            .password_hash
    };
    assert_eq!(hash("twice").await, "$2b$one");

    reset_token(t, &user, "third", later).await;
    t.db.set_password(user.id, "$2b$changed").await.unwrap();
    assert_eq!(
        t.db.complete_password_reset("third", "$2b$three", now)
            .await
            .unwrap(),
        None,
        "the password change voided the outstanding token"
    );
    assert_eq!(hash("twice").await, "$2b$changed");

    assert_eq!(
        t.db.complete_password_reset("theirs", "$2b$mine", now)
            .await
            .unwrap(),
        Some(other.id),
        "another user's token is untouched"
    );
}

async fn totp_can_be_turned_off_and_its_backup_codes_replaced(t: &TestDb) {
    let user = t.db.create_user(new_user("Switcher", 0)).await.unwrap();
    let codes = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    assert!(
        !t.db.disable_totp(user.id).await.unwrap(),
        "nothing to disable"
    );
    assert!(
        !t.db
            .replace_backup_codes(user.id, &codes(&["x"]))
            .await
            .unwrap(),
        "no backup codes without a second factor"
    );
    assert!(!t.db.use_backup_code(user.id, "x").await.unwrap());

    assert!(t.db.begin_totp(user.id, "SECRET").await.unwrap());
    assert!(
        !t.db
            .replace_backup_codes(user.id, &codes(&["x"]))
            .await
            .unwrap(),
        "enrolment begun but not confirmed"
    );
    assert!(
        t.db.enable_totp(user.id, 7, &codes(&["old1", "old2"]))
            .await
            .unwrap()
    );
    assert!(t.db.use_backup_code(user.id, "old1").await.unwrap());
    assert!(
        t.db.replace_backup_codes(user.id, &codes(&["new1", "new2", "old1"]))
            .await
            .unwrap()
    );
    assert!(
        !t.db.use_backup_code(user.id, "old2").await.unwrap(),
        "an unused old code is void"
    );
    assert!(t.db.use_backup_code(user.id, "new1").await.unwrap());
    assert!(
        t.db.use_backup_code(user.id, "old1").await.unwrap(),
        "a re-issued hash is a fresh code"
    );

    assert!(t.db.disable_totp(user.id).await.unwrap());
    let state = t.db.totp(user.id).await.unwrap();
    assert_eq!(
        (state.secret, state.enabled, state.last_step),
        (None, false, None)
    );
    assert!(
        !t.db.use_backup_code(user.id, "new2").await.unwrap(),
        "backup codes die with the second factor"
    );
    assert!(!t.db.disable_totp(user.id).await.unwrap());

    // Enrolling again starts from nothing.
    assert!(t.db.begin_totp(user.id, "FRESH").await.unwrap());
    assert!(t.db.enable_totp(user.id, 1, &codes(&["n"])).await.unwrap());
    assert!(t.db.use_totp_step(user.id, 2).await.unwrap());
    assert!(!t.db.disable_totp(Uuid::now_v7()).await.unwrap());
}
