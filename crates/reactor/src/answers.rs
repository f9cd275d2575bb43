//! The server's own answers, made in one place: the 503s of its refusals (each naming its
//! reason in the body and in the `rtserve-shed` header), the 408 for a request that did not
//! come in time, and the 500 for a handler that failed or panicked.
//! Static text and headers, so that a refusal allocates nothing for them.

use std::panic::{AssertUnwindSafe, catch_unwind};

use rtserve_protocol::StatusCode;

use crate::{Response, Shed};

/// Each reason's `rtserve-shed` header, in the order of [`Shed::ALL`], its value the
/// reason's [`Shed::as_str`]: static, so that a refusal allocates nothing for it.
static SHED_HEADERS: [[(&str, &[u8]); 1]; Shed::ALL.len()] = {
    let mut headers = [[("rtserve-shed", b"" as &[u8])]; Shed::ALL.len()];
    let mut i = 0;
    while i < Shed::ALL.len() {
        headers[i][0].1 = Shed::ALL[i].as_str().as_bytes();
        i += 1;
    }
    headers
};

/// The 503 for an offloaded request shed for `reason`, with `Retry-After` if configured.
pub(crate) fn shed(reason: Shed, retry_after: Option<u32>) -> Response {
    let body = match reason {
        Shed::QueueFull => "overloaded: the queue is full\n",
        Shed::ExpectedMiss => "overloaded: expected to miss the deadline\n",
        Shed::NotStarted => "overloaded: not started in time\n",
        Shed::Deadline => "deadline exceeded\n",
        Shed::InFlight => "overloaded: too many requests in flight on this route\n",
        Shed::CallerBudget => "the caller's budget is spent\n",
    };
    let header = &SHED_HEADERS[reason as usize];
    let response =
        Response::text(StatusCode::SERVICE_UNAVAILABLE, body).with_static_headers(header);
    match retry_after {
        Some(seconds) => response.with_header("Retry-After", seconds.to_string().into_bytes()),
        None => response,
    }
}

/// The 408 for a head, or a body, that did not come in time (RFC 9110 §15.5.9).
pub(crate) fn request_timeout() -> Response {
    Response::text(StatusCode::REQUEST_TIMEOUT, "request timeout\n")
}

/// A caller's budget header in neither form the convention allows, or sent twice (see
/// `caller.rs`).
pub(crate) fn bad_deadline_header() -> Response {
    Response::text(StatusCode::BAD_REQUEST, "bad deadline header\n")
}

/// The body budget's refusal.
pub(crate) fn no_room_for_body() -> Response {
    let body = "overloaded: no room to buffer the request body\n";
    Response::text(StatusCode::SERVICE_UNAVAILABLE, body)
        .with_static_headers(&[("rtserve-shed", b"body-budget")])
}

/// The output budget's refusal.
pub(crate) fn no_room_to_send() -> Response {
    let body = "overloaded: no room to buffer the response\n";
    Response::text(StatusCode::SERVICE_UNAVAILABLE, body)
        .with_static_headers(&[("rtserve-shed", b"output-budget")])
}

/// A handler (or job, or future, or service) that failed: it panicked, or its answer could
/// not be had.
pub(crate) fn internal_error() -> Response {
    Response::text(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n")
}

/// What `work` returns, or the 500 of [`internal_error`] if it panics: a handler, a job or a
/// poll of a future that panics fails its own request alone. The panic hook has reported the
/// panic by then.
///
/// # Implementation notes
///
/// `work` is taken as unwind-safe: after a panic nothing reads what it left half done as if
/// it were whole (the request is answered with the 500, the job's closure is gone, a future
/// that panicked is not polled again). A handler that keeps state across requests and
/// panics mid-update is its own to make consistent, as with any panic it catches.
pub(crate) fn internal_error_on_panic<T: From<Response>>(work: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|_| internal_error().into())
}

#[cfg(test)]
mod tests {
    use std::task::Poll;

    use super::*;
    use crate::Reply;

    #[test]
    fn each_shed_names_its_own_reason() {
        for reason in Shed::ALL {
            let response = shed(reason, None);
            let named: Vec<_> = response
                .headers()
                .filter(|&(name, _)| name == "rtserve-shed")
                .map(|(_, value)| value.to_vec())
                .collect();
            assert_eq!(named, [reason.as_str().as_bytes()], "{reason:?}");
        }
    }

    #[test]
    fn a_panic_is_a_500_in_whatever_its_caller_returns() {
        let response = internal_error_on_panic(|| Response::text(StatusCode::OK, "made\n"));
        assert_eq!(response.body().as_bytes(), b"made\n");
        // A handler's reply, a job's response, a future's poll.
        let Reply::Ready(response) = internal_error_on_panic(|| -> Reply { panic!("a handler") })
        else {
            panic!("answered inline");
        };
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let response = internal_error_on_panic(|| -> Response { panic!("a job") });
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.body().as_bytes(), b"internal server error\n");
        let Poll::Ready(response) = internal_error_on_panic(|| -> Poll<Response> {
            panic!("a future");
        }) else {
            panic!("ready at once");
        };
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
