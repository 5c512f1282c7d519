//! The gateway binary itself: start-up refusals, serving, and shutdown on a real SIGTERM.

#![allow(unreachable_pub)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on what should not happen"
)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn gateway(dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth-gateway"));
    // A clean environment and a scratch directory: no .env or HEARTH__ variables leak in.
    command
        .env_clear()
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[test]
fn production_refuses_to_start_on_defaults_and_lists_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let output = gateway(dir.path())
        .env("HEARTH__ENVIRONMENT", "production")
        .env("HEARTH__SERVER__CORS_ORIGINS", "*")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in [
        "refusing to start in production",
        "HEARTH__AUTH__JWT_SECRET",
        "'*'",
        "SQLite",
    ] {
        assert!(stderr.contains(needle), "{needle} missing from:\n{stderr}");
    }
    assert!(
        !dir.path().join("data").exists(),
        "nothing was created before refusing"
    );
}

#[test]
fn a_misspelt_setting_stops_start_up_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let output = gateway(dir.path())
        .env("HEARTH__SERVER__ADRR", "127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("adrr"));
}

#[test]
fn migrate_creates_the_embedded_database_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let output = gateway(dir.path()).arg("migrate").output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("data/hearth.db").exists());
}

struct Running {
    child: Child,
    addr: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &std::path::Path) -> (Running, std::sync::mpsc::Receiver<String>) {
    start_with(dir, &[])
}

// The child is owned by `Running`, whose Drop kills and reaps it.
#[allow(clippy::zombie_processes)]
fn start_with(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (Running, std::sync::mpsc::Receiver<String>) {
    let mut child = gateway(dir)
        .envs(env.iter().copied())
        .env("HEARTH__SERVER__ADDR", "127.0.0.1:0")
        .env("HEARTH__LOG__FORMAT", "json")
        .env("HEARTH__AUTH__BCRYPT_COST", "4")
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("a listening line");
        let log: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if log["message"] == "hearth-gateway listening" {
            let addr = log["fields"]["addr"].as_str().unwrap().to_owned();
            return (Running { child, addr }, rx);
        }
    }
}

#[test]
fn the_embedded_default_serves_and_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut running, logs) = start(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime.block_on(async {
        reqwest::get(format!("http://{}/health/ready", running.addr))
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);

    let pid = running.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(status) = running.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "exit status {exit}");
    let messages: Vec<String> = logs
        .try_iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(&line).ok())
        .filter_map(|log| log["message"].as_str().map(str::to_owned))
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("draining")),
        "{messages:?}"
    );
    assert!(messages.iter().any(|m| m == "shut down"), "{messages:?}");
}

/// A bare OTLP/HTTP receiver: answers every POST with 200 and hands over its path and body.
fn otlp_sink() -> (String, std::sync::mpsc::Receiver<(String, Vec<u8>)>) {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let path = request_line.split(' ').nth(1).unwrap_or("").to_owned();
            let _ = tx.send((path, body));
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (format!("http://{addr}"), rx)
}

