//! Graceful shutdown: in-flight requests finish, new connections are refused.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use hearth_test_support::sqlite_db;
use reqwest::StatusCode;

use crate::support::spawn_custom;

#[tokio::test]
async fn an_in_flight_request_finishes_after_shutdown_begins() {
    let t = sqlite_db().await;
    let mut app = spawn_custom(
        &t,
        |_| {},
        |state| {
            let routes = Router::new().route(
                "/work",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(600)).await;
                    "done"
                }),
            );
            Some(hearth_api::with_stack(routes, state))
        },
    )
    .await;
    let in_flight = {
        let (client, url) = (app.client.clone(), app.url("/work"));
        tokio::spawn(async move { client.get(url).send().await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let server = app.begin_shutdown();
    // Draining starts as soon as the server task sees the signal.
    for _ in 0..100 {
        if app.state.is_draining() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(app.state.is_draining());

    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "done");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();

    let after = reqwest::Client::new()
        .get(app.url("/health/live"))
        .send()
        .await;
    assert!(after.is_err(), "the listener is closed after shutdown");
}

/// The handlers are installed when `shutdown_signal` is called: a SIGTERM that arrives before
/// its future is first polled (a server that has not reached its first poll yet) is caught,
/// not left to the default action, which would kill this test process.
#[cfg(unix)]
#[tokio::test]
async fn a_sigterm_before_the_shutdown_future_is_polled_is_caught() {
    let shutdown = hearth_app::shutdown_signal();
    let pid = std::process::id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    tokio::time::timeout(std::time::Duration::from_secs(10), shutdown)
        .await
        .expect("the SIGTERM completes the shutdown future");
}
