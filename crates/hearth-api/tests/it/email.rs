//! E-mail end to end: the gateway writes mail to the outbox, the worker's runner delivers it
//! to a real SMTP server on a loopback port (Python's `aiosmtpd`, saving to a maildir), and
//! what arrives works through the API: the reset code resets the password, the welcome link
//! verifies the address, and a login from a new address brings an alert. An SMTP outage is
//! retried and then succeeds.
//!
//! The SMTP server is `python -m aiosmtpd`, from the interpreter `HEARTH_TEST_AIOSMTPD` names
//! (`.ci/run` installs it in a virtualenv and sets it) or `python3`. Without it the suite skips
//! with a note; under `CI=true` it must be there.

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hearth_jobs::Outcome;
use hearth_test_support::{TestDb, backend_suite, in_ci, skip_suites};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, spawn_app_with};

backend_suite!(mail_goes_out_over_smtp_and_what_arrives_works_through_the_api);

/// The variable naming a Python interpreter that can import `aiosmtpd`.
const PYTHON_VAR: &str = "HEARTH_TEST_AIOSMTPD";

/// The interpreter to run `aiosmtpd` with, or `None` (after a note) when it is missing.
fn python() -> Option<String> {
    let python = std::env::var(PYTHON_VAR).unwrap_or_else(|_| "python3".to_owned());
    let importable = Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if importable {
        return Some(python);
    }
    assert!(
        !in_ci(),
        "{python} cannot import aiosmtpd: CI must run the SMTP suite (.ci/run sets {PYTHON_VAR})"
    );
    skip_suites(
        "SMTP suites",
        &format!("pip install aiosmtpd, or set {PYTHON_VAR} to a python that has it"),
    );
    None
}

/// An `aiosmtpd` server saving every message to a maildir; killed when dropped.
struct SmtpServer {
    child: Child,
    maildir: PathBuf,
}

