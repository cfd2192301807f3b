//! The tower middleware (feature `client`): times every request of the wrapped service and hands
//! it to a [`Recorder`].
//!
//! It works with any `tower::Service<http::Request<B>, Response = http::Response<R>>`:
//! - **axum**: add it with `Router::layer`, so it runs after routing and sees the route template
//!   (`MatchedPath`); requests no route matched (404) fall back to the path normaliser.
//! - **tonic**: `Server::builder().layer(capture.layer())`; gRPC paths (`/pkg.Svc/Method`) are
//!   templates already. gRPC carries its own status in trailers: the recorded code is HTTP's.
//! - **hyper**: wrap the service, then adapt it with `hyper_util::service::TowerToHyperService`;
//!   with no router every path goes through the normaliser.
//!
//! What is measured: from `call` to the response head (not the streaming of the body). A service
//! error (no response at all) is recorded as 500; a request whose future is dropped before it
//! completes (the client went away) is not recorded.
//!
//! Invariant: the only work added to a request is two clock reads, a few clones of reference
//! counted or inline values, and one non-blocking `try_send` ([`Recorder::record`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::http::{Method, Request, Response};
use tower::{Layer, Service};

use super::recorder::{Recorder, RequestRecord, RoutePath};

/// Status recorded when the wrapped service fails without a response.
const ERROR_STATUS: u16 = 500;

/// Wraps services in [`CaptureService`]. Get one from
/// [`Capture::layer`](super::Capture::layer).
#[derive(Debug, Clone)]
pub struct CaptureLayer {
    /// Handed to every service the layer wraps.
    recorder: Recorder,
}

impl CaptureLayer {
    /// A layer recording into `recorder`.
    pub fn new(recorder: Recorder) -> Self {
        Self { recorder }
    }
}

impl<S> Layer<S> for CaptureLayer {
    type Service = CaptureService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CaptureService {
            inner,
            recorder: self.recorder.clone(),
        }
    }
}

/// A service that records every request of `inner`.
#[derive(Debug, Clone)]
pub struct CaptureService<S> {
    /// The wrapped service.
    inner: S,
    /// Where finished requests go.
    recorder: Recorder,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CaptureService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let route = match request.extensions().get::<MatchedPath>() {
            Some(matched) => RoutePath::Matched(matched.clone()),
            None => RoutePath::Raw(request.uri().clone()),
        };
        let pending = Pending {
            recorder: self.recorder.clone(),
            method: request.method().clone(),
            route,
            start: Instant::now(),
        };
        ResponseFuture {
            inner: self.inner.call(request),
            pending: Some(pending),
        }
    }
}

/// What is known of a request before its response.
#[derive(Debug)]
struct Pending {
    /// A clone per request: the future outlives the `&mut self` of `call`.
    recorder: Recorder,
    method: Method,
    route: RoutePath,
    /// When `call` began.
    start: Instant,
}

pin_project_lite::pin_project! {
    /// The response future of [`CaptureService`]: the inner future, recording when it completes.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Pending>,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let outcome = std::task::ready!(this.inner.poll(cx));
        if let Some(pending) = this.pending.take() {
            let ended = Instant::now();
            let status = match &outcome {
                Ok(response) => response.status().as_u16(),
                Err(_) => ERROR_STATUS,
            };
            pending.recorder.record(RequestRecord {
                method: pending.method,
                route: pending.route,
                status,
                elapsed: ended - pending.start,
                ended,
            });
        }
        Poll::Ready(outcome)
    }
}
