//! Streamed answers over server-sent events.

use std::time::Duration;

use hearth_ai::{
    AiClient, AiError, BreakerConfig, BreakerState, ChatRequest, ChatStream, Completion,
    HttpProvider, Message, RetryPolicy, Role, StreamEvent, https_client,
};

use crate::support::{Reply, ScriptedServer};

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![Message::new(Role::User, "Say hello to the world")],
        max_tokens: 32,
    }
}

fn provider(name: &str, server: &ScriptedServer, timeout: Duration) -> HttpProvider {
    HttpProvider::new(
        name,
        &server.base_url(),
        None,
        "test-model",
        timeout,
        https_client().unwrap(),
    )
    .unwrap()
}

fn client_opening_after(failures: u32, providers: Vec<HttpProvider>) -> AiClient {
    let mut builder = AiClient::builder()
        .retry(RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
        })
        .breaker(BreakerConfig {
            failures,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(60),
        });
    for p in providers {
        builder = builder.provider(p);
    }
    builder.build()
}

fn client(providers: Vec<HttpProvider>) -> AiClient {
    client_opening_after(1, providers)
}

/// Drains a stream: the deltas, and how it ended.
async fn drain(stream: &mut ChatStream) -> (Vec<String>, Result<Completion, AiError>) {
    let mut deltas = Vec::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(StreamEvent::Delta(text)) => deltas.push(text),
            Ok(StreamEvent::Done(completion)) => {
                assert!(stream.next().await.is_none(), "nothing after Done");
                return (deltas, Ok(completion));
            }
            Err(error) => {
                assert!(stream.next().await.is_none(), "nothing after an error");
                return (deltas, Err(error));
            }
        }
    }
    panic!("the stream ended without Done or an error")
}

#[tokio::test]
async fn deltas_arrive_in_order_and_the_end_carries_the_reported_usage() {
    let server = ScriptedServer::start().await;
    server.always(Reply::stream(&["Hel", "lo, ", "world", "!"]));
    let client = client(vec![provider("p", &server, Duration::from_secs(5))]);

    let mut stream = client.stream(&request()).await.unwrap();
    let (deltas, end) = drain(&mut stream).await;

    assert_eq!(deltas, ["Hel", "lo, ", "world", "!"]);
    let completion = end.unwrap();
    assert_eq!(completion.text, "Hello, world!");
    assert_eq!(
        (
            completion.usage.input_tokens,
            completion.usage.output_tokens
        ),
        (11, 7)
    );
    assert!(completion.usage_reported);
    assert_eq!(completion.model, "test-model-2026");
    let sent = &server.requests()[0];
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body["stream_options"]["include_usage"], true);
    assert_eq!(sent.accept.as_deref(), Some("text/event-stream"));
}

#[tokio::test]
async fn a_stream_that_fails_to_start_is_retried_then_falls_over_to_the_next_provider() {
    let (down, up) = (ScriptedServer::start().await, ScriptedServer::start().await);
    down.then([Reply::status(503), Reply::status(503)]);
    up.then([Reply::status(503)]);
    up.always(Reply::stream(&["from ", "up"]));
    let client = client_opening_after(
        2,
        vec![
            provider("down", &down, Duration::from_secs(5)),
            provider("up", &up, Duration::from_secs(5)),
        ],
    );

    let mut stream = client.stream(&request()).await.unwrap();
    assert_eq!(stream.provider(), "up");
    let (_, end) = drain(&mut stream).await;

    assert_eq!(end.unwrap().text, "from up");
    assert_eq!((down.hits(), up.hits()), (2, 2));
    assert_eq!(client.health()[0].breaker.state, BreakerState::Open);
}

#[tokio::test]
async fn a_stream_cut_off_half_way_is_an_interruption_and_counts_against_the_provider() {
    let server = ScriptedServer::start().await;
    let chunk = |text: &str| {
        format!(
            "data: {}\n\n",
            serde_json::json!({"choices": [{"index": 0, "delta": {"content": text}}]})
        )
    };
    server.always(Reply::Sse {
        pieces: vec![chunk("partial "), chunk("answ")],
        pause: Duration::from_millis(5),
    });
    let client = client(vec![provider("p", &server, Duration::from_secs(5))]);

    let mut stream = client.stream(&request()).await.unwrap();
    let (deltas, end) = drain(&mut stream).await;

    assert_eq!(deltas, ["partial ", "answ"]);
    assert!(matches!(end, Err(AiError::Interrupted { .. })), "{end:?}");
    assert_eq!(client.health()[0].breaker.state, BreakerState::Open);
}

#[tokio::test]
async fn a_stream_that_stalls_times_out() {
    let server = ScriptedServer::start().await;
    server.always(Reply::Sse {
        pieces: vec![
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n".to_owned(),
            "data: [DONE]\n\n".to_owned(),
        ],
        pause: Duration::from_millis(400),
    });
    let client = client(vec![provider("p", &server, Duration::from_millis(150))]);

    // Headers come at once; the first chunk 400 ms later, past the 150 ms idle timeout.
    let mut stream = client.stream(&request()).await.unwrap();
    let (_, end) = drain(&mut stream).await;
    assert!(
        matches!(&end, Err(AiError::Interrupted { error, .. }) if error.outcome() == "timeout"),
        "{end:?}"
    );
}

#[tokio::test]
async fn a_provider_that_ignores_stream_is_served_as_one_piece() {
    let server = ScriptedServer::start().await;
    server.always(Reply::ok("all at once"));
    let client = client(vec![provider("p", &server, Duration::from_secs(5))]);

    let mut stream = client.stream(&request()).await.unwrap();
    let (deltas, end) = drain(&mut stream).await;

    assert_eq!(deltas, ["all at once"]);
    assert_eq!(end.unwrap().usage.output_tokens, 7);
}

#[tokio::test]
async fn the_local_provider_streams_without_a_network() {
    let client = AiClient::builder().build();
    let mut stream = client.stream(&request()).await.unwrap();
    let (deltas, end) = drain(&mut stream).await;
    let completion = end.unwrap();
    assert!(deltas.len() > 2);
    assert_eq!(deltas.concat(), completion.text);
    assert_eq!(completion.provider, "local");
}
