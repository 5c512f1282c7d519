//! The browser pages in headless Chromium: `tests/browser/play.mjs` and `admin.mjs`, run by
//! Node with `playwright-core`, against the gateway on a random loopback port (embedded
//! SQLite). The Rust side arranges accounts through the API, runs a scenario, then checks
//! through the API and the database that what the browser did really happened.
//!
//! Needs `node`, Chromium (`HEARTH_TEST_CHROMIUM`, the executable) and playwright-core
//! (`HEARTH_TEST_PLAYWRIGHT`, a directory whose `node_modules` holds it); `.ci/run` installs
//! both and sets the variables. Without them the suite skips with a note; under `CI=true` it
//! must run. Screenshots go to `<target>/tmp/browser/`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use hearth_auth::totp::TotpSecret;
use hearth_test_support::{in_ci, skip_suites};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, spawn_app_with};

const CHROMIUM_VAR: &str = "HEARTH_TEST_CHROMIUM";
const PLAYWRIGHT_VAR: &str = "HEARTH_TEST_PLAYWRIGHT";

/// What a scenario needs on this machine.
struct Browser {
    chromium: PathBuf,
    playwright: PathBuf,
}

/// The browser tools, or `None` (after a note) when one is missing.
fn browser() -> Option<Browser> {
    let chromium = std::env::var_os(CHROMIUM_VAR).map(PathBuf::from);
    let playwright = std::env::var_os(PLAYWRIGHT_VAR).map(PathBuf::from);
    let node = std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let missing: Vec<String> = [
        (!node).then(|| "node".to_owned()),
        (!chromium.as_ref().is_some_and(|c| c.is_file()))
            .then(|| format!("{CHROMIUM_VAR} (the chromium executable)")),
        (!playwright.as_ref().is_some_and(|p| {
            p.join("node_modules/playwright-core/package.json")
                .is_file()
        }))
        .then(|| format!("{PLAYWRIGHT_VAR} (a directory with node_modules/playwright-core)")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let (true, Some(chromium), Some(playwright)) = (missing.is_empty(), chromium, playwright) {
        return Some(Browser {
            chromium,
            playwright,
        });
    }
    assert!(
        !in_ci(),
        "CI must run the browser suites (.ci/run installs them); missing: {}",
        missing.join(", ")
    );
    skip_suites(
        "browser suites",
        &format!(
            "missing {}; apt-get install chromium, npm install playwright-core, see .ci/run",
            missing.join(", ")
        ),
    );
    None
}

/// Runs `tests/browser/{script}` against `app`, with `vars` in its environment, and fails with
/// its output unless it exits 0.
async fn scenario(browser: &Browser, app: &TestApp, script: &str, vars: &[(&str, String)]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let artefacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let mut command = tokio::process::Command::new("node");
    command
        .arg(dir.join(script))
        .env("HEARTH_BASE_URL", format!("http://{}", app.addr))
        .env("HEARTH_CHROMIUM", &browser.chromium)
        .env("HEARTH_PLAYWRIGHT", &browser.playwright)
        .env("HEARTH_ARTEFACTS", &artefacts)
        .kill_on_drop(true);
    for (name, value) in vars {
        command.env(name, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(180), command.output())
        .await
        .unwrap_or_else(|_| panic!("{script} ran for 3 minutes"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.lines().any(|l| l == "ok"), "{script}:\n{stdout}");
}

/// The app for a browser: plain HTTP on loopback, so the session cookies cannot be `Secure`.
async fn spawn_for_browser(t: &hearth_test_support::TestDb) -> TestApp {
    spawn_app_with(t, |s| s.auth.cookie_secure = false).await
}

async fn bearer(app: &TestApp, login: &str, totp: Option<&str>) -> String {
    let mut body = json!({ "login": login, "password": PASSWORD });
    if let Some(code) = totp {
        body["totp"] = json!(code);
    }
    let response = app.post("/v1/auth/login", None, &body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    tokens["access_token"].as_str().unwrap().to_owned()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_logs_in_plays_rotates_the_seed_and_verifies_rounds_in_chromium() {
    let Some(browser) = browser() else { return };
    let t = hearth_test_support::sqlite_db().await;
    let app = spawn_for_browser(&t).await;
    assert_eq!(app.register("Wren").await.status(), StatusCode::CREATED);
    let before: Value = app
        .get("/v1/fairness", Some(&bearer(&app, "Wren", None).await))
        .await
        .json()
        .await
        .unwrap();

    scenario(
        &browser,
        &app,
        "play.mjs",
        &[
            ("HEARTH_PLAYER", "Wren".to_owned()),
            ("HEARTH_PASSWORD", PASSWORD.to_owned()),
        ],
    )
    .await;

    // What the page did, seen through the API: three settled rounds, and the seed rotated
    // (the commitment shown before is retired, the nonce restarted).
    let token = bearer(&app, "Wren", None).await;
    let stats: Value = app
        .get("/v1/stats", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["rounds"], 3, "{stats}");
    let after: Value = app
        .get("/v1/fairness", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(after["server_seed_hash"], before["server_seed_hash"]);
    assert_eq!(after["nonce"], 0);

    app.stop().await.unwrap();
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_with_totp_bans_and_adjusts_and_sees_the_audit_in_chromium() {
    let Some(browser) = browser() else { return };
    let t = hearth_test_support::sqlite_db().await;
    let app = spawn_for_browser(&t).await;

    // An operator with a second factor: the secret from enrolment, confirmed with the
    // previous step's code so that the browser's sign-in (this step's code) is a fresh one.
    assert_eq!(app.register("Keeper").await.status(), StatusCode::CREATED);
    t.db.set_role("Keeper", "admin").await.unwrap();
    let token = bearer(&app, "Keeper", None).await;
    let enrolled: Value = app
        .post(
            "/v1/auth/totp/enroll",
            Some(&token),
            &json!({ "password": PASSWORD }),
        )
        .await
        .json()
        .await
        .unwrap();
    let secret = enrolled["secret"].as_str().unwrap().to_owned();
    let code = TotpSecret::from_base32(&secret)
        .unwrap()
        .code_at(now_secs() - 30);
    let confirmed = app
        .post(
            "/v1/auth/totp/confirm",
            Some(&token),
            &json!({ "password": PASSWORD, "code": code }),
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let confirmed: Value = confirmed.json().await.unwrap();
    let backup: Vec<String> = confirmed["backup_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();

    // A player with a few rounds, for the search and the figures.
    let player = app.player("Moth").await;
    for _ in 0..3 {
        assert_eq!(app.spin(&player, 10).await.status(), StatusCode::OK);
    }
    let moth =
        t.db.find_user_by_email("moth@example.com")
            .await
            .unwrap()
            .unwrap();
    let balance = t.db.wallet(moth.id).await.unwrap().balance;

    scenario(
        &browser,
        &app,
        "admin.mjs",
        &[
            ("HEARTH_ADMIN", "Keeper".to_owned()),
            ("HEARTH_PASSWORD", PASSWORD.to_owned()),
            ("HEARTH_TOTP_SECRET", secret),
            ("HEARTH_BACKUP_CODES", backup[..2].join(",")),
            ("HEARTH_TARGET", "Moth".to_owned()),
        ],
    )
    .await;

    // What the console did, seen from outside it: the player is banned (login refused, the
    // old token dead) and 250 coins richer.
    let login = app.login("Moth").await;
    let refused = crate::support::problem(login, StatusCode::FORBIDDEN).await;
    assert_eq!(refused["type"], "urn:hearth:problem:account-disabled");
    assert_eq!(
        app.get("/v1/wallet", Some(&player)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(t.db.wallet(moth.id).await.unwrap().balance, balance + 250);

    app.stop().await.unwrap();
    t.cleanup().await;
}
