//! What can go wrong: the peer's faults ([`RecvError`]) and the caller's ([`SendError`]).

use std::{error::Error, fmt};

use crate::StatusCode;

/// The peer sent something this server will not serve.
///
/// Every variant maps to the status to answer with ([`RecvError::status`]). After any of them
/// the connection must be closed once that answer has gone out: the framing of whatever follows
/// can no longer be trusted (RFC 9112 §6.3, §9.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecvError {
    /// The request line is malformed (method, target or spacing). 400.
    BadRequestLine,
    /// The request target is not in a form this method allows (RFC 9112 §3.2). 400.
    BadTarget,
    /// The version is not `HTTP/DIGIT.DIGIT`. 400.
    BadVersion,
    /// The major version is not 1. 505.
    VersionNotSupported,
    /// A header line is malformed: bad name, bad value, whitespace before the colon, or an
    /// obs-fold continuation line (RFC 9112 §5.1, §5.2). 400.
    BadHeader,
    /// An HTTP/1.1 request without a Host header (RFC 9112 §3.2). 400.
    MissingHost,
    /// More than one Host header (RFC 9112 §3.2). 400.
    DuplicateHost,
    /// A Host value that is not `uri-host [ ":" port ]` (RFC 9112 §3.2). 400.
    BadHost,
    /// Both Content-Length and Transfer-Encoding (RFC 9112 §6.1: a smuggling pattern). 400.
    LengthWithTransferEncoding,
    /// A Content-Length that is not `1*DIGIT`, overflows, or differs from another one
    /// (RFC 9112 §6.3 (5)). 400.
    BadContentLength,
    /// A Transfer-Encoding whose final coding is not chunked, that applies chunked twice, or
    /// that appears in an HTTP/1.0 request (RFC 9112 §6.1, §6.3 (4)). 400.
    BadTransferEncoding,
    /// A transfer coding before the final chunked that this server does not implement, such
    /// as gzip (RFC 9112 §6.1). 501.
    UnsupportedTransferCoding,
    /// A chunk-size line that is malformed, overflows, or is over the line limit. 400.
    BadChunkSize,
    /// Chunk data not followed by CRLF. 400.
    BadChunkData,
    /// A malformed trailer field. 400.
    BadTrailer,
    /// The trailer section is over its byte or field limit. 431.
    TrailerTooLarge,
    /// The request line is over the limit. 414.
    RequestLineTooLong,
    /// The head is over the byte limit. 431.
    HeadTooLarge,
    /// The head has more header fields than the limit. 431.
    TooManyHeaders,
    /// The body is over the limit. 413.
    BodyTooLarge,
    /// An `Expect` other than `100-continue` on HTTP/1.1 (RFC 9110 §10.1.1). 417.
    ExpectationFailed,
    /// The peer closed its side in the middle of a request. 400 (the peer will not read it,
    /// but the status is still total).
    IncompleteMessage,
}

impl RecvError {
    /// The status to answer this error with.
    ///
    /// # Examples
    ///
    /// ```
    /// use rtserve_protocol::{RecvError, StatusCode};
    ///
    /// assert_eq!(RecvError::BodyTooLarge.status(), StatusCode::CONTENT_TOO_LARGE);
    /// ```
    pub const fn status(self) -> StatusCode {
        match self {
            Self::VersionNotSupported => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            Self::UnsupportedTransferCoding => StatusCode::NOT_IMPLEMENTED,
            Self::TrailerTooLarge | Self::HeadTooLarge | Self::TooManyHeaders => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            Self::RequestLineTooLong => StatusCode::URI_TOO_LONG,
            Self::BodyTooLarge => StatusCode::CONTENT_TOO_LARGE,
            Self::ExpectationFailed => StatusCode::EXPECTATION_FAILED,
            Self::BadRequestLine
            | Self::BadTarget
            | Self::BadVersion
            | Self::BadHeader
            | Self::MissingHost
            | Self::DuplicateHost
            | Self::BadHost
            | Self::LengthWithTransferEncoding
            | Self::BadContentLength
            | Self::BadTransferEncoding
            | Self::BadChunkSize
            | Self::BadChunkData
            | Self::BadTrailer
            | Self::IncompleteMessage => StatusCode::BAD_REQUEST,
        }
    }
}

impl RecvError {
    /// The error in a few words of English, as [`Display`](fmt::Display) writes it: static,
    /// for an answer that allocates nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use rtserve_protocol::RecvError;
    ///
    /// assert_eq!(RecvError::MissingHost.as_str(), "HTTP/1.1 request without Host");
    /// assert_eq!(RecvError::MissingHost.to_string(), RecvError::MissingHost.as_str());
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadRequestLine => "malformed request line",
            Self::BadTarget => "request target not allowed for this method",
            Self::BadVersion => "malformed HTTP version",
            Self::VersionNotSupported => "HTTP major version not supported",
            Self::BadHeader => "malformed header field",
            Self::MissingHost => "HTTP/1.1 request without Host",
            Self::DuplicateHost => "more than one Host header",
            Self::BadHost => "malformed Host value",
            Self::LengthWithTransferEncoding => "both Content-Length and Transfer-Encoding",
            Self::BadContentLength => "invalid or conflicting Content-Length",
            Self::BadTransferEncoding => "invalid Transfer-Encoding",
            Self::UnsupportedTransferCoding => "unsupported transfer coding",
            Self::BadChunkSize => "malformed chunk size line",
            Self::BadChunkData => "chunk data not followed by CRLF",
            Self::BadTrailer => "malformed trailer field",
            Self::TrailerTooLarge => "trailer section too large",
            Self::RequestLineTooLong => "request line too long",
            Self::HeadTooLarge => "request head too large",
            Self::TooManyHeaders => "too many header fields",
            Self::BodyTooLarge => "request body too large",
            Self::ExpectationFailed => "unsupported expectation",
            Self::IncompleteMessage => "connection closed in the middle of a request",
        }
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error for RecvError {}

/// The caller tried to send something that would break HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SendError {
    /// A header name that is not a token, or a value holding CR, LF or NUL (header injection).
    InvalidHeader,
    /// A header the encoder writes itself, set by hand: Content-Length and Transfer-Encoding
    /// (from the body length), Connection (from the keep-alive decision) or Date.
    ReservedHeader,
    /// More body bytes than the declared Content-Length.
    BodyTooLong,
    /// Fewer body bytes than the declared Content-Length when the body ended.
    BodyTooShort,
    /// Body bytes on a 1xx, 204 or 304 response, which never has a body.
    BodyNotAllowed,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidHeader => "invalid response header name or value",
            Self::ReservedHeader => "header reserved to the encoder set by hand",
            Self::BodyTooLong => "body longer than its Content-Length",
            Self::BodyTooShort => "body shorter than its Content-Length",
            Self::BodyNotAllowed => "body on a response status that has none",
        })
    }
}

impl Error for SendError {}
