//! JSON bodies in and out, with `serde_json` (the `json` feature).

use std::fmt;

use crate::{Reply, Request, Response, StatusCode};

/// Why a request body could not be taken as JSON: its answer is ready to send.
///
/// A body that is not valid JSON for the type asked for is a 400 whose text says where and
/// what (serde_json's one-line message); a request whose `Content-Type` is not JSON (or is
/// missing) is a 415. Both convert into a [`Response`] or a [`Reply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    status: StatusCode,
    reason: String,
}

impl Rejection {
    /// The status it answers with: 400 or 415.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The one-line reason, as sent in the body.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status.as_u16(), self.reason)
    }
}

impl std::error::Error for Rejection {}

impl From<Rejection> for Response {
    fn from(rejection: Rejection) -> Self {
        Self::text(rejection.status, format!("{}\n", rejection.reason))
    }
}

impl From<Rejection> for Reply {
    fn from(rejection: Rejection) -> Self {
        Self::Ready(rejection.into())
    }
}

/// Whether a `Content-Type` value names JSON: `application/json`, or any `+json` type such as
/// `application/problem+json`, parameters aside, in any case.
fn is_json(content_type: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(content_type) else {
        return false;
    };
    let essence = text.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let subtype = subtype.to_ascii_lowercase();
    kind.eq_ignore_ascii_case("application") && (subtype == "json" || subtype.ends_with("+json"))
}

impl<'a> Request<'a> {
    /// The body, deserialised from JSON as a `T` (which may borrow from the body).
    ///
    /// A string field that borrows should be a `Cow<'a, str>` marked `#[serde(borrow)]`: it is
    /// borrowed when the JSON string has no escape, and owned when it has one (`"\u00e9"`, as
    /// Python writes `é` by default). A `&'a str` field cannot take an escaped string at all,
    /// and the request is refused with 400.
    ///
    /// # Errors
    ///
    /// A [`Rejection`], ready to answer with: 415 if the request's `Content-Type` is not JSON,
    /// 400 with serde_json's one-line reason if the body is not valid JSON for `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// use rtserve_reactor::{Harness, Reply, Request, Response, StatusCode};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Transaction {
    ///     amount: u64,
    /// }
    ///
    /// let handler = |req: &Request<'_>| -> Reply {
    ///     let tx: Transaction = match req.json() {
    ///         Ok(tx) => tx,
    ///         Err(rejection) => return rejection.into(),
    ///     };
    ///     Response::json(StatusCode::OK, &serde_json::json!({ "double": tx.amount * 2 })).into()
    /// };
    /// let mut harness = Harness::new();
    /// let post = |body: &str| {
    ///     format!(
    ///         "POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
    ///          Content-Length: {}\r\n\r\n{body}",
    ///         body.len()
    ///     )
    /// };
    /// let Reply::Ready(ok) = harness.call(&handler, post(r#"{"amount": 21}"#).as_bytes()) else {
    ///     panic!()
    /// };
    /// assert_eq!(ok.body().as_bytes(), br#"{"double":42}"#);
    /// let Reply::Ready(bad) = harness.call(&handler, post(r#"{"amount": -1}"#).as_bytes()) else {
    ///     panic!()
    /// };
    /// assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    /// ```
    pub fn json<T: serde::Deserialize<'a>>(&self) -> Result<T, Rejection> {
        if !self.header("content-type").is_some_and(is_json) {
            return Err(Rejection {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                reason: "expected a body with Content-Type: application/json".to_owned(),
            });
        }
        serde_json::from_slice(self.body()).map_err(|e| Rejection {
            status: StatusCode::BAD_REQUEST,
            reason: format!("invalid JSON body: {e}"),
        })
    }
}

impl Response {
    /// A response whose body is `value` as JSON, with `Content-Type: application/json`; a
    /// value that cannot be serialised (a map with non-string keys, say) makes a 500.
    pub fn json<T: serde::Serialize + ?Sized>(status: StatusCode, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::new(status)
                .with_content_type("application/json")
                .with_body(body),
            Err(_) => Self::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal server error: the response could not be written as JSON\n",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::Harness;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Tx<'a> {
        account: &'a str,
        amount: u64,
    }

    fn post(content_type: &str, body: &str) -> Vec<u8> {
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// What `req.json::<Tx>()` made of a request: the account, or the rejection's status.
    fn parse(raw: &[u8]) -> Result<String, (u16, String)> {
        let handler = |req: &Request<'_>| -> Reply {
            match req.json::<Tx<'_>>() {
                Ok(tx) => Response::text(StatusCode::OK, format!("{}:{}", tx.account, tx.amount)),
                Err(rejection) => rejection.into(),
            }
            .into()
        };
        let Reply::Ready(response) = Harness::new().call(&handler, raw) else {
            panic!("inline");
        };
        let text = String::from_utf8_lossy(response.body().as_bytes()).into_owned();
        match response.status() {
            StatusCode::OK => Ok(text),
            status => Err((status.as_u16(), text)),
        }
    }

    #[test]
    fn a_json_body_is_deserialised_borrowing_from_it() {
        let body = r#"{"account": "acc-1", "amount": 12}"#;
        assert_eq!(
            parse(&post("application/json", body)),
            Ok("acc-1:12".into())
        );
        let with_params = post("Application/JSON; charset=utf-8", body);
        assert_eq!(parse(&with_params), Ok("acc-1:12".into()));
        assert_eq!(
            parse(&post("application/problem+json", body)),
            Ok("acc-1:12".into())
        );
    }

    #[test]
    fn a_body_that_is_not_json_for_the_type_is_400_with_one_line() {
        for body in [
            r#"{"account": "a""#,
            r#"{"account": "a", "amount": -1}"#,
            "",
        ] {
            let (status, text) = parse(&post("application/json", body)).unwrap_err();
            assert_eq!(status, 400, "{body}");
            assert!(text.starts_with("invalid JSON body: "), "{text}");
            assert_eq!(text.lines().count(), 1, "{text}");
        }
    }

    #[test]
    fn a_body_that_is_not_said_to_be_json_is_415() {
        let body = r#"{"account": "a", "amount": 1}"#;
        for content_type in [
            "text/plain",
            "application/jsonx",
            "json",
            "application/x-json",
        ] {
            let status = parse(&post(content_type, body)).unwrap_err().0;
            assert_eq!(status, 415, "{content_type}");
        }
        let no_type = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse(no_type).unwrap_err().0, 415);
    }

    #[test]
    fn responses_are_written_as_json() {
        let response = Response::json(StatusCode::CREATED, &BTreeMap::from([("score", 0.5)]));
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.body().as_bytes(), br#"{"score":0.5}"#);
        assert!(
            response
                .headers()
                .any(|h| h == ("Content-Type", &b"application/json"[..]))
        );
        let unwritable = BTreeMap::from([((1, 2), 3)]);
        let response = Response::json(StatusCode::OK, &unwritable);
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
