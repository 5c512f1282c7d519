//! Sessions over HTTP: refresh rotation and theft detection, logout, password change and
//! reset, lockout, enumeration resistance, browser mode with CSRF, TOTP, roles and ownership.

use std::time::Duration;

use hearth_auth::TotpSecret;
use hearth_test_support::{TestDb, backend_suite};
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, problem, spawn_app, spawn_app_with};

backend_suite!(
    refresh_rotates_and_a_reused_refresh_token_kills_the_session,
    logout_revokes_the_access_token_and_the_session,
    a_password_change_needs_the_old_one_and_ends_every_session,
    a_password_reset_is_accepted_for_any_address_and_works_once,
    five_failures_lock_the_account_and_the_lock_expires,
    unknown_users_and_wrong_passwords_look_the_same,
    browser_mode_sets_hardened_cookies_and_demands_csrf,
    totp_enrolment_then_login_needs_a_code_or_a_backup_code,
    totp_enrolment_and_confirmation_need_the_current_password,
    enabling_and_disabling_totp_end_the_other_sessions_but_not_the_callers,
    a_browser_session_goes_on_with_new_cookies_after_enabling_totp,
    disabling_totp_needs_the_password_and_a_code_or_a_backup_code,
    new_backup_codes_need_the_password_and_a_code_and_void_the_old_ones,
    a_reset_or_a_password_change_voids_every_outstanding_reset_code,
    admin_routes_need_the_role_and_an_allowed_address,
    another_players_resources_are_not_found,
);