#[test]
fn the_binary_exports_its_spans_at_exit_and_serves_metrics_on_the_admin_port() {
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, exports) = otlp_sink();
    let (mut running, logs) = start_with(
        dir.path(),
        &[
            ("HEARTH__TELEMETRY__OTLP_ENDPOINT", endpoint.as_str()),
            ("HEARTH__TELEMETRY__SERVICE_NAME", "gateway-under-test"),
            ("HEARTH__TELEMETRY__METRICS_ADDR", "127.0.0.1:0"),
        ],
    );
    let admin = loop {
        let line = logs
            .recv_timeout(Duration::from_secs(10))
            .expect("the admin port line");
        let log: serde_json::Value = serde_json::from_str(&line).unwrap();
        if log["message"] == "metrics listening on the admin port" {
            break log["fields"]["admin"].as_str().unwrap().to_owned();
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (main_metrics, admin_metrics) = runtime.block_on(async {
        let main = reqwest::get(format!("http://{}/metrics", running.addr))
            .await
            .unwrap()
            .status();
        let admin = reqwest::get(format!("http://{admin}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        (main, admin)
    });
    assert_eq!(main_metrics, 404, "metrics left the public port");
    assert!(
        admin_metrics.contains("hearth_build_info{"),
        "{admin_metrics}"
    );

    // SIGTERM: the guard flushes the queued spans before the process exits.
    let pid = running.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let contains = |body: &[u8], needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    // An earlier timed batch may hold the start-up spans; the request's comes with the flush.
    loop {
        let (path, body) = exports
            .recv_timeout(Duration::from_secs(20))
            .expect("the request's span exported before exit");
        assert_eq!(path, "/v1/traces");
        assert!(
            contains(&body, b"gateway-under-test"),
            "service.name in the resource"
        );
        if contains(&body, b"GET /metrics") {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while running.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the gateway did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn verify_round_rederives_every_game_and_catches_a_tampered_record() {
    let dir = tempfile::tempdir().unwrap();
    let (running, _logs) = start(dir.path());
    let base = format!("http://{}", running.addr);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let records: Vec<serde_json::Value> = runtime.block_on(async {
        let client = reqwest::Client::new();
        let post = |path: &str, token: Option<&str>, body: serde_json::Value| {
            let mut request = client.post(format!("{base}{path}")).json(&body);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send()
        };
        let password = "Tr0ub4dor&3x";
        post("/v1/auth/register", None, serde_json::json!({"username": "verifier", "email": "v@example.com", "password": password})).await.unwrap();
        let tokens: serde_json::Value = post("/v1/auth/login", None, serde_json::json!({"login": "verifier", "password": password})).await.unwrap().json().await.unwrap();
        let token = tokens["access_token"].as_str().unwrap().to_owned();
        let mut rounds = Vec::new();
        for (path, body) in [
            ("/v1/games/slots/spin", serde_json::json!({"bet": 5})),
            ("/v1/games/dice/roll", serde_json::json!({"bet": 100, "target": 4000, "direction": "over"})),
            ("/v1/games/roulette/spin", serde_json::json!({"bets": [{"kind": "odd", "amount": 3}, {"kind": "corner", "numbers": [1, 2, 4, 5], "amount": 2}]})),
            ("/v1/games/blackjack", serde_json::json!({"bet": 10})),
        ] {
            let round: serde_json::Value = post(path, Some(&token), body).await.unwrap().json().await.unwrap();
            if round["status"] == "open" {
                let action = format!("/v1/games/blackjack/{}/action", round["round_id"].as_str().unwrap());
                post(&action, Some(&token), serde_json::json!({"action": "stand"})).await.unwrap();
            }
            rounds.push(round["round_id"].as_str().unwrap().to_owned());
        }
        post("/v1/fairness/rotate", Some(&token), serde_json::json!({})).await.unwrap();
        let mut records = Vec::new();
        for id in rounds {
            let response = client.get(format!("{base}/v1/fairness/rounds/{id}")).bearer_auth(&token).send().await.unwrap();
            records.push(response.json().await.unwrap());
        }
        records
    });
    drop(running);

    let verify = |record: &serde_json::Value| {
        let path = dir.path().join("round.json");
        std::fs::write(&path, record.to_string()).unwrap();
        Command::new(env!("CARGO_BIN_EXE_hearth-gateway"))
            .env_clear()
            .arg("verify-round")
            .arg(&path)
            .output()
            .unwrap()
    };
    for record in &records {
        let output = verify(record);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{record}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.starts_with("verified "), "{stdout}");
    }
    let mut tampered = records[0].clone();
    tampered["win"] = serde_json::json!(tampered["win"].as_i64().unwrap() + 1_000);
    let output = verify(&tampered);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("win differs"));
}

#[test]
fn openapi_prints_the_document_without_settings_or_a_database() {
    let dir = tempfile::tempdir().unwrap();
    // A setting that would stop `serve` does not matter: the document needs none.
    let output = gateway(dir.path())
        .arg("openapi")
        .env("HEARTH__NOT_A_SECTION__X", "1")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    assert!(document["paths"]["/v1/games/slots/spin"]["post"].is_object());
    assert!(!dir.path().join("data").exists(), "no database was created");
}
