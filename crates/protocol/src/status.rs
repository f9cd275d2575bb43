//! HTTP status codes and their reason phrases.

use std::fmt;

/// An HTTP status code, 100 to 999.
///
/// # Examples
///
/// ```
/// use rtserve_protocol::StatusCode;
///
/// assert_eq!(StatusCode::NOT_FOUND.as_u16(), 404);
/// assert_eq!(StatusCode::NOT_FOUND.reason(), "Not Found");
/// assert_eq!(StatusCode::from_u16(299).map(|s| s.reason()), Some(""));
/// assert!(StatusCode::from_u16(42).is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatusCode(u16);

macro_rules! status_codes {
    ($($(#[$doc:meta])* ($name:ident, $code:expr, $reason:expr);)+) => {
        impl StatusCode {
            $(
                $(#[$doc])*
                pub const $name: Self = Self($code);
            )+

            /// The canonical reason phrase (RFC 9110 §15), or `""` for a code without one.
            pub const fn reason(self) -> &'static str {
                match self.0 {
                    $($code => $reason,)+
                    _ => "",
                }
            }
        }
    };
}

status_codes! {
    /// 100 Continue: the client may send the body it announced with `Expect: 100-continue`.
    (CONTINUE, 100, "Continue");
    /// 200 OK.
    (OK, 200, "OK");
    /// 201 Created.
    (CREATED, 201, "Created");
    /// 202 Accepted.
    (ACCEPTED, 202, "Accepted");
    /// 204 No Content: never has a body.
    (NO_CONTENT, 204, "No Content");
    /// 301 Moved Permanently.
    (MOVED_PERMANENTLY, 301, "Moved Permanently");
    /// 302 Found.
    (FOUND, 302, "Found");
    /// 304 Not Modified: never has a body.
    (NOT_MODIFIED, 304, "Not Modified");
    /// 400 Bad Request: the request broke HTTP's syntax or framing rules.
    (BAD_REQUEST, 400, "Bad Request");
    /// 401 Unauthorized.
    (UNAUTHORIZED, 401, "Unauthorized");
    /// 403 Forbidden.
    (FORBIDDEN, 403, "Forbidden");
    /// 404 Not Found.
    (NOT_FOUND, 404, "Not Found");
    /// 405 Method Not Allowed: the response should carry `Allow`.
    (METHOD_NOT_ALLOWED, 405, "Method Not Allowed");
    /// 408 Request Timeout: the request did not arrive in time.
    (REQUEST_TIMEOUT, 408, "Request Timeout");
    /// 411 Length Required.
    (LENGTH_REQUIRED, 411, "Length Required");
    /// 413 Content Too Large: the body is over the limit.
    (CONTENT_TOO_LARGE, 413, "Content Too Large");
    /// 414 URI Too Long: the request line is over the limit.
    (URI_TOO_LONG, 414, "URI Too Long");
    /// 415 Unsupported Media Type.
    (UNSUPPORTED_MEDIA_TYPE, 415, "Unsupported Media Type");
    /// 417 Expectation Failed: an `Expect` other than `100-continue`.
    (EXPECTATION_FAILED, 417, "Expectation Failed");
    /// 429 Too Many Requests.
    (TOO_MANY_REQUESTS, 429, "Too Many Requests");
    /// 431 Request Header Fields Too Large: the head is over the limit.
    (REQUEST_HEADER_FIELDS_TOO_LARGE, 431, "Request Header Fields Too Large");
    /// 500 Internal Server Error.
    (INTERNAL_SERVER_ERROR, 500, "Internal Server Error");
    /// 501 Not Implemented: e.g. a transfer coding this server does not implement.
    (NOT_IMPLEMENTED, 501, "Not Implemented");
    /// 502 Bad Gateway.
    (BAD_GATEWAY, 502, "Bad Gateway");
    /// 503 Service Unavailable: overloaded, draining, or past the request's deadline.
    (SERVICE_UNAVAILABLE, 503, "Service Unavailable");
    /// 504 Gateway Timeout.
    (GATEWAY_TIMEOUT, 504, "Gateway Timeout");
    /// 505 HTTP Version Not Supported: a major version other than 1.
    (HTTP_VERSION_NOT_SUPPORTED, 505, "HTTP Version Not Supported");
}

impl StatusCode {
    /// A status code from its number, if it is in 100..=999.
    pub const fn from_u16(code: u16) -> Option<Self> {
        if code >= 100 && code <= 999 {
            Some(Self(code))
        } else {
            None
        }
    }

    /// The number.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// Whether the status is a success, 2xx (RFC 9110 §15.3).
    ///
    /// ```
    /// use rtserve_protocol::StatusCode;
    ///
    /// assert!(StatusCode::OK.is_success());
    /// assert!(!StatusCode::SERVICE_UNAVAILABLE.is_success());
    /// ```
    pub const fn is_success(self) -> bool {
        self.0 >= 200 && self.0 < 300
    }

    /// Whether a response with this status never carries a body: 1xx, 204 and 304
    /// (RFC 9112 §6.3 (1)).
    pub const fn is_bodiless(self) -> bool {
        self.0 < 200 || self.0 == 204 || self.0 == 304
    }

    /// The three ASCII digits.
    pub(crate) const fn digits(self) -> [u8; 3] {
        let c = self.0;
        [
            b'0' + (c / 100) as u8,
            b'0' + (c / 10 % 10) as u8,
            b'0' + (c % 10) as u8,
        ]
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_and_display() {
        assert_eq!(&StatusCode::OK.digits(), b"200");
        assert_eq!(&StatusCode::from_u16(999).unwrap().digits(), b"999");
        assert_eq!(
            StatusCode::SERVICE_UNAVAILABLE.to_string(),
            "503 Service Unavailable"
        );
    }

    #[test]
    fn bodiless() {
        for (code, bodiless) in [
            (100, true),
            (101, true),
            (200, false),
            (204, true),
            (304, true),
        ] {
            assert_eq!(
                StatusCode::from_u16(code).unwrap().is_bodiless(),
                bodiless,
                "{code}"
            );
        }
    }
}
