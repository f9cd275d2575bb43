//! The RFC 9112 §6.3 decision: how long is this request's body?
//!
//! Theory of operation: while the head's fields are walked, every Content-Length and
//! Transfer-Encoding value is folded into a [`Framing`] accumulator. Nothing is decided until all
//! fields have been seen, because the answer depends on their combination (both present is an
//! attack, not a choice). [`Framing::finish`] then makes the one decision, with the clause of the
//! RFC next to each branch. Anything ambiguous is rejected, never guessed at: a server and a proxy
//! that guess differently are how request smuggling works.

use crate::{RecvError, Version};

/// How a request's body is delimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BodyKind {
    /// No body: neither Content-Length nor Transfer-Encoding (RFC 9112 §6.3 (6)).
    #[default]
    None,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// A chunked body, ended by a zero-size chunk and an optional trailer section.
    Chunked,
}

/// Folds the framing header fields of one head.
#[derive(Debug, Default)]
pub(crate) struct Framing {
    length: Length,
    coding: Coding,
}

#[derive(Debug, Default, PartialEq)]
enum Length {
    #[default]
    Absent,
    Value(u64),
    Invalid,
}

#[derive(Debug, Default, PartialEq)]
enum Coding {
    #[default]
    Absent,
    /// Some Transfer-Encoding field was seen; the flags describe the codings so far.
    Present {
        /// The last coding seen was chunked.
        chunked_last: bool,
        /// Chunked was seen at all.
        chunked_seen: bool,
        /// A coding other than chunked was seen.
        other: bool,
        /// Chunked appeared twice, or a coding was not a token.
        invalid: bool,
    },
}

impl Framing {
    /// Folds in one Content-Length field value.
    ///
    /// RFC 9110 §8.6: a list of identical values (`42, 42`, or the same value in several
    /// fields) may be taken as that one value; any other shape is invalid.
    pub(crate) fn add_content_length(&mut self, value: &[u8]) {
        for element in value.split(|&b| b == b',') {
            let Some(n) = parse_decimal(trim_ows(element)) else {
                self.length = Length::Invalid;
                return;
            };
            self.length = match self.length {
                Length::Absent => Length::Value(n),
                Length::Value(v) if v == n => Length::Value(v),
                Length::Value(_) | Length::Invalid => Length::Invalid,
            };
        }
    }

    /// Folds in one Transfer-Encoding field value, in the order the fields arrived.
    pub(crate) fn add_transfer_encoding(&mut self, value: &[u8]) {
        let Coding::Present {
            chunked_last,
            chunked_seen,
            other,
            invalid,
        } = &mut self.coding
        else {
            self.coding = Coding::Present {
                chunked_last: false,
                chunked_seen: false,
                other: false,
                invalid: false,
            };
            return self.add_transfer_encoding(value);
        };
        for element in value.split(|&b| b == b',') {
            let element = trim_ows(element);
            // RFC 9110 §5.6.1: empty list elements are allowed and ignored.
            if element.is_empty() {
                continue;
            }
            let (name, params) = match element.iter().position(|&b| b == b';') {
                Some(i) => (trim_ows(&element[..i]), true),
                None => (element, false),
            };
            if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
                *invalid = true;
            } else if name.eq_ignore_ascii_case(b"chunked") {
                // RFC 9112 §6.1: a sender MUST NOT apply chunked more than once; chunked
                // takes no parameters.
                if *chunked_seen || params {
                    *invalid = true;
                }
                *chunked_seen = true;
                *chunked_last = true;
            } else {
                *other = true;
                *chunked_last = false;
            }
        }
    }

    /// The one decision, once every field has been folded in.
    ///
    /// # Errors
    ///
    /// The [`RecvError`] for each ambiguous or unsupported combination, and
    /// [`RecvError::BodyTooLarge`] for a declared length over `max_body`.
    pub(crate) fn finish(self, version: Version, max_body: u64) -> Result<BodyKind, RecvError> {
        match (self.length, self.coding) {
            (Length::Absent, Coding::Absent) => Ok(BodyKind::None),
            // RFC 9112 §6.1: a server MAY reject a request with both, and must close after it
            // anyway; ambiguity is the smuggling pattern, so reject it.
            (Length::Value(_) | Length::Invalid, Coding::Present { .. }) => {
                if version == Version::Http10 {
                    Err(RecvError::BadTransferEncoding)
                } else {
                    Err(RecvError::LengthWithTransferEncoding)
                }
            }
            // RFC 9112 §6.3 (5): an invalid Content-Length is unrecoverable.
            (Length::Invalid, Coding::Absent) => Err(RecvError::BadContentLength),
            (Length::Value(n), Coding::Absent) if n > max_body => Err(RecvError::BodyTooLarge),
            (Length::Value(n), Coding::Absent) => Ok(BodyKind::Length(n)),
            (
                Length::Absent,
                Coding::Present {
                    chunked_last,
                    other,
                    invalid,
                    ..
                },
            ) => {
                // RFC 9112 §6.1: a server that receives Transfer-Encoding in an HTTP/1.0
                // request MUST treat the framing as faulty and close.
                if version == Version::Http10 || invalid {
                    Err(RecvError::BadTransferEncoding)
                } else if !chunked_last {
                    // RFC 9112 §6.3 (4): in a request, chunked that is not the final coding
                    // leaves the length unknowable: 400, then close.
                    Err(RecvError::BadTransferEncoding)
                } else if other {
                    // RFC 9112 §6.1: a coding we do not understand is a 501.
                    Err(RecvError::UnsupportedTransferCoding)
                } else {
                    Ok(BodyKind::Chunked)
                }
            }
        }
    }
}

