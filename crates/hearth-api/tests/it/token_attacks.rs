//! Token attacks, each refused with 401 in the problem+json shape.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hearth_auth::{AuthSettings, Claims, TokenService, TokenType};
use hearth_test_support::sqlite_db;
use hmac::{KeyInit, Mac};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::support::{TestApp, problem, spawn_app, test_settings};

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with any header and claims, HMAC-SHA256-signed with `key` over `header.payload`.
fn forge(header: &Value, claims: &Value, key: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()))
}

async fn refused(app: &TestApp, token: &str, what: &str) {
    let response = app.get("/v1/me", Some(token)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
    assert_eq!(response.headers()["www-authenticate"], "Bearer", "{what}");
    let body = problem(response, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["type"], "urn:hearth:problem:unauthorized", "{what}");
}

#[tokio::test]
async fn every_forged_or_misused_token_is_a_401() {
    let t = sqlite_db().await;
    let settings = test_settings(&t);
    let secret = settings.auth.jwt_secret.expose_secret().as_bytes().to_vec();
    let app = spawn_app(&t).await;
    let access = app.player("Victim").await;
    let service = TokenService::new(&settings.auth);
    let claims = service.verify(&access, TokenType::Access).unwrap();
    let claims_json = serde_json::to_value(&claims).unwrap();
    assert_eq!(
        app.get("/v1/me", Some(&access)).await.status(),
        StatusCode::OK
    );
    let parts: Vec<&str> = access.split('.').collect();

    // alg: none, with and without a trailing signature segment.
    let none = json!({ "alg": "none", "typ": "JWT", "kid": "k1" });
    let unsigned = format!("{}.{}.", b64(none.to_string().as_bytes()), parts[1]);
    refused(&app, &unsigned, "alg none").await;
    refused(
        &app,
        unsigned.trim_end_matches('.'),
        "alg none, two segments",
    )
    .await;

    // Algorithm switched: an asymmetric alg whose "public key" is used as an HMAC secret, and
    // a different HMAC. Only HS256 verifies.
    for alg in ["RS256", "ES256", "EdDSA", "HS512", "PS256"] {
        let header = json!({ "alg": alg, "typ": "JWT", "kid": "k1" });
        refused(&app, &forge(&header, &claims_json, &secret), alg).await;
        refused(
            &app,
            &forge(&header, &claims_json, b"-----BEGIN PUBLIC KEY-----"),
            alg,
        )
        .await;
    }

    // Tampered payload: promoted to admin and given to another user, old signature kept.
    let mut tampered = claims_json.clone();
    tampered["role"] = json!("admin");
    tampered["sub"] = json!(uuid::Uuid::now_v7());
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(tampered.to_string().as_bytes()),
        parts[2]
    );
    refused(&app, &forged, "tampered payload").await;

    // Signature stripped or garbled.
    refused(
        &app,
        &format!("{}.{}.", parts[0], parts[1]),
        "stripped signature",
    )
    .await;
    refused(
        &app,
        &format!("{}.{}", parts[0], parts[1]),
        "no signature segment",
    )
    .await;
    refused(
        &app,
        &format!("{}.{}.AAAA{}", parts[0], parts[1], &parts[2][4..]),
        "garbled",
    )
    .await;
    refused(&app, "not-a-jwt", "garbage").await;

    // Right key, wrong claims.
    let now = claims.iat;
    let with = |f: &dyn Fn(&mut Claims)| {
        let mut c = claims.clone();
        c.jti = uuid::Uuid::now_v7();
        f(&mut c);
        service.sign(&c).unwrap()
    };
    refused(
        &app,
        &with(&|c| {
            c.iat = now - 3_600;
            c.nbf = now - 3_600;
            c.exp = now - 60;
        }),
        "expired",
    )
    .await;
    refused(&app, &with(&|c| c.nbf = now + 3_600), "nbf in the future").await;
    refused(&app, &with(&|c| c.iss = "someone-else".into()), "wrong iss").await;
    refused(&app, &with(&|c| c.aud = "another-api".into()), "wrong aud").await;
    refused(
        &app,
        &with(&|c| c.typ = TokenType::Refresh),
        "refresh as access",
    )
    .await;

    // A key this gateway does not know (same secret, unknown kid), and a missing kid.
    let unknown_kid = TokenService::new(&AuthSettings {
        jwt_key_id: "k9".into(),
        ..settings.auth.clone()
    });
    refused(&app, &unknown_kid.sign(&claims).unwrap(), "unknown kid").await;
    let no_kid = json!({ "alg": "HS256", "typ": "JWT" });
    refused(&app, &forge(&no_kid, &claims_json, &secret), "no kid").await;
    // The honest token still works: nothing above damaged the session.
    assert_eq!(
        app.get("/v1/me", Some(&access)).await.status(),
        StatusCode::OK
    );

    // A real refresh token as an access token.
    let pair: Value = app.login("victim").await.json().await.unwrap();
    refused(
        &app,
        pair["refresh_token"].as_str().unwrap(),
        "refresh token as access",
    )
    .await;
    // And an access token as a refresh token.
    let as_refresh = app
        .post(
            "/v1/auth/refresh",
            None,
            &json!({ "refresh_token": access }),
        )
        .await;
    problem(as_refresh, StatusCode::UNAUTHORIZED).await;

    // Revoked jti: after logout the token is dead.
    let logout = app
        .request(Method::POST, "/v1/auth/logout", Some(&access))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    refused(&app, &access, "revoked jti").await;

    // Reuse of a rotated refresh token kills the family, including the pair it produced.
    let rotated: Value = app
        .post(
            "/v1/auth/refresh",
            None,
            &json!({ "refresh_token": pair["refresh_token"] }),
        )
        .await
        .json()
        .await
        .unwrap();
    let reuse = app
        .post(
            "/v1/auth/refresh",
            None,
            &json!({ "refresh_token": pair["refresh_token"] }),
        )
        .await;
    problem(reuse, StatusCode::UNAUTHORIZED).await;
    refused(
        &app,
        rotated["access_token"].as_str().unwrap(),
        "family of a reused refresh",
    )
    .await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_rotated_key_keeps_old_sessions_and_signs_new_ones() {
    let t = sqlite_db().await;
    let app = spawn_app(&t).await;
    let before = app.player("Rotated").await;
    let old = test_settings(&t).auth;

    // A second gateway on the same database, after the rotation. (The first stays up:
    // stopping it would close the shared pool.)
    let app = crate::support::spawn_app_with(&t, |s| {
        s.auth.previous_jwt_secret = Some(old.jwt_secret.clone());
        s.auth.previous_jwt_key_id = Some(old.jwt_key_id.clone());
        s.auth.jwt_secret = "a-brand-new-secret-for-key-two-0123456789"
            .to_owned()
            .into();
        s.auth.jwt_key_id = "k2".into();
    })
    .await;
    assert_eq!(
        app.get("/v1/me", Some(&before)).await.status(),
        StatusCode::OK
    );
    let after: Value = app.login("rotated").await.json().await.unwrap();
    let after = after["access_token"].as_str().unwrap();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(after.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], "k2");
    assert_eq!(header["alg"], "HS256");
    assert_eq!(
        app.get("/v1/me", Some(after)).await.status(),
        StatusCode::OK
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_aging_access_token_is_told_to_refresh() {
    let t = sqlite_db().await;
    let app = crate::support::spawn_app_with(&t, |s| s.auth.refresh_suggest_after_secs = 0).await;
    let token = app.player("Aging").await;
    let response = app.get("/v1/me", Some(&token)).await;
    assert_eq!(response.headers()["x-token-refresh-suggested"], "true");

    let app = spawn_app(&t).await;
    let fresh: Value = app.login("aging").await.json().await.unwrap();
    let response = app
        .get("/v1/me", Some(fresh["access_token"].as_str().unwrap()))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .headers()
            .get("x-token-refresh-suggested")
            .is_none()
    );
    app.stop().await.unwrap();
}
