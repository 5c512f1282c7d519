//! [`CompressWhenAsked`]: response compression, only for the clients that ask for it.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use tower::{Layer, Service};
use tower_http::compression::predicate::DefaultPredicate;
use tower_http::compression::{Compression, CompressionBody};

/// Response compression for the clients that ask for it (`Accept-Encoding`), by tower-http's
/// `Compression`. That layer alone wraps every response body, and looks for an encoding to
/// use, even when the request accepts none, as most API clients' requests do; those requests
/// go straight to the service it wraps, and their answer gets only the `Vary: accept-encoding`
/// that `Compression` would have added (to a body it would compress for another client).
#[derive(Clone)]
pub(crate) struct CompressWhenAsked<S>(Compression<S>);

/// Applies [`CompressWhenAsked`].
#[derive(Clone, Copy)]
pub(crate) struct CompressWhenAskedLayer;

impl<S> Layer<S> for CompressWhenAskedLayer {
    type Service = CompressWhenAsked<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CompressWhenAsked(Compression::new(inner))
    }
}

type Compressed<F> = futures_util::future::MapOk<
    tower_http::compression::ResponseFuture<F, DefaultPredicate>,
    fn(axum::http::Response<CompressionBody<Body>>) -> Response,
>;

impl<S> Service<Request> for CompressWhenAsked<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = futures_util::future::Either<
        Compressed<S::Future>,
        futures_util::future::MapOk<S::Future, fn(Response) -> Response>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The same inner service either way: `Compression` only asks it.
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        use futures_util::TryFutureExt as _;

        if request.headers().contains_key(header::ACCEPT_ENCODING) {
            let boxed: fn(axum::http::Response<CompressionBody<Body>>) -> Response =
                |response| response.map(Body::new);
            futures_util::future::Either::Left(self.0.call(request).map_ok(boxed))
        } else {
            let vary: fn(Response) -> Response = vary_on_accept_encoding;
            futures_util::future::Either::Right(self.0.get_mut().call(request).map_ok(vary))
        }
    }
}

/// Adds `Vary: accept-encoding` where `Compression` would have: the body is one it compresses
/// for a client that accepts gzip, and nothing below has said so already.
fn vary_on_accept_encoding(mut response: Response) -> Response {
    use tower_http::compression::Predicate as _;

    let said = response
        .headers()
        .get_all(header::VARY)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"accept-encoding"));
    if !said
        && !response.headers().contains_key(header::CONTENT_ENCODING)
        && DefaultPredicate::new().should_compress(&response)
    {
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}
