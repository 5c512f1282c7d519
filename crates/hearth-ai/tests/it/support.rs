//! A scripted chat-completions server on a random loopback port: each request takes the next
//! scripted reply (or the standing one), and every request is recorded.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A JSON body with a status and extra headers.
    Json {
        status: u16,
        body: String,
        headers: Vec<(&'static str, String)>,
    },
    /// An event stream, written piece by piece with a pause before each.
    Sse {
        pieces: Vec<String>,
        pause: Duration,
    },
    /// The reply after a delay.
    Slow(Duration, Box<Reply>),
    /// No answer at all.
    Hang,
    /// The connection is closed without an answer.
    Drop,
}

impl Reply {
    /// A chat completion of `text`, reporting 11 prompt and 7 completion tokens.
    pub fn ok(text: &str) -> Self {
        Self::Json {
            status: 200,
            body: json!({
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": "test-model-2026",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
            })
            .to_string(),
            headers: Vec::new(),
        }
    }

    /// An OpenAI-style error with `status`.
    pub fn status(status: u16) -> Self {
        Self::Json {
            status,
            body:
                json!({"error": {"message": format!("scripted {status}"), "type": "server_error"}})
                    .to_string(),
            headers: Vec::new(),
        }
    }

    /// `status` with one extra header.
    pub fn with_header(self, name: &'static str, value: &str) -> Self {
        match self {
            Self::Json {
                status,
                body,
                mut headers,
            } => {
                headers.push((name, value.to_owned()));
                Self::Json {
                    status,
                    body,
                    headers,
                }
            }
            other => other,
        }
    }

    /// A streamed completion of `pieces`, then a usage chunk (11 in, 7 out) and `[DONE]`.
    pub fn stream(pieces: &[&str]) -> Self {
        let mut events: Vec<String> = pieces
            .iter()
            .map(|p| {
                let chunk = json!({"id": "c", "object": "chat.completion.chunk", "model": "test-model-2026",
                    "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": null}]});
                format!("data: {chunk}\n\n")
            })
            .collect();
        events.push(format!(
            "data: {}\n\n",
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        ));
        events.push(format!(
            "data: {}\n\n",
            json!({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 7}})
        ));
        events.push("data: [DONE]\n\n".to_owned());
        Self::Sse {
            pieces: events,
            pause: Duration::from_millis(5),
        }
    }
}

/// A request as the server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub authorization: Option<String>,
    pub accept: Option<String>,
    pub body: Value,
}

#[derive(Default)]
struct Script {
    queue: VecDeque<Reply>,
    standing: Option<Reply>,
    seen: Vec<Recorded>,
}

/// The server. Dropping it stops accepting.
pub struct ScriptedServer {
    pub addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptedServer {
    /// A server answering `ok("standing answer")` until scripted otherwise.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(Mutex::new(Script {
            standing: Some(Reply::ok("standing answer")),
            ..Script::default()
        }));
        let shared = Arc::clone(&script);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let script = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(Arc::clone(&script), request));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, script, task }
    }

    /// The base URL a provider is configured with.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues the next replies.
    pub fn then(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().unwrap().queue.extend(replies);
    }

    /// Answers with `reply` whenever nothing is queued.
    pub fn always(&self, reply: Reply) {
        self.script.lock().unwrap().standing = Some(reply);
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.script.lock().unwrap().seen.len()
    }

    /// The requests received.
    pub fn requests(&self) -> Vec<Recorded> {
        self.script.lock().unwrap().seen.clone()
    }
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

async fn handle(
    script: Arc<Mutex<Script>>,
    request: Request<Incoming>,
) -> Result<Response<Body>, std::io::Error> {
    let path = request.uri().path().to_owned();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (authorization, accept) = (header("authorization"), header("accept"));
    let bytes = request.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let reply = {
        let mut script = script.lock().unwrap();
        script.seen.push(Recorded {
            path,
            authorization,
            accept,
            body,
        });
        script
            .queue
            .pop_front()
            .or_else(|| script.standing.clone())
            .unwrap_or(Reply::Drop)
    };
    respond(reply).await
}

async fn respond(mut reply: Reply) -> Result<Response<Body>, std::io::Error> {
    loop {
        match reply {
            Reply::Slow(delay, inner) => {
                tokio::time::sleep(delay).await;
                reply = *inner;
            }
            Reply::Hang => std::future::pending::<()>().await,
            Reply::Drop => {
                return Err(std::io::Error::other("scripted drop"));
            }
            Reply::Json {
                status,
                body,
                headers,
            } => {
                let mut builder = Response::builder()
                    .status(status)
                    .header("content-type", "application/json");
                for (name, value) in headers {
                    builder = builder.header(name, value);
                }
                return Ok(builder
                    .body(Full::new(Bytes::from(body)).boxed_unsync())
                    .unwrap());
            }
            Reply::Sse { pieces, pause } => {
                let stream = futures_util::stream::iter(pieces).then(move |piece| async move {
                    tokio::time::sleep(pause).await;
                    Ok::<_, Infallible>(Frame::data(Bytes::from(piece)))
                });
                return Ok(Response::builder()
                    .status(200)
                    .header("content-type", "text/event-stream")
                    .body(StreamBody::new(stream).boxed_unsync())
                    .unwrap());
            }
        }
    }
}