/// `1*DIGIT` as a `u64`; `None` on anything else, including overflow.
pub(crate) fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Strips optional whitespace (SP and HTAB, RFC 9110 §5.6.3) from both ends.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// `tchar` from RFC 9110 §5.6.2.
pub(crate) const fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
        | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(version: Version, cl: &[&str], te: &[&str]) -> Result<BodyKind, RecvError> {
        let mut f = Framing::default();
        for v in cl {
            f.add_content_length(v.as_bytes());
        }
        for v in te {
            f.add_transfer_encoding(v.as_bytes());
        }
        f.finish(version, 1000)
    }

    use RecvError::*;
    use Version::{Http10 as V10, Http11 as V11};

    #[test]
    fn content_length() {
        let cases: &[(&[&str], Result<BodyKind, RecvError>)] = &[
            (&["0"], Ok(BodyKind::Length(0))),
            (&["42"], Ok(BodyKind::Length(42))),
            (&["007"], Ok(BodyKind::Length(7))),
            // Repeated identical values are one value (RFC 9110 §8.6).
            (&["42, 42"], Ok(BodyKind::Length(42))),
            (&["42", "42"], Ok(BodyKind::Length(42))),
            // Differing, signed, spaced, hex, empty, overflowing: invalid.
            (&["42", "43"], Err(BadContentLength)),
            (&["42, 43"], Err(BadContentLength)),
            (&["+42"], Err(BadContentLength)),
            (&["-1"], Err(BadContentLength)),
            (&["4 2"], Err(BadContentLength)),
            (&["0x10"], Err(BadContentLength)),
            (&[""], Err(BadContentLength)),
            (&["42,"], Err(BadContentLength)),
            (&["18446744073709551616"], Err(BadContentLength)),
            (&["99999999999999999999999"], Err(BadContentLength)),
            // Over the body limit: 413 before any body byte.
            (&["1001"], Err(BodyTooLarge)),
            (&["1000"], Ok(BodyKind::Length(1000))),
        ];
        for (cl, want) in cases {
            assert_eq!(decide(V11, cl, &[]), *want, "{cl:?}");
        }
    }

    #[test]
    fn transfer_encoding() {
        let cases: &[(&[&str], Result<BodyKind, RecvError>)] = &[
            (&["chunked"], Ok(BodyKind::Chunked)),
            (&["Chunked"], Ok(BodyKind::Chunked)),
            (&[" chunked "], Ok(BodyKind::Chunked)),
            (&[", chunked,"], Ok(BodyKind::Chunked)),
            // Chunked not final: the length is unknowable in a request.
            (&["chunked, gzip"], Err(BadTransferEncoding)),
            (&["gzip"], Err(BadTransferEncoding)),
            (&["identity"], Err(BadTransferEncoding)),
            (&[""], Err(BadTransferEncoding)),
            // Chunked twice, in one field or two.
            (&["chunked, chunked"], Err(BadTransferEncoding)),
            (&["chunked", "chunked"], Err(BadTransferEncoding)),
            (&["chunked;a=b"], Err(BadTransferEncoding)),
            (&["chun ked"], Err(BadTransferEncoding)),
            (&["\"chunked\""], Err(BadTransferEncoding)),
            // A coding we do not implement before chunked: 501.
            (&["gzip, chunked"], Err(UnsupportedTransferCoding)),
            (&["gzip", "chunked"], Err(UnsupportedTransferCoding)),
            (&["x-custom, chunked"], Err(UnsupportedTransferCoding)),
        ];
        for (te, want) in cases {
            assert_eq!(decide(V11, &[], te), *want, "{te:?}");
        }
    }

    #[test]
    fn combinations() {
        assert_eq!(decide(V11, &[], &[]), Ok(BodyKind::None));
        assert_eq!(decide(V10, &[], &[]), Ok(BodyKind::None));
        assert_eq!(
            decide(V11, &["5"], &["chunked"]),
            Err(LengthWithTransferEncoding)
        );
        assert_eq!(
            decide(V11, &["x"], &["chunked"]),
            Err(LengthWithTransferEncoding)
        );
        // Any Transfer-Encoding in HTTP/1.0 is faulty framing.
        assert_eq!(decide(V10, &[], &["chunked"]), Err(BadTransferEncoding));
        assert_eq!(decide(V10, &["5"], &["chunked"]), Err(BadTransferEncoding));
        assert_eq!(decide(V10, &["5"], &[]), Ok(BodyKind::Length(5)));
    }

    #[test]
    fn helpers() {
        assert_eq!(trim_ows(b" \t a b\t "), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal(b"18446744073709551616"), None);
    }
}
