//! Conversions to and from the `http` crate's `StatusCode` and `Method` (the `http` feature).

use crate::{Method, StatusCode};

impl From<StatusCode> for http::StatusCode {
    fn from(status: StatusCode) -> Self {
        // Both take 100 to 999, so this never falls back.
        Self::from_u16(status.as_u16()).unwrap_or(Self::INTERNAL_SERVER_ERROR)
    }
}

impl From<http::StatusCode> for StatusCode {
    fn from(status: http::StatusCode) -> Self {
        // Both take 100 to 999, so this never falls back.
        Self::from_u16(status.as_u16()).unwrap_or(Self::INTERNAL_SERVER_ERROR)
    }
}

/// [`Method::Other`] names no single method: its name is in the request
/// ([`Request::method_str`](crate::Request::method_str)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OtherMethod;

impl std::fmt::Display for OtherMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Method::Other names no single method; the request has its name")
    }
}

impl std::error::Error for OtherMethod {}

impl TryFrom<Method> for http::Method {
    type Error = OtherMethod;

    fn try_from(method: Method) -> Result<Self, OtherMethod> {
        Ok(match method {
            Method::Get => Self::GET,
            Method::Head => Self::HEAD,
            Method::Post => Self::POST,
            Method::Put => Self::PUT,
            Method::Delete => Self::DELETE,
            Method::Connect => Self::CONNECT,
            Method::Options => Self::OPTIONS,
            Method::Trace => Self::TRACE,
            Method::Patch => Self::PATCH,
            Method::Other => return Err(OtherMethod),
        })
    }
}

impl From<&http::Method> for Method {
    fn from(method: &http::Method) -> Self {
        Self::from_token(method.as_str())
    }
}

impl From<http::Method> for Method {
    fn from(method: http::Method) -> Self {
        Self::from(&method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_methods_convert_both_ways() {
        for code in [100, 200, 404, 503, 599, 999] {
            let ours = StatusCode::from_u16(code).unwrap();
            let theirs = http::StatusCode::from(ours);
            assert_eq!(theirs.as_u16(), code);
            assert_eq!(StatusCode::from(theirs), ours);
        }
        for method in [
            Method::Get,
            Method::Head,
            Method::Post,
            Method::Put,
            Method::Delete,
            Method::Connect,
            Method::Options,
            Method::Trace,
            Method::Patch,
        ] {
            let theirs = http::Method::try_from(method).unwrap();
            assert_eq!(Method::from(theirs), method);
        }
        assert_eq!(http::Method::try_from(Method::Other), Err(OtherMethod));
        let purge = http::Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(Method::from(purge), Method::Other);
    }
}