async fn tokens(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn refresh(app: &TestApp, refresh_token: &str) -> reqwest::Response {
    app.post(
        "/v1/auth/refresh",
        None,
        &json!({ "refresh_token": refresh_token }),
    )
    .await
}

async fn refresh_rotates_and_a_reused_refresh_token_kills_the_session(t: &TestDb) {
    let app = spawn_app(t).await;
    app.register("Rotator").await;
    let first = tokens(app.login("rotator").await).await;
    let second = tokens(refresh(&app, first["refresh_token"].as_str().unwrap()).await).await;
    assert_ne!(first["refresh_token"], second["refresh_token"]);
    let access = second["access_token"].as_str().unwrap();
    assert_eq!(
        app.get("/v1/me", Some(access)).await.status(),
        StatusCode::OK
    );
    // The first access token stays valid until it expires (it was not stolen).
    let old_access = first["access_token"].as_str().unwrap();
    assert_eq!(
        app.get("/v1/me", Some(old_access)).await.status(),
        StatusCode::OK
    );

    // Replaying the used refresh token: refused, and the whole session dies with it.
    let replay = refresh(&app, first["refresh_token"].as_str().unwrap()).await;
    let body = problem(replay, StatusCode::UNAUTHORIZED).await;
    assert!(
        body["detail"].as_str().unwrap().contains("already used"),
        "{body}"
    );
    for token in [access, old_access] {
        problem(
            app.get("/v1/me", Some(token)).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    problem(
        refresh(&app, second["refresh_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Another session of the same user is untouched.
    let other = tokens(app.login("rotator").await).await;
    let other_access = other["access_token"].as_str().unwrap();
    assert_eq!(
        app.get("/v1/me", Some(other_access)).await.status(),
        StatusCode::OK
    );

    // A missing or wrong-type token names the problem.
    let body = problem(
        app.post("/v1/auth/refresh", None, &json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "refresh_token");
    problem(refresh(&app, other_access).await, StatusCode::UNAUTHORIZED).await;
    app.stop().await.unwrap();
}

async fn logout_revokes_the_access_token_and_the_session(t: &TestDb) {
    let app = spawn_app(t).await;
    app.register("Leaver").await;
    let session = tokens(app.login("leaver").await).await;
    let other = tokens(app.login("leaver").await).await;
    let access = session["access_token"].as_str().unwrap();
    let logout = app
        .request(Method::POST, "/v1/auth/logout", Some(access))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    problem(
        app.get("/v1/me", Some(access)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    problem(
        refresh(&app, session["refresh_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Logging out again with the dead token is a 401, not a 500.
    problem(
        app.request(Method::POST, "/v1/auth/logout", Some(access))
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // The other session lives; logging out with its refresh token in the body ends a third.
    let third = tokens(app.login("leaver").await).await;
    let other_access = other["access_token"].as_str().unwrap();
    assert_eq!(
        app.get("/v1/me", Some(other_access)).await.status(),
        StatusCode::OK
    );
    let logout = app
        .post(
            "/v1/auth/logout",
            Some(other_access),
            &json!({ "refresh_token": third["refresh_token"] }),
        )
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    problem(
        app.get("/v1/me", Some(third["access_token"].as_str().unwrap()))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    app.stop().await.unwrap();
}

async fn a_password_change_needs_the_old_one_and_ends_every_session(t: &TestDb) {
    let app = spawn_app(t).await;
    app.register("Mover").await;
    let one = tokens(app.login("mover").await).await;
    let two = tokens(app.login("mover").await).await;
    let access = one["access_token"].as_str().unwrap();
    let new_password = "N3w-Password!";

    let wrong = app
        .post(
            "/v1/auth/password",
            Some(access),
            &json!({ "old_password": "Wrong-Old-1!", "new_password": new_password }),
        )
        .await;
    let body = problem(wrong, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["errors"][0]["field"], "old_password");
    let weak = app
        .post(
            "/v1/auth/password",
            Some(access),
            &json!({ "old_password": PASSWORD, "new_password": "weak" }),
        )
        .await;
    let body = problem(weak, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["errors"][0]["field"], "new_password");
    assert!(body["password_strength"]["score"].is_number(), "{body}");

    let changed = app
        .post(
            "/v1/auth/password",
            Some(access),
            &json!({ "old_password": PASSWORD, "new_password": new_password }),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    for session in [&one, &two] {
        problem(
            app.get("/v1/me", Some(session["access_token"].as_str().unwrap()))
                .await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        problem(
            refresh(&app, session["refresh_token"].as_str().unwrap()).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    problem(app.login("mover").await, StatusCode::UNAUTHORIZED).await;
    let fresh = app
        .post(
            "/v1/auth/login",
            None,
            &json!({ "login": "mover", "password": new_password }),
        )
        .await;
    let fresh = tokens(fresh).await;
    assert_eq!(
        app.get("/v1/me", Some(fresh["access_token"].as_str().unwrap()))
            .await
            .status(),
        StatusCode::OK
    );
    app.stop().await.unwrap();
}

/// The outbox message for `to`, waiting for the reset to be queued after its 202.
async fn reset_mail(t: &TestDb, to: &str) -> Option<String> {
    for _ in 0..100 {
        let pending = t.db.pending_emails(100).await.unwrap();
        // Registration also mails (the welcome message): find the reset.
        if let Some(mail) = pending
            .into_iter()
            .find(|m| m.to_address == to && m.subject.contains("Reset"))
        {
            return Some(mail.body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

async fn a_password_reset_is_accepted_for_any_address_and_works_once(t: &TestDb) {
    let app = spawn_app(t).await;
    app.register("Forgetter").await;
    let session = tokens(app.login("forgetter").await).await;
    let known = app
        .post(
            "/v1/auth/password-reset",
            None,
            &json!({ "email": "Forgetter@Example.com" }),
        )
        .await;
    let unknown = app
        .post(
            "/v1/auth/password-reset",
            None,
            &json!({ "email": "ghost@example.com" }),
        )
        .await;
    assert_eq!(known.status(), StatusCode::ACCEPTED);
    assert_eq!(unknown.status(), StatusCode::ACCEPTED);
    assert_eq!(
        known.json::<Value>().await.unwrap(),
        unknown.json::<Value>().await.unwrap(),
        "the answers are identical"
    );
    let body = reset_mail(t, "forgetter@example.com")
        .await
        .expect("a reset e-mail");
    let token = body
        .split_whitespace()
        .find(|w| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit()))
        .expect("the token is in the e-mail");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        t.db.pending_emails(100)
            .await
            .unwrap()
            .iter()
            .all(|m| m.to_address != "ghost@example.com"),
        "nothing is sent to an address without an account"
    );

    let new_password = "Reset-Pass-42";
    let bad = app
        .post(
            "/v1/auth/password-reset/confirm",
            None,
            &json!({ "token": "0".repeat(64), "new_password": new_password }),
        )
        .await;
    assert_eq!(
        problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await["errors"][0]["field"],
        "token"
    );
    let confirm = json!({ "token": token, "new_password": new_password });
    let ok = app
        .post("/v1/auth/password-reset/confirm", None, &confirm)
        .await;
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    let again = app
        .post("/v1/auth/password-reset/confirm", None, &confirm)
        .await;
    problem(again, StatusCode::UNPROCESSABLE_ENTITY).await;
    problem(
        app.get("/v1/me", Some(session["access_token"].as_str().unwrap()))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let login = app
        .post(
            "/v1/auth/login",
            None,
            &json!({ "login": "forgetter", "password": new_password }),
        )
        .await;
    assert_eq!(login.status(), StatusCode::OK);
    app.stop().await.unwrap();
}

async fn wrong_login(app: &TestApp, login: &str) -> reqwest::Response {
    app.post(
        "/v1/auth/login",
        None,
        &json!({ "login": login, "password": "Wrong-Pass-1!" }),
    )
    .await
}

async fn five_failures_lock_the_account_and_the_lock_expires(t: &TestDb) {
    let app = spawn_app_with(t, |s| s.auth.lockout.lock_secs = 1).await;
    let session = app.player("Target").await;
    for attempt in 1..=5 {
        let response = wrong_login(&app, "target").await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
    // Locked: even the right password is refused, with Retry-After.
    let locked = app.login("target").await;
    let retry_after = locked.headers()["retry-after"].to_str().unwrap().to_owned();
    assert_eq!(retry_after, "1");
    let body = problem(locked, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(body["type"], "urn:hearth:problem:locked");
    // Nor can the lock be sidestepped by guessing through the password-change route.
    let change = app
        .post(
            "/v1/auth/password",
            Some(&session),
            &json!({ "old_password": PASSWORD, "new_password": "N3w-Password!" }),
        )
        .await;
    problem(change, StatusCode::TOO_MANY_REQUESTS).await;
    // The address is locked too: another account from here waits as well.
    app.register("Bystander").await;
    problem(app.login("bystander").await, StatusCode::TOO_MANY_REQUESTS).await;

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(app.login("target").await.status(), StatusCode::OK);
    app.stop().await.unwrap();
}

async fn unknown_users_and_wrong_passwords_look_the_same(t: &TestDb) {
    let app = spawn_app(t).await;
    app.register("Existing").await;
    let known = wrong_login(&app, "existing").await;
    let unknown = wrong_login(&app, "nonexistent").await;
    assert_eq!(known.status(), unknown.status());
    let mut known = problem(known, StatusCode::UNAUTHORIZED).await;
    let mut unknown = problem(unknown, StatusCode::UNAUTHORIZED).await;
    for body in [&mut known, &mut unknown] {
        body.as_object_mut().unwrap().remove("request_id");
    }
    assert_eq!(known, unknown);
    app.stop().await.unwrap();
}

/// `name=value` of each `Set-Cookie`, with its attributes.
fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn cookie_value(cookies: &[String], name: &str) -> String {
    let line = cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {cookies:?}"));
    line.split(';').next().unwrap()[name.len() + 1..].to_owned()
}

async fn browser_mode_sets_hardened_cookies_and_demands_csrf(t: &TestDb) {
    let app = spawn_app(t).await;
    app.register("Browser").await;
    let login = app
        .post(
            "/v1/auth/login",
            None,
            &json!({ "login": "browser", "password": PASSWORD, "cookies": true }),
        )
        .await;
    let cookies = set_cookies(&login);
    let body: Value = login.json().await.unwrap();
    assert!(
        body.get("access_token").is_none(),
        "no token in the body: {body}"
    );
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    for name in ["hearth_access", "hearth_refresh"] {
        let line = cookies.iter().find(|c| c.starts_with(name)).unwrap();
        for flag in ["HttpOnly", "Secure", "SameSite=Strict"] {
            assert!(line.contains(flag), "{name} lacks {flag}: {line}");
        }
    }
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("hearth_refresh=") && c.contains("Path=/v1/auth"))
    );
    assert_eq!(cookie_value(&cookies, "hearth_csrf"), csrf);
    let jar = format!(
        "hearth_access={}; hearth_refresh={}; hearth_csrf={csrf}",
        cookie_value(&cookies, "hearth_access"),
        cookie_value(&cookies, "hearth_refresh")
    );

    // Reads need only the cookie.
    let me = app
        .client
        .get(app.url("/v1/me"))
        .header(COOKIE, &jar)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    // A state change without the CSRF header (what a forged cross-site form sends): 403.
    let spin = |csrf: Option<&str>| {
        let mut request = app
            .client
            .post(app.url("/v1/games/slots/spin"))
            .header(COOKIE, &jar)
            .json(&json!({ "bet": 1 }));
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        request.send()
    };
    let body = problem(spin(None).await.unwrap(), StatusCode::FORBIDDEN).await;
    assert_eq!(body["type"], "urn:hearth:problem:csrf");
    problem(spin(Some("forged")).await.unwrap(), StatusCode::FORBIDDEN).await;
    assert_eq!(spin(Some(&csrf)).await.unwrap().status(), StatusCode::OK);
    // Another session's CSRF token does not fit this one.
    let other = app
        .post(
            "/v1/auth/login",
            None,
            &json!({ "login": "browser", "password": PASSWORD, "cookies": true }),
        )
        .await;
    let other_csrf: Value = other.json().await.unwrap();
    problem(
        spin(Some(other_csrf["csrf_token"].as_str().unwrap()))
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;

    // Refresh from the cookie needs the CSRF token too, and answers with new cookies.
    let refresh = |csrf: Option<&str>| {
        let mut request = app
            .client
            .post(app.url("/v1/auth/refresh"))
            .header(COOKIE, &jar);
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        request.send()
    };
    problem(refresh(None).await.unwrap(), StatusCode::FORBIDDEN).await;
    let refreshed = refresh(Some(&csrf)).await.unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
    assert!(
        set_cookies(&refreshed)
            .iter()
            .any(|c| c.starts_with("hearth_access="))
    );

    // Logout clears the cookies.
    let logout = app
        .client
        .post(app.url("/v1/auth/logout"))
        .header(COOKIE, &jar)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert!(
        set_cookies(&logout)
            .iter()
            .any(|c| c.starts_with("hearth_access=;") && c.contains("Max-Age=0"))
    );

    // Development may relax Secure for plain-HTTP localhost.
    let app = spawn_app_with(t, |s| s.auth.cookie_secure = false).await;
    let login = app
        .post(
            "/v1/auth/login",
            None,
            &json!({ "login": "browser", "password": PASSWORD, "cookies": true }),
        )
        .await;
    assert!(set_cookies(&login).iter().all(|c| !c.contains("Secure")));
    app.stop().await.unwrap();
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn totp_enrolment_then_login_needs_a_code_or_a_backup_code(t: &TestDb) {
    let app = spawn_app(t).await;
    let mut access = app.player("Guarded").await;
    let enroll = app
        .post(
            "/v1/auth/totp/enroll",
            Some(&access),
            &json!({ "password": PASSWORD }),
        )
        .await;
    assert_eq!(enroll.status(), StatusCode::OK);
    let enroll: Value = enroll.json().await.unwrap();
    let uri = enroll["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/hearth:Guarded?secret="),
        "{uri}"
    );
    let secret = TotpSecret::from_base32(enroll["secret"].as_str().unwrap()).unwrap();

    // Until confirmed, login needs no code.
    assert_eq!(app.login("guarded").await.status(), StatusCode::OK);
    let wrong = app
        .post(
            "/v1/auth/totp/confirm",
            Some(&access),
            &json!({ "password": PASSWORD, "code": "000000" }),
        )
        .await;
    // (A one-in-a-million chance that 000000 is the current code is accepted here.)
    if wrong.status() != StatusCode::OK {
        let body = problem(wrong, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(body["errors"][0]["field"], "code");
        let confirm = app
            .post(
                "/v1/auth/totp/confirm",
                Some(&access),
                &json!({ "password": PASSWORD, "code": secret.code_at(unix_now()) }),
            )
            .await;
        assert_eq!(confirm.status(), StatusCode::OK);
        let codes: Value = confirm.json().await.unwrap();
        // The caller's session goes on with the new pair (the old one was revoked).
        access = codes["session"]["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(codes["backup_codes"].as_array().unwrap().len(), 10);
        check_totp_login(&app, &secret, &codes).await;
    }
    let again = app
        .post(
            "/v1/auth/totp/enroll",
            Some(&access),
            &json!({ "password": PASSWORD }),
        )
        .await;
    problem(again, StatusCode::CONFLICT).await;
    app.stop().await.unwrap();
}

async fn check_totp_login(app: &TestApp, secret: &TotpSecret, codes: &Value) {
    let login = |totp: Option<String>| {
        let mut body = json!({ "login": "guarded", "password": PASSWORD });
        if let Some(code) = totp {
            body["totp"] = json!(code);
        }
        async move { app.post("/v1/auth/login", None, &body).await }
    };
    let body = problem(login(None).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["totp_required"], true);
    // The confirming code was spent; the next step's code works once.
    let next = secret.code_at(unix_now() + 30);
    assert_eq!(login(Some(next.clone())).await.status(), StatusCode::OK);
    problem(login(Some(next)).await, StatusCode::UNAUTHORIZED).await;
    // A backup code works once, whatever its case or dashes.
    let backup = codes["backup_codes"][0].as_str().unwrap().to_uppercase();
    assert_eq!(login(Some(backup.clone())).await.status(), StatusCode::OK);
    problem(login(Some(backup)).await, StatusCode::UNAUTHORIZED).await;
}

/// The caller's user id, from `/v1/me`.
async fn user_id(app: &TestApp, access: &str) -> uuid::Uuid {
    let me: Value = app.get("/v1/me", Some(access)).await.json().await.unwrap();
    me["id"].as_str().unwrap().parse().unwrap()
}

/// Asserts a 422 whose first error names `field`.
async fn refused_naming(response: reqwest::Response, field: &str) {
    let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["errors"][0]["field"], field, "{body}");
}

/// Turns the second factor on for the account of `access` (password and a current code);
/// returns the secret and the confirmation's answer (backup codes and the renewed session).
async fn enrol(app: &TestApp, access: &str) -> (TotpSecret, Value) {
    let enroll = app
        .post(
            "/v1/auth/totp/enroll",
            Some(access),
            &json!({ "password": PASSWORD }),
        )
        .await;
    assert_eq!(enroll.status(), StatusCode::OK);
    let enroll: Value = enroll.json().await.unwrap();
    let secret = TotpSecret::from_base32(enroll["secret"].as_str().unwrap()).unwrap();
    let confirm = app
        .post(
            "/v1/auth/totp/confirm",
            Some(access),
            &json!({ "password": PASSWORD, "code": secret.code_at(unix_now()) }),
        )
        .await;
    assert_eq!(confirm.status(), StatusCode::OK);
    let confirmed: Value = confirm.json().await.unwrap();
    assert_eq!(confirmed["backup_codes"].as_array().unwrap().len(), 10);
    (secret, confirmed)
}

fn session_access(answer: &Value) -> String {
    answer["session"]["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no renewed session in {answer}"))
        .to_owned()
}

async fn totp_enrolment_and_confirmation_need_the_current_password(t: &TestDb) {
    let app = spawn_app(t).await;
    let access = app.player("Cautious").await;
    let user = user_id(&app, &access).await;

    // A stolen access token alone cannot start enrolment: no body, no password, a wrong one.
    let bare = app
        .request(Method::POST, "/v1/auth/totp/enroll", Some(&access))
        .send()
        .await
        .unwrap();
    refused_naming(bare, "password").await;
    let enroll = |body: Value| {
        let app = &app;
        let access = &access;
        async move { app.post("/v1/auth/totp/enroll", Some(access), &body).await }
    };
    refused_naming(enroll(json!({})).await, "password").await;
    refused_naming(
        enroll(json!({ "password": "Wrong-Pass-1!" })).await,
        "password",
    )
    .await;
    assert_eq!(
        t.db.totp(user).await.unwrap().secret,
        None,
        "nothing enrolled"
    );

    let enrolled: Value = enroll(json!({ "password": PASSWORD }))
        .await
        .json()
        .await
        .unwrap();
    let secret = TotpSecret::from_base32(enrolled["secret"].as_str().unwrap()).unwrap();
    let confirm = |password: Option<&str>| {
        let mut body = json!({ "code": secret.code_at(unix_now()) });
        if let Some(password) = password {
            body["password"] = json!(password);
        }
        let app = &app;
        let access = &access;
        async move { app.post("/v1/auth/totp/confirm", Some(access), &body).await }
    };
    refused_naming(confirm(None).await, "password").await;
    refused_naming(confirm(Some("Wrong-Pass-1!")).await, "password").await;
    assert!(!t.db.totp(user).await.unwrap().enabled, "nothing enabled");

    // Wrong passwords here count towards the account's lockout, as at login: two so far,
    // three more lock it, and then even the right password is refused.
    for _ in 0..3 {
        refused_naming(confirm(Some("Wrong-Pass-1!")).await, "password").await;
    }
    let body = problem(confirm(Some(PASSWORD)).await, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(body["type"], "urn:hearth:problem:locked");
    assert!(!t.db.totp(user).await.unwrap().enabled);
    app.stop().await.unwrap();
}

async fn enabling_and_disabling_totp_end_the_other_sessions_but_not_the_callers(t: &TestDb) {
    let app = spawn_app(t).await;
    app.register("Juggler").await;
    let mine = tokens(app.login("juggler").await).await;
    let other = tokens(app.login("juggler").await).await;
    let (_, confirmed) = enrol(&app, mine["access_token"].as_str().unwrap()).await;

    // Another session dies, access and refresh token alike.
    problem(
        app.get("/v1/me", Some(other["access_token"].as_str().unwrap()))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    problem(
        refresh(&app, other["refresh_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // The caller's session goes on, with the pair the answer carries.
    let renewed = &confirmed["session"];
    let access = session_access(&confirmed);
    assert_eq!(
        app.get("/v1/me", Some(&access)).await.status(),
        StatusCode::OK
    );
    let rotated = tokens(refresh(&app, renewed["refresh_token"].as_str().unwrap()).await).await;
    let access = rotated["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/v1/me", Some(&access)).await.status(),
        StatusCode::OK
    );

    // A session started with a backup code dies when the caller turns the factor off.
    let backup = |i: usize| confirmed["backup_codes"][i].as_str().unwrap().to_owned();
    let third = tokens(
        app.post(
            "/v1/auth/login",
            None,
            &json!({ "login": "juggler", "password": PASSWORD, "totp": backup(0) }),
        )
        .await,
    )
    .await;
    let disabled = app
        .post(
            "/v1/auth/totp/disable",
            Some(&access),
            &json!({ "password": PASSWORD, "code": backup(1) }),
        )
        .await;
    assert_eq!(disabled.status(), StatusCode::OK);
    let disabled: Value = disabled.json().await.unwrap();
    assert_eq!(disabled["enabled"], false);
    problem(
        app.get("/v1/me", Some(third["access_token"].as_str().unwrap()))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let access = session_access(&disabled);
    assert_eq!(
        app.get("/v1/me", Some(&access)).await.status(),
        StatusCode::OK
    );
    app.stop().await.unwrap();
}

async fn a_browser_session_goes_on_with_new_cookies_after_enabling_totp(t: &TestDb) {
    let app = spawn_app(t).await;
    app.register("Surfer").await;
    let login = app
        .post(
            "/v1/auth/login",
            None,
            &json!({ "login": "surfer", "password": PASSWORD, "cookies": true }),
        )
        .await;
    let cookies = set_cookies(&login);
    let csrf = cookie_value(&cookies, "hearth_csrf");
    let jar = |cookies: &[String]| {
        format!(
            "hearth_access={}; hearth_csrf={csrf}",
            cookie_value(cookies, "hearth_access")
        )
    };
    let old_jar = jar(&cookies);
    let post = |jar: String, path: &'static str, body: Value| {
        let app = &app;
        let csrf = &csrf;
        async move {
            app.client
                .post(app.url(path))
                .header(COOKIE, jar)
                .header("x-csrf-token", csrf)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let enroll = post(
        old_jar.clone(),
        "/v1/auth/totp/enroll",
        json!({ "password": PASSWORD }),
    )
    .await;
    assert_eq!(enroll.status(), StatusCode::OK);
    let secret: Value = enroll.json().await.unwrap();
    let secret = TotpSecret::from_base32(secret["secret"].as_str().unwrap()).unwrap();
    let confirm = post(
        old_jar.clone(),
        "/v1/auth/totp/confirm",
        json!({ "password": PASSWORD, "code": secret.code_at(unix_now()) }),
    )
    .await;
    assert_eq!(confirm.status(), StatusCode::OK);
    let new_jar = jar(&set_cookies(&confirm));
    let body: Value = confirm.json().await.unwrap();
    assert!(body["session"].get("access_token").is_none(), "{body}");
    assert_eq!(body["session"]["csrf_token"], csrf.as_str(), "same session");

    let me = |jar: String| {
        let app = &app;
        async move {
            app.client
                .get(app.url("/v1/me"))
                .header(COOKIE, jar)
                .send()
                .await
                .unwrap()
        }
    };
    problem(me(old_jar).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(me(new_jar).await.status(), StatusCode::OK);
    app.stop().await.unwrap();
}

async fn disabling_totp_needs_the_password_and_a_code_or_a_backup_code(t: &TestDb) {
    let app = spawn_app(t).await;
    let access = app.player("Keeper").await;
    let user = user_id(&app, &access).await;
    let disable = |access: String, body: Value| {
        let app = &app;
        async move {
            app.post("/v1/auth/totp/disable", Some(&access), &body)
                .await
        }
    };
    let not_on = disable(
        access.clone(),
        json!({ "password": PASSWORD, "code": "123456" }),
    )
    .await;
    problem(not_on, StatusCode::CONFLICT).await;

    let (secret, confirmed) = enrol(&app, &access).await;
    let access = session_access(&confirmed);
    let backup = confirmed["backup_codes"][0].as_str().unwrap().to_owned();
    refused_naming(
        disable(access.clone(), json!({ "password": PASSWORD })).await,
        "code",
    )
    .await;
    refused_naming(
        disable(access.clone(), json!({ "code": backup })).await,
        "password",
    )
    .await;
    refused_naming(
        disable(
            access.clone(),
            json!({ "password": "Wrong-Pass-1!", "code": backup }),
        )
        .await,
        "password",
    )
    .await;
    refused_naming(
        disable(
            access.clone(),
            json!({ "password": PASSWORD, "code": "not-a-code" }),
        )
        .await,
        "code",
    )
    .await;
    assert!(t.db.totp(user).await.unwrap().enabled, "still on");

    // A current code turns it off: login no longer asks for one.
    let off = disable(
        access.clone(),
        json!({ "password": PASSWORD, "code": secret.code_at(unix_now() + 30) }),
    )
    .await;
    assert_eq!(off.status(), StatusCode::OK);
    let access = session_access(&off.json().await.unwrap());
    let state = t.db.totp(user).await.unwrap();
    assert!(!state.enabled && state.secret.is_none(), "secret forgotten");
    assert_eq!(app.login("keeper").await.status(), StatusCode::OK);

    // So does a backup code, once; codes of an earlier enrolment are void.
    let (_, confirmed) = enrol(&app, &access).await;
    let access = session_access(&confirmed);
    refused_naming(
        disable(
            access.clone(),
            json!({ "password": PASSWORD, "code": backup }),
        )
        .await,
        "code",
    )
    .await;
    let backup = confirmed["backup_codes"][3].as_str().unwrap().to_owned();
    let off = disable(access, json!({ "password": PASSWORD, "code": backup })).await;
    assert_eq!(off.status(), StatusCode::OK);
    assert!(!t.db.totp(user).await.unwrap().enabled);
    app.stop().await.unwrap();
}

async fn new_backup_codes_need_the_password_and_a_code_and_void_the_old_ones(t: &TestDb) {
    let app = spawn_app(t).await;
    let access = app.player("Hoarder").await;
    let (_, confirmed) = enrol(&app, &access).await;
    let access = session_access(&confirmed);
    let old = |i: usize| confirmed["backup_codes"][i].as_str().unwrap().to_owned();
    let regenerate = |body: Value| {
        let app = &app;
        let access = &access;
        async move {
            app.post("/v1/auth/totp/backup-codes", Some(access), &body)
                .await
        }
    };
    refused_naming(
        regenerate(json!({ "password": "Wrong-Pass-1!", "code": old(0) })).await,
        "password",
    )
    .await;
    refused_naming(
        regenerate(json!({ "password": PASSWORD, "code": "not-a-code" })).await,
        "code",
    )
    .await;

    let fresh = regenerate(json!({ "password": PASSWORD, "code": old(0) })).await;
    assert_eq!(fresh.status(), StatusCode::OK);
    let fresh: Value = fresh.json().await.unwrap();
    let fresh: Vec<String> = fresh["backup_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|c| (0..10).all(|i| *c != old(i))));

    let login = |code: String| {
        let app = &app;
        async move {
            app.post(
                "/v1/auth/login",
                None,
                &json!({ "login": "hoarder", "password": PASSWORD, "totp": code }),
            )
            .await
        }
    };
    problem(login(old(1)).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(login(fresh[0].clone()).await.status(), StatusCode::OK);
    app.stop().await.unwrap();
}

/// The reset codes mailed to `to`, oldest first, once there are `count` of them.
async fn reset_codes(t: &TestDb, to: &str, count: usize) -> Vec<String> {
    for _ in 0..100 {
        let codes: Vec<String> =
            t.db.pending_emails(100)
                .await
                .unwrap()
                .into_iter()
                .filter(|m| m.to_address == to && m.subject.contains("Reset"))
                .filter_map(|m| {
                    m.body
                        .split_whitespace()
                        .find(|w| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit()))
                        .map(str::to_owned)
                })
                .collect();
        if codes.len() >= count {
            return codes;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("fewer than {count} reset e-mails to {to}");
}

async fn a_reset_or_a_password_change_voids_every_outstanding_reset_code(t: &TestDb) {
    let app = spawn_app(t).await;
    app.register("Resetter").await;
    let ask = || {
        let app = &app;
        async move {
            let asked = app
                .post(
                    "/v1/auth/password-reset",
                    None,
                    &json!({ "email": "resetter@example.com" }),
                )
                .await;
            assert_eq!(asked.status(), StatusCode::ACCEPTED);
        }
    };
    let confirm = |token: String, password: &'static str| {
        let app = &app;
        async move {
            app.post(
                "/v1/auth/password-reset/confirm",
                None,
                &json!({ "token": token, "new_password": password }),
            )
            .await
        }
    };
    ask().await;
    let first = reset_codes(t, "resetter@example.com", 1).await;
    ask().await;
    let codes = reset_codes(t, "resetter@example.com", 2).await;
    assert_eq!(codes[0], first[0]);
    let reset = confirm(codes[0].clone(), "Reset-Pass-42").await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    refused_naming(confirm(codes[1].clone(), "Stolen-Pass-42").await, "token").await;

    // A code mailed before a password change dies with it too.
    let session = tokens(
        app.post(
            "/v1/auth/login",
            None,
            &json!({ "login": "resetter", "password": "Reset-Pass-42" }),
        )
        .await,
    )
    .await;
    ask().await;
    let codes = reset_codes(t, "resetter@example.com", 3).await;
    let changed = app
        .post(
            "/v1/auth/password",
            Some(session["access_token"].as_str().unwrap()),
            &json!({ "old_password": "Reset-Pass-42", "new_password": "Changed-Pass-42" }),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    refused_naming(confirm(codes[2].clone(), "Stolen-Pass-42").await, "token").await;
    let login = app
        .post(
            "/v1/auth/login",
            None,
            &json!({ "login": "resetter", "password": "Changed-Pass-42" }),
        )
        .await;
    assert_eq!(login.status(), StatusCode::OK);
    app.stop().await.unwrap();
}

async fn admin_routes_need_the_role_and_an_allowed_address(t: &TestDb) {
    let app = spawn_app(t).await;
    let player = app.player("Plain").await;
    app.register("Boss").await;
    let me: Value = app.get("/v1/me", Some(&player)).await.json().await.unwrap();
    let path = format!("/v1/admin/users/{}", me["id"].as_str().unwrap());

    // A player's token: the route does not exist for them.
    problem(app.get(&path, Some(&player)).await, StatusCode::NOT_FOUND).await;
    problem(app.get(&path, None).await, StatusCode::UNAUTHORIZED).await;

    t.db.set_role("boss", "admin").await.unwrap();
    let boss = tokens(app.login("boss").await).await;
    let boss = boss["access_token"].as_str().unwrap().to_owned();
    let view = app.get(&path, Some(&boss)).await;
    assert_eq!(view.status(), StatusCode::OK);
    let view: Value = view.json().await.unwrap();
    assert_eq!(view["user"]["username"], "Plain");
    assert!(view["wallet"]["balance"].is_number());

    // Demoted: the still-valid admin token stops working at once.
    t.db.set_role("boss", "player").await.unwrap();
    problem(app.get(&path, Some(&boss)).await, StatusCode::NOT_FOUND).await;
    t.db.set_role("boss", "admin").await.unwrap();

    // An allowlist that excludes loopback hides the route even from an admin. (Apps sharing
    // the test database stay up: stopping one closes the pool.)
    let elsewhere = spawn_app_with(t, |s| {
        s.admin.allowed_ips = vec!["10.0.0.0/8".parse().unwrap()];
    })
    .await;
    problem(
        elsewhere.get(&path, Some(&boss)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let app = spawn_app_with(t, |s| {
        s.admin.allowed_ips = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    assert_eq!(app.get(&path, Some(&boss)).await.status(), StatusCode::OK);
    app.stop().await.unwrap();
}

async fn another_players_resources_are_not_found(t: &TestDb) {
    let app = spawn_app(t).await;
    let alice = app.player("Alice").await;
    let mallory = app.player("Mallory").await;
    let hand = app
        .post("/v1/games/blackjack", Some(&alice), &json!({ "bet": 10 }))
        .await;
    assert_eq!(hand.status(), StatusCode::OK, "{:?}", hand.text().await);
    let hand: Value = hand.json().await.unwrap();
    let round = hand["round_id"].as_str().unwrap();
    let spin: Value = app.spin(&alice, 1).await.json().await.unwrap();
    let spun = spin["round_id"].as_str().unwrap();

    for path in [
        format!("/v1/fairness/rounds/{round}"),
        format!("/v1/fairness/rounds/{spun}"),
    ] {
        problem(app.get(&path, Some(&mallory)).await, StatusCode::NOT_FOUND).await;
        assert_eq!(app.get(&path, Some(&alice)).await.status(), StatusCode::OK);
    }
    let act = app
        .post(
            &format!("/v1/games/blackjack/{round}/action"),
            Some(&mallory),
            &json!({ "action": "stand" }),
        )
        .await;
    problem(act, StatusCode::NOT_FOUND).await;
    // Not found looks the same as a round that never existed.
    let ghost = app
        .post(
            &format!("/v1/games/blackjack/{}/action", uuid::Uuid::now_v7()),
            Some(&mallory),
            &json!({ "action": "stand" }),
        )
        .await;
    problem(ghost, StatusCode::NOT_FOUND).await;
    // Wallet, ledger, history, stats and fairness take no id: they are always the caller's own.
    app.stop().await.unwrap();
}

/// Two gateways sharing PostgreSQL and Redis, as a fleet runs: a logout, a reused refresh token
/// and a lockout on one are in force on the other.
#[tokio::test]
async fn two_gateways_sharing_redis_share_revocations_and_locks() {
    let Some(t) = hearth_test_support::postgres_db().await else {
        return;
    };
    let Some(redis) = hearth_test_support::service_url(hearth_test_support::REDIS_URL_VAR, "Redis")
    else {
        return;
    };
    let prefix = format!("hearth-test:{}:", uuid::Uuid::new_v4().simple());
    let shared = |s: &mut hearth_api::Settings| {
        s.redis.url = Some(secrecy::SecretString::from(redis.clone()));
        s.redis.key_prefix = prefix.clone();
    };
    let a = spawn_app_with(&t, shared).await;
    let b = spawn_app_with(&t, shared).await;
    a.register("Roamer").await;
    let session = tokens(a.login("roamer").await).await;
    let access = session["access_token"].as_str().unwrap();
    assert_eq!(b.get("/v1/me", Some(access)).await.status(), StatusCode::OK);
    let logout = a
        .request(Method::POST, "/v1/auth/logout", Some(access))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    problem(
        b.get("/v1/me", Some(access)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // A refresh token used on one gateway and replayed on the other kills the session.
    let session = tokens(b.login("roamer").await).await;
    let rotated = tokens(refresh(&a, session["refresh_token"].as_str().unwrap()).await).await;
    problem(
        refresh(&b, session["refresh_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    problem(
        a.get("/v1/me", Some(rotated["access_token"].as_str().unwrap()))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // Failures spread over both gateways add up to one lock.
    for attempt in 0..5 {
        let gateway = if attempt % 2 == 0 { &a } else { &b };
        assert_eq!(
            wrong_login(gateway, "roamer").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    problem(a.login("roamer").await, StatusCode::TOO_MANY_REQUESTS).await;
    problem(b.login("roamer").await, StatusCode::TOO_MANY_REQUESTS).await;
    b.stop().await.unwrap();
    t.cleanup().await;
}
