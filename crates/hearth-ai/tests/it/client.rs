//! Whole answers: retries, refusals, breakers, fallbacks between providers, deadlines.

use std::time::{Duration, Instant};

use hearth_ai::{
    AiClient, AiError, BreakerConfig, BreakerState, ChatRequest, HttpProvider, Message,
    ProviderError, RetryPolicy, Role, https_client,
};
use secrecy::SecretString;

use crate::support::{Reply, ScriptedServer};

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![
            Message::new(Role::System, "You are a tutor."),
            Message::new(Role::User, "What is a monad?"),
        ],
        max_tokens: 64,
    }
}

fn provider(name: &str, server: &ScriptedServer, timeout: Duration) -> HttpProvider {
    HttpProvider::new(
        name,
        &server.base_url(),
        Some(SecretString::from(format!("sk-{name}-canary"))),
        "test-model",
        timeout,
        https_client().unwrap(),
    )
    .unwrap()
}

fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(1_500),
    }
}

fn breaker(failures: u32, cooldown: Duration) -> BreakerConfig {
    BreakerConfig {
        failures,
        window: Duration::from_secs(60),
        cooldown,
    }
}

fn status_of(error: &AiError) -> Vec<Option<u16>> {
    match error {
        AiError::Unavailable { failures, .. } => failures
            .iter()
            .map(|f| match &f.error {
                Some(ProviderError::Status { status, .. }) => Some(*status),
                _ => None,
            })
            .collect(),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_503_is_retried_and_the_second_attempt_answers() {
    let server = ScriptedServer::start().await;
    server.then([Reply::status(503), Reply::ok("Functors with flatMap.")]);
    let client = AiClient::builder()
        .provider(provider("primary", &server, Duration::from_secs(5)))
        .retry(fast_retries(3))
        .build();

    let answer = client.complete(&request()).await.unwrap();

    assert_eq!(answer.text, "Functors with flatMap.");
    assert_eq!(answer.provider, "primary");
    assert_eq!(answer.model, "test-model-2026");
    assert_eq!(
        (answer.usage.input_tokens, answer.usage.output_tokens),
        (11, 7)
    );
    assert!(answer.usage_reported);
    assert_eq!(server.hits(), 2);
    // The wire format: the model, the messages, max_tokens, the key as a bearer token.
    let sent = &server.requests()[1];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.body["model"], "test-model");
    assert_eq!(sent.body["max_tokens"], 64);
    assert_eq!(sent.body["stream"], false);
    assert_eq!(sent.body["messages"][1]["role"], "user");
    assert_eq!(sent.body["messages"][1]["content"], "What is a monad?");
    assert_eq!(
        sent.authorization.as_deref(),
        Some("Bearer sk-primary-canary")
    );
}

#[tokio::test]
async fn a_400_is_not_retried_and_does_not_count_against_the_provider() {
    let server = ScriptedServer::start().await;
    server.always(Reply::status(400));
    let client = AiClient::builder()
        .provider(provider("primary", &server, Duration::from_secs(5)))
        .retry(fast_retries(5))
        .breaker(breaker(1, Duration::from_secs(60)))
        .build();

    let error = client.complete(&request()).await.unwrap_err();

    assert_eq!(status_of(&error), [Some(400)]);
    assert_eq!(server.hits(), 1, "a refused request is never retried");
    assert_eq!(client.health()[0].breaker.state, BreakerState::Closed);
}

#[tokio::test]
async fn retry_after_is_honoured_before_the_next_attempt() {
    let server = ScriptedServer::start().await;
    server.then([
        Reply::status(429).with_header("retry-after", "1"),
        Reply::ok("after the wait"),
    ]);
    let client = AiClient::builder()
        .provider(provider("primary", &server, Duration::from_secs(5)))
        .retry(fast_retries(2))
        .build();

    let started = Instant::now();
    let answer = client.complete(&request()).await.unwrap();

    assert_eq!(answer.text, "after the wait");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn a_retry_after_longer_than_the_cap_moves_on_to_the_next_provider() {
    let (first, second) = (ScriptedServer::start().await, ScriptedServer::start().await);
    first.always(Reply::status(429).with_header("retry-after", "120"));
    second.always(Reply::ok("from the second"));
    let client = AiClient::builder()
        .provider(provider("first", &first, Duration::from_secs(5)))
        .provider(provider("second", &second, Duration::from_secs(5)))
        .retry(fast_retries(3))
        .build();

    let started = Instant::now();
    let answer = client.complete(&request()).await.unwrap();

    assert_eq!(answer.provider, "second");
    assert_eq!(first.hits(), 1);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_failing_provider_opens_its_breaker_and_the_next_provider_answers() {
    let (flaky, backup) = (ScriptedServer::start().await, ScriptedServer::start().await);
    flaky.always(Reply::status(500));
    backup.always(Reply::ok("backup answer"));
    let client = AiClient::builder()
        .provider(provider("flaky", &flaky, Duration::from_secs(5)))
        .provider(provider("backup", &backup, Duration::from_secs(5)))
        .retry(fast_retries(1))
        .breaker(breaker(3, Duration::from_secs(60)))
        .build();

    for call in 1..=3 {
        let answer = client.complete(&request()).await.unwrap();
        assert_eq!(answer.provider, "backup", "call {call}");
    }
    assert_eq!(flaky.hits(), 3);
    let health = client.health();
    assert_eq!(health[0].breaker.state, BreakerState::Open);
    assert_eq!(health[0].breaker.total_failures, 3);
    assert!(health[0].breaker.probe_in.is_some());
    assert_eq!(health[1].breaker.state, BreakerState::Closed);

    // Open: skipped at once, without a request.
    for _ in 0..5 {
        assert_eq!(
            client.complete(&request()).await.unwrap().provider,
            "backup"
        );
    }
    assert_eq!(flaky.hits(), 3, "an open provider gets no request");
    assert_eq!(backup.hits(), 8);
}

#[tokio::test]
async fn a_half_open_probe_that_succeeds_closes_the_breaker_and_one_that_fails_reopens_it() {
    let (flaky, backup) = (ScriptedServer::start().await, ScriptedServer::start().await);
    flaky.always(Reply::status(503));
    backup.always(Reply::ok("backup answer"));
    let cooldown = Duration::from_millis(300);
    let client = AiClient::builder()
        .provider(provider("flaky", &flaky, Duration::from_secs(5)))
        .provider(provider("backup", &backup, Duration::from_secs(5)))
        .retry(fast_retries(1))
        .breaker(breaker(2, cooldown))
        .build();
    for _ in 0..2 {
        client.complete(&request()).await.unwrap();
    }
    assert_eq!(client.health()[0].breaker.state, BreakerState::Open);

    // The probe fails: open again, for another cool-down.
    tokio::time::sleep(cooldown + Duration::from_millis(50)).await;
    assert_eq!(
        client.complete(&request()).await.unwrap().provider,
        "backup"
    );
    assert_eq!(flaky.hits(), 3, "one probe");
    assert_eq!(client.health()[0].breaker.state, BreakerState::Open);
    assert_eq!(client.health()[0].breaker.times_opened, 2);

    // The provider recovers; after the cool-down the probe succeeds and closes the breaker.
    flaky.always(Reply::ok("recovered"));
    tokio::time::sleep(cooldown + Duration::from_millis(50)).await;
    let answer = client.complete(&request()).await.unwrap();
    assert_eq!(
        (answer.provider.as_str(), answer.text.as_str()),
        ("flaky", "recovered")
    );
    assert_eq!(client.health()[0].breaker.state, BreakerState::Closed);
    assert_eq!(client.complete(&request()).await.unwrap().provider, "flaky");
}

#[tokio::test]
async fn when_every_provider_is_down_the_call_fails_with_each_attempt_listed() {
    let (a, b) = (ScriptedServer::start().await, ScriptedServer::start().await);
    a.always(Reply::status(502));
    b.always(Reply::Drop);
    // A port nothing listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let refused = HttpProvider::new(
        "refused",
        &format!("http://{closed}/v1"),
        None,
        "m",
        Duration::from_secs(2),
        https_client().unwrap(),
    )
    .unwrap();
    let client = AiClient::builder()
        .provider(provider("a", &a, Duration::from_secs(5)))
        .provider(provider("b", &b, Duration::from_secs(5)))
        .provider(refused)
        .retry(fast_retries(2))
        .build();

    let error = client.complete(&request()).await.unwrap_err();

    let AiError::Unavailable {
        failures,
        retry_after,
    } = &error
    else {
        panic!("{error:?}")
    };
    let described: Vec<(String, &'static str)> = failures
        .iter()
        .map(|f| (f.provider.clone(), f.error.as_ref().unwrap().outcome()))
        .collect();
    assert_eq!(
        described,
        [
            ("a".to_owned(), "server_error"),
            ("a".to_owned(), "server_error"),
            ("b".to_owned(), "connect"),
            ("b".to_owned(), "connect"),
            ("refused".to_owned(), "connect"),
            ("refused".to_owned(), "connect"),
        ]
    );
    assert!(*retry_after >= Duration::from_secs(1));
    assert_eq!((a.hits(), b.hits()), (2, 2));
}

#[tokio::test]
async fn a_hanging_provider_times_out_and_the_next_one_answers() {
    let (slow, quick) = (ScriptedServer::start().await, ScriptedServer::start().await);
    slow.always(Reply::Hang);
    quick.always(Reply::ok("quick"));
    let client = AiClient::builder()
        .provider(provider("slow", &slow, Duration::from_millis(200)))
        .provider(provider("quick", &quick, Duration::from_secs(5)))
        .retry(fast_retries(2))
        .build();

    let started = Instant::now();
    let answer = client.complete(&request()).await.unwrap();

    assert_eq!(answer.provider, "quick");
    assert_eq!(slow.hits(), 2, "a timeout is retried");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn the_deadline_bounds_the_whole_call() {
    let server = ScriptedServer::start().await;
    server.always(Reply::Slow(
        Duration::from_secs(30),
        Box::new(Reply::ok("too late")),
    ));
    let client = AiClient::builder()
        .provider(provider("slow", &server, Duration::from_secs(20)))
        .retry(fast_retries(5))
        .deadline(Duration::from_millis(400))
        .build();

    let started = Instant::now();
    let error = client.complete(&request()).await.unwrap_err();

    assert_eq!(error, AiError::Deadline);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(390) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn a_provider_reporting_no_usage_gets_an_estimate() {
    let server = ScriptedServer::start().await;
    server.always(Reply::Json {
        status: 200,
        body: r#"{"choices":[{"message":{"role":"assistant","content":"twelve chars"}}]}"#
            .to_owned(),
        headers: Vec::new(),
    });
    let client = AiClient::builder()
        .provider(provider("p", &server, Duration::from_secs(5)))
        .build();

    let answer = client.complete(&request()).await.unwrap();

    assert!(!answer.usage_reported);
    assert_eq!(answer.usage.output_tokens, 3);
    assert!(answer.usage.input_tokens > 0);
    assert_eq!(answer.model, "test-model");
}

#[tokio::test]
async fn an_answer_that_is_not_the_wire_format_fails_without_retry() {
    let server = ScriptedServer::start().await;
    server.always(Reply::Json {
        status: 200,
        body: "<html>proxy error</html>".to_owned(),
        headers: Vec::new(),
    });
    let client = AiClient::builder()
        .provider(provider("p", &server, Duration::from_secs(5)))
        .retry(fast_retries(3))
        .build();

    let error = client.complete(&request()).await.unwrap_err();

    let AiError::Unavailable { failures, .. } = error else {
        panic!()
    };
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].error.as_ref().unwrap().outcome(), "invalid");
}

#[tokio::test]
async fn the_key_is_never_in_debug_output() {
    let server = ScriptedServer::start().await;
    let p = provider("p", &server, Duration::from_secs(5));
    let client = AiClient::builder().provider(p).build();
    let printed = format!("{client:?} {:?}", client.health());
    assert!(!printed.contains("canary"), "{printed}");
    let p = provider("p", &server, Duration::from_secs(5));
    assert!(!format!("{p:?}").contains("canary"));
}