impl SmtpServer {
    async fn start(python: &str, port: u16, maildir: &Path) -> Self {
        // A maildir's three folders; the handler expects them to exist.
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        // Owned at once, so that a failure below still kills and reaps it (Drop).
        let server = Self {
            child: Command::new(python)
                .args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(maildir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("aiosmtpd starts"),
            maildir: maildir.to_path_buf(),
        };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("aiosmtpd did not listen on port {port}");
    }

    /// Every message received so far, as text.
    fn messages(&self) -> Vec<String> {
        let mut messages = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) else {
                continue;
            };
            for entry in entries {
                messages.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
            }
        }
        messages
    }

    /// The one message whose subject contains `subject`.
    fn message(&self, subject: &str) -> String {
        let found: Vec<String> = self
            .messages()
            .into_iter()
            .filter(|m| unfolded(m).contains(subject))
            .collect();
        assert_eq!(found.len(), 1, "one message about {subject:?}: {found:#?}");
        found.into_iter().next().unwrap()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Headers may be folded over lines; quoted-printable bodies break long lines with `=\n` and
/// write `=` as `=3D` (tokens and links hold no other escaped character).
fn unfolded(message: &str) -> String {
    message
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
        .replace("\r\n ", " ")
        .replace("\n ", " ")
}

/// The first run of 64 hex digits after `marker`.
fn token_after(message: &str, marker: &str) -> String {
    let text = unfolded(message);
    let start = text.find(marker).expect("the marker is in the message") + marker.len();
    let token: String = text[start..]
        .chars()
        .skip_while(|c| !c.is_ascii_hexdigit())
        .take_while(char::is_ascii_hexdigit)
        .collect();
    assert_eq!(token.len(), 64, "a 64-digit token after {marker:?}");
    token
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn deliver(app: &TestApp) -> hearth_jobs::RunReport {
    let hearth = &app.state.hearth;
    let mailer = hearth_app::mail::from_settings(&hearth.settings.email).unwrap();
    let runner = hearth_app::jobs::runner(hearth, mailer).unwrap();
    runner.run_once().await.unwrap()
}

async fn mail_goes_out_over_smtp_and_what_arrives_works_through_the_api(t: &TestDb) {
    let Some(python) = python() else { return };
    let port = free_port();
    let maildir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(t, |s| {
        s.email.smtp_url = Some(format!("smtp://127.0.0.1:{port}").into());
        s.email.public_url = "https://play.example".to_owned();
        s.email.timeout_secs = 2;
        // A failed attempt is due again within a second (not within the same drain).
        s.jobs.backoff_base_secs = 1;
        s.jobs.backoff_max_secs = 1;
        // This suite is about mail: no backups into the working directory.
        s.backup.schedule = String::new();
        s.limits.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;

    // Registration queues the welcome mail; the SMTP server is down: the attempt is retried.
    assert_eq!(app.register("Mailee").await.status(), StatusCode::CREATED);
    let outage = deliver(&app).await;
    assert_eq!(outage.count(Outcome::Retrying), 1, "{outage:?}");
    // Only the scheduled jobs (reconciliation, clean-up) completed.
    assert_eq!(outage.count(Outcome::Completed), outage.slots, "{outage:?}");
    assert_eq!(t.db.pending_emails(10).await.unwrap().len(), 1);

    // The server comes up: the retry succeeds.
    let smtp = SmtpServer::start(&python, port, maildir.path()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let recovered = deliver(&app).await;
    // The mail, plus any scheduled slot that fell due since the first run.
    assert_eq!(
        recovered.count(Outcome::Completed),
        recovered.slots + 1,
        "{recovered:?} {:?}",
        t.db.jobs_in_state(hearth_storage::JobState::Dead, 5).await
    );
    assert!(t.db.pending_emails(10).await.unwrap().is_empty());
    let welcome = smtp.message("verify your e-mail address");
    assert!(welcome.contains("To: mailee@example.com"), "{welcome}");
    assert!(
        welcome.contains("text/html"),
        "plain text and HTML: {welcome}"
    );

    // The welcome link verifies the address.
    let session: Value = app.login("mailee").await.json().await.unwrap();
    let access = session["access_token"].as_str().unwrap().to_owned();
    let me: Value = app.get("/v1/me", Some(&access)).await.json().await.unwrap();
    assert_eq!(me["email_verified"], false);
    let token = token_after(&welcome, "https://play.example/verify-email?token=");
    let verified = app
        .post("/v1/auth/verify-email", None, &json!({ "token": token }))
        .await;
    assert_eq!(verified.status(), StatusCode::NO_CONTENT);
    let me: Value = app.get("/v1/me", Some(&access)).await.json().await.unwrap();
    assert_eq!(me["email_verified"], true);
    let again = app
        .post("/v1/auth/verify-email", None, &json!({ "token": token }))
        .await;
    let problem = crate::support::problem(again, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["errors"][0]["field"], "token");
    let unknown_field = app
        .post(
            "/v1/auth/verify-email",
            None,
            &json!({ "token": token, "admin": true }),
        )
        .await;
    assert!(unknown_field.status().is_client_error());

    // The reset mail's code resets the password through the API.
    let requested = app
        .post(
            "/v1/auth/password-reset",
            None,
            &json!({ "email": "mailee@example.com" }),
        )
        .await;
    assert_eq!(requested.status(), StatusCode::ACCEPTED);
    // The reset is queued after the 202; deliver once it is.
    for _ in 0..50 {
        if !t.db.pending_emails(10).await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(deliver(&app).await.count(Outcome::Completed) >= 1);
    assert!(t.db.pending_emails(10).await.unwrap().is_empty());
    let reset = smtp.message("Reset your Hearth password");
    let code = token_after(&reset, "/v1/auth/password-reset/confirm:");
    let confirmed = app
        .post(
            "/v1/auth/password-reset/confirm",
            None,
            &json!({ "token": code, "new_password": "Brand-New-Pass-7" }),
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::NO_CONTENT);
    let old = app.login("mailee").await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let new = app
        .post(
            "/v1/auth/login",
            None,
            &json!({ "login": "mailee", "password": "Brand-New-Pass-7" }),
        )
        .await;
    assert_eq!(new.status(), StatusCode::OK);
    assert_ne!(PASSWORD, "Brand-New-Pass-7");

    // A login from an address the account has not used brings an alert; the same address
    // again does not.
    for _ in 0..2 {
        let from_afar = app
            .client
            .post(app.url("/v1/auth/login"))
            .header("x-forwarded-for", "203.0.113.77")
            .json(&json!({ "login": "mailee", "password": "Brand-New-Pass-7" }))
            .send()
            .await
            .unwrap();
        assert_eq!(from_afar.status(), StatusCode::OK);
    }
    assert!(deliver(&app).await.count(Outcome::Completed) >= 1);
    assert!(t.db.pending_emails(10).await.unwrap().is_empty());
    let alert = smtp.message("New sign-in");
    assert!(unfolded(&alert).contains("203.0.113.77"), "{alert}");
    assert_eq!(smtp.messages().len(), 3, "welcome, reset, one alert");
    app.stop().await.unwrap();
}
