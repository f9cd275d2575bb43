//! Tower services as handlers (feature `tower`): any `tower::Service<http::Request<_>>`, an
//! axum `Router` included, mounted under a route and run as an async handler.
//!
//! Theory of operation. The reactor has already read the request whole (its body bounded by
//! [`Limits::max_body`](crate::Limits)), so [`ServiceHandler::handle`] copies it into an
//! `http::Request<Full<Bytes>>` (with [`Request::to_http_parts`] for the head) and answers
//! with [`Reply::spawn`]: the service is cloned, polled ready, called and its response body
//! read whole on the tokio runtime, never on a reactor. The reactor's rules for futures hold
//! as they are: the route's deadline (503 `rtserve-shed: deadline`, and the future dropped,
//! which drops the service's own future and whatever it awaits), the per-route limit of
//! futures in flight (503 `rtserve-shed: in-flight` at once, the request's copy dropped
//! unused), a client that resets. The response goes back through the `http` conversion
//! ([`From<http::Response<B>>`](crate::Response)): status and headers, with the framing
//! headers the reactor writes itself dropped. Nothing is streamed either way: a response body
//! longer than [`ServiceHandler::max_response_body`] is a 500.
//!
//! The service sees the path as sent, not with the route's prefix taken off: an axum router
//! mounted under `/api/{*rest}` declares its routes as `/api/...`.

use std::{error::Error as StdError, fmt, future::poll_fn};

use bytes::{Buf, Bytes};
use http_body::Body as HttpBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use tower_service::Service;

use crate::{AsyncContext, Handler, Reply, Request, Response, StatusCode};

/// What [`ServiceHandler::max_response_body`] is unless set: a response is held whole in
/// memory before it is written, so this bounds what one request can make the server hold.
pub const DEFAULT_MAX_RESPONSE_BODY: usize = 8 << 20;

/// The error type tower and hyper box services' errors into.
type BoxError = Box<dyn StdError + Send + Sync>;

/// Mounts `service` as a [`Handler`]: every request it is given is turned into an
/// `http::Request<Full<Bytes>>` and answered by the service on the tokio runtime (see the
/// module's notes). Route it for every method with [`Router::any`](crate::Router::any), and
/// give it a deadline with [`with_deadline`](crate::with_deadline).
///
/// The request carries its [`AsyncContext`] as an extension, so the service can read the
/// deadline (with axum: `Extension<AsyncContext>`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use axum::{extract::Path, routing::get};
/// use rtserve_reactor::{Router, tower::service, with_deadline};
///
/// let users = axum::Router::new()
///     .route("/users/{id}", get(|Path(id): Path<u32>| async move { format!("user {id}\n") }));
/// let router = Router::new()
///     .any("/users/{id}", with_deadline(Duration::from_millis(20), service(users)));
/// # let _ = router;
/// ```
pub fn service<S>(service: S) -> ServiceHandler<S> {
    ServiceHandler {
        service,
        max_response_body: DEFAULT_MAX_RESPONSE_BODY,
    }
}

/// A tower service as a [`Handler`]: made by [`service`].
#[derive(Clone)]
pub struct ServiceHandler<S> {
    service: S,
    max_response_body: usize,
}

impl<S> ServiceHandler<S> {
    /// The longest response body the service may give, in bytes
    /// ([`DEFAULT_MAX_RESPONSE_BODY`] unless set); a longer one is answered 500, and logged.
    #[must_use]
    pub fn max_response_body(mut self, bytes: usize) -> Self {
        self.max_response_body = bytes;
        self
    }
}

impl<S> fmt::Debug for ServiceHandler<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceHandler")
            .field("service", &std::any::type_name::<S>())
            .field("max_response_body", &self.max_response_body)
            .finish()
    }
}

impl<S, ResBody> Handler for ServiceHandler<S>
where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    ResBody: HttpBody + Send + 'static,
    ResBody::Data: Buf + Send,
    ResBody::Error: Into<BoxError>,
{
    fn handle(&self, req: &Request<'_>) -> Reply {
        let parts = match req.to_http_parts() {
            Ok(parts) => parts,
            // The parser took a target or header `http` will not: answer as a parser would.
            Err(e) => {
                return Response::text(StatusCode::BAD_REQUEST, format!("bad request: {e}\n"))
                    .into();
            }
        };
        let body = Full::new(Bytes::copy_from_slice(req.body()));
        let mut service = self.service.clone();
        let limit = self.max_response_body;
        Reply::spawn(move |ctx: AsyncContext| async move {
            let mut request = http::Request::from_parts(parts, body);
            request.extensions_mut().insert(ctx);
            // For the log line: a reference count, not a copy.
            let uri = request.uri().clone();
            match call(&mut service, request, limit).await {
                Ok(response) => response,
                Err(failure) => {
                    log::error!("{uri}: {failure}");
                    crate::answers::internal_error()
                }
            }
        })
    }
}

/// Why a service's request was answered 500.
enum Failure {
    /// The service failed to become ready, or its call failed.
    Service(BoxError),
    /// Its response body failed while being read.
    Body(BoxError),
    /// Its response body was longer than the limit.
    TooLong(usize),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Service(e) => write!(f, "the service failed: {e}"),
            Self::Body(e) => write!(f, "its response body failed: {e}"),
            Self::TooLong(limit) => write!(f, "its response body is over {limit} bytes"),
        }
    }
}

/// Waits for `service` to be ready, calls it, and reads its response body whole, up to
/// `limit` bytes.
async fn call<S, ResBody>(
    service: &mut S,
    request: http::Request<Full<Bytes>>,
    limit: usize,
) -> Result<Response, Failure>
where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: HttpBody,
    ResBody::Data: Buf,
    ResBody::Error: Into<BoxError>,
{
    let service_failed = |e: S::Error| Failure::Service(e.into());
    poll_fn(|cx| service.poll_ready(cx))
        .await
        .map_err(service_failed)?;
    let response = service.call(request).await.map_err(service_failed)?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, limit).collect().await.map_err(|e| {
        if e.is::<LengthLimitError>() {
            Failure::TooLong(limit)
        } else {
            Failure::Body(e)
        }
    })?;
    let body = Vec::from(body.to_bytes());
    Ok(http::Response::from_parts(parts, body).into())
}
