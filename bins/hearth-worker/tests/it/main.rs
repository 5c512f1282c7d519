//! The worker's admin port over real HTTP. The jobs' own suite is in `hearth-app`.

#![allow(unreachable_pub)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on what should not happen"
)]

#[tokio::test]
async fn the_admin_port_serves_metrics_and_liveness() {
    let metrics = hearth_observability::metrics::install();
    hearth_observability::metrics::record_build_info("hearth-worker", "test");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(hearth_worker::serve_admin(
        listener,
        metrics,
        std::future::pending(),
    ));
    let live = reqwest::get(format!("http://{addr}/health/live"))
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("hearth_build_info{service=\"hearth-worker\""),
        "{text}"
    );
    server.abort();
}

#[tokio::test]
async fn the_admin_port_refuses_other_paths_and_methods() {
    let metrics = hearth_observability::metrics::install();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hearth_worker::serve_admin(listener, metrics, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let missing = client
        .get(format!("http://{addr}/v1/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let posted = client
        .post(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 405);
    assert_eq!(posted.headers()["allow"], "GET, HEAD");
    stop.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .expect("the admin port stops on shutdown")
        .unwrap()
        .unwrap();
}
