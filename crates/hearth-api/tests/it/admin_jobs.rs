//! `GET /v1/admin/jobs` and `POST /v1/admin/jobs/{id}/retry` over HTTP: an admin lists dead
//! letters with their error and queues one again; anyone else sees 404; bad input is a 422
//! naming the field.

use hearth_storage::{Claim, JobState, NewJob};
use hearth_test_support::{TestDb, backend_suite};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{problem, spawn_app};

backend_suite!(an_admin_lists_dead_jobs_and_retries_one);

async fn an_admin_lists_dead_jobs_and_retries_one(t: &TestDb) {
    let app = spawn_app(t).await;
    let player = app.player("plain").await;
    app.register("chief").await;
    t.db.set_role("chief", "admin").await.unwrap();
    let tokens: Value = app.login("chief").await.json().await.unwrap();
    let admin = tokens["access_token"].as_str().unwrap().to_owned();

    // One dead job: claimed, failed for good.
    let job = NewJob::new("email.send", json!({ "email_id": "x" }), 1);
    t.db.enqueue_job(job.clone()).await.unwrap();
    let claimed =
        t.db.claim_jobs(Claim {
            now: time::OffsetDateTime::now_utc(),
            lease: std::time::Duration::from_secs(30),
            limit: 10,
        })
        .await
        .unwrap()
        .remove(0);
    t.db.fail_job(job.id, claimed.lease, "smtp said 550", None)
        .await
        .unwrap();

    let listed = app.get("/v1/admin/jobs?state=dead", Some(&admin)).await;
    assert_eq!(listed.status(), StatusCode::OK);
    let listed: Value = listed.json().await.unwrap();
    assert_eq!(listed["state"], "dead");
    assert_eq!(listed["items"][0]["id"], job.id.to_string());
    assert_eq!(listed["items"][0]["last_error"], "smtp said 550");
    assert_eq!(listed["items"][0]["attempts"], 1);
    let queued: Value = app
        .get("/v1/admin/jobs?state=queued", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(queued["items"].as_array().unwrap().len(), 0);

    for (path, field) in [
        ("/v1/admin/jobs?state=lost", "state"),
        ("/v1/admin/jobs?limit=0", "limit"),
    ] {
        let refused = problem(
            app.get(path, Some(&admin)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(refused["errors"][0]["field"], field, "{path}");
    }
    assert!(
        app.get("/v1/admin/jobs?color=red", Some(&admin))
            .await
            .status()
            .is_client_error(),
        "unknown query fields are refused"
    );
    for token in [Some(player.as_str()), None] {
        let hidden = app.get("/v1/admin/jobs", token).await;
        assert!(
            matches!(
                hidden.status(),
                StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED
            ),
            "{}",
            hidden.status()
        );
    }
    let path = format!("/v1/admin/jobs/{}/retry", job.id);
    assert_eq!(
        app.post(&path, Some(&player), &json!({})).await.status(),
        StatusCode::NOT_FOUND
    );

    let retried = app.post(&path, Some(&admin), &json!({})).await;
    assert_eq!(retried.status(), StatusCode::OK);
    let retried: Value = retried.json().await.unwrap();
    assert_eq!(retried["job"]["state"], "queued");
    assert_eq!(retried["job"]["attempts"], 0);
    assert_eq!(
        t.db.job(job.id).await.unwrap().unwrap().state,
        JobState::Queued
    );
    // Retrying it again, or a job that is not there: 404.
    problem(
        app.post(&path, Some(&admin), &json!({})).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        app.post("/v1/admin/jobs/not-a-uuid/retry", Some(&admin), &json!({}))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    app.stop().await.unwrap();
}
