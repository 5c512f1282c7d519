//! The worker's admin port, as a library so tests can serve it on port 0.
//!
//! The jobs themselves are [`hearth_app::jobs`]; the binary wires them with
//! [`hearth_app::Hearth`]. This crate adds only the admin listener: `GET /metrics` (the
//! Prometheus exposition) and `GET /health/live`, on hyper directly, since two fixed routes
//! need no web framework.

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use hearth_observability::metrics::PrometheusHandle;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Serves `/metrics` and `/health/live` on `listener` until `shutdown` completes; connections
/// still open then are closed when the process exits.
///
/// # Errors
/// When accepting a connection fails.
pub async fn serve_admin(
    listener: TcpListener,
    metrics: PrometheusHandle,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => accepted?,
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = answer(&request, &metrics);
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "admin connection ended with an error");
            }
        });
    }
}

fn answer(request: &Request<Incoming>, metrics: &PrometheusHandle) -> Response<Full<Bytes>> {
    let (content_type, body) = match request.uri().path() {
        "/metrics" => (
            "text/plain; version=0.0.4; charset=utf-8",
            hearth_observability::metrics::render(metrics),
        ),
        "/health/live" => ("application/json", r#"{"status":"ok"}"#.to_owned()),
        _ => return status(StatusCode::NOT_FOUND),
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut refused = status(StatusCode::METHOD_NOT_ALLOWED);
        refused
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return refused;
    }
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}
