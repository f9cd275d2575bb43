//! Conversions to and from the `http` crate's types (the `http` feature), so that code written
//! against `http` (as for hyper, axum or reqwest) moves over with little change.
//!
//! They copy: a converted response's headers become owned header values, and
//! [`Request::to_http_parts`] copies the target and every header into `http`'s types. The
//! native API ([`Response::with_static_headers`], [`Request::header`]) borrows and allocates
//! nothing; use it on the hot path.

use crate::{Body, Reply, Request, Response, Version};

impl<B: Into<Body>> From<http::Response<B>> for Response {
    /// Status, headers and body; the reactor writes `Content-Length`, `Date` and `Connection`
    /// itself, so those headers are dropped here rather than turned into a 500.
    fn from(response: http::Response<B>) -> Self {
        let (parts, body) = response.into_parts();
        let mut converted = Self::new(parts.status.into()).with_body(body);
        for (name, value) in &parts.headers {
            if matches!(
                name.as_str(),
                "content-length" | "transfer-encoding" | "connection" | "date"
            ) {
                continue;
            }
            converted = converted.with_header(name.as_str().to_owned(), value.as_bytes().to_vec());
        }
        converted
    }
}

impl<B: Into<Body>> From<http::Response<B>> for Reply {
    fn from(response: http::Response<B>) -> Self {
        Self::Ready(response.into())
    }
}

impl Request<'_> {
    /// The request's head as `http::request::Parts`: method, target, version and headers,
    /// copied.
    ///
    /// # Errors
    ///
    /// When `http` will not take a part the parser let through (it is stricter about some
    /// bytes in targets).
    ///
    /// # Examples
    ///
    /// ```
    /// use rtserve_reactor::{Harness, Reply, Request, StatusCode};
    ///
    /// let handler = |req: &Request<'_>| -> Reply {
    ///     let parts = req.to_http_parts().expect("a valid head");
    ///     assert_eq!(parts.method, http::Method::GET);
    ///     assert_eq!(parts.uri.path(), "/a");
    ///     assert_eq!(parts.headers["x-id"], "7");
    ///     http::Response::builder()
    ///         .status(http::StatusCode::ACCEPTED)
    ///         .header("x-answer", "42")
    ///         .body("ok\n")
    ///         .expect("a valid response")
    ///         .into()
    /// };
    /// let raw = b"GET /a?b=c HTTP/1.1\r\nHost: x\r\nX-Id: 7\r\n\r\n";
    /// let Reply::Ready(response) = Harness::new().call(&handler, raw) else { panic!() };
    /// assert_eq!(response.status(), StatusCode::ACCEPTED);
    /// assert!(response.headers().any(|h| h == ("x-answer", &b"42"[..])));
    /// ```
    pub fn to_http_parts(&self) -> Result<http::request::Parts, http::Error> {
        let version = match self.version() {
            Version::Http10 => http::Version::HTTP_10,
            _ => http::Version::HTTP_11,
        };
        let mut builder = http::Request::builder()
            .method(self.method_str())
            .uri(self.target())
            .version(version);
        for (name, value) in self.headers() {
            builder = builder.header(name, value);
        }
        Ok(builder.body(())?.into_parts().0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Harness, StatusCode};

    #[test]
    fn an_http_response_keeps_status_headers_and_body_but_not_framing() {
        let response: Response = http::Response::builder()
            .status(http::StatusCode::CREATED)
            .header("content-type", "application/json")
            .header("content-length", "999")
            .header("x-trace", "abc")
            .body(b"{}".to_vec())
            .expect("valid")
            .into();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.body().as_bytes(), b"{}");
        let headers: Vec<_> = response.headers().collect();
        assert_eq!(
            headers,
            [
                ("content-type", &b"application/json"[..]),
                ("x-trace", &b"abc"[..])
            ]
        );
    }

    #[test]
    fn a_request_converts_to_parts_with_its_target_version_and_headers() {
        let handler = |req: &Request<'_>| -> Reply {
            let parts = req.to_http_parts().expect("valid");
            assert_eq!(parts.method.as_str(), "PURGE");
            assert_eq!(parts.uri, "/cache/a?all=1");
            assert_eq!(parts.version, http::Version::HTTP_10);
            assert_eq!(parts.headers.get_all("x-tag").iter().count(), 2);
            Response::new(StatusCode::NO_CONTENT).into()
        };
        let raw = b"PURGE /cache/a?all=1 HTTP/1.0\r\nHost: x\r\nX-Tag: a\r\nX-Tag: b\r\n\r\n";
        let Reply::Ready(response) = Harness::new().call(&handler, raw) else {
            panic!("inline");
        };
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
}
