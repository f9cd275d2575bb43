//! Body decoders: Content-Length and chunked, stepped over whatever bytes have arrived.
//!
//! Theory of operation: a decoder is a small state machine that looks at each framing byte
//! exactly once and remembers where it stopped, so the result never depends on how the stream
//! was split across reads. One call returns at most one run of body data (a chunk's data is
//! contiguous on the wire, the framing around it is not), the bytes it consumed to get there,
//! and nothing else. Every count is overflow-checked and every line is capped.

use std::ops::Range;

use crate::{Limits, RecvError, framing::is_tchar};

/// What one decoding step produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// Body data at this range of the input.
    Data(Range<usize>),
    /// The body is complete.
    End,
    /// The input ran out before data or the end.
    NeedMore,
}

/// Decodes one request body.
#[derive(Clone, Debug)]
pub(crate) enum BodyDecoder {
    /// This many bytes remain.
    Length(u64),
    /// A chunked body.
    Chunked(Chunked),
}

impl BodyDecoder {
    /// Steps over `input`; returns the bytes consumed and what they made.
    pub(crate) fn decode(
        &mut self,
        input: &[u8],
        limits: &Limits,
    ) -> Result<(usize, Decoded), RecvError> {
        match self {
            Self::Length(0) => Ok((0, Decoded::End)),
            Self::Length(remaining) => {
                let n = input
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                if n == 0 {
                    return Ok((0, Decoded::NeedMore));
                }
                *remaining -= n as u64;
                Ok((n, Decoded::Data(0..n)))
            }
            Self::Chunked(chunked) => chunked.decode(input, limits),
        }
    }
}

/// Where the chunked decoder is in RFC 9112 §7.1's grammar:
///
/// ```text
/// chunked-body = *chunk last-chunk trailer-section CRLF
/// chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
/// last-chunk   = 1*("0") [ chunk-ext ] CRLF
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkedState {
    /// Hex digits of the chunk size.
    Size,
    /// Whitespace after the size, before `;` or CR.
    SizeSpace,
    /// Inside chunk extensions, which are skipped up to CR.
    Extension,
    /// The LF after the size line's CR.
    SizeLf,
    /// Chunk data; `Chunked::remaining` bytes to go.
    Data,
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// The start of a trailer line, or the CR of the final empty line.
    TrailerStart,
    /// A trailer field name.
    TrailerName,
    /// A trailer field value, up to CR.
    TrailerValue,
    /// The LF ending a trailer line.
    TrailerLf,
    /// The LF ending the body.
    EndLf,
    /// The body is complete.
    Done,
}

/// The chunked decoder's state and counters.
#[derive(Clone, Debug)]
pub(crate) struct Chunked {
    state: ChunkedState,
    /// The size being read, then the data bytes left in the chunk.
    remaining: u64,
    /// Hex digits read in this size.
    digits: u32,
    /// Bytes in the current size line.
    line: usize,
    /// Data bytes announced so far, checked against the body limit.
    total: u64,
    /// Bytes and fields of the trailer section.
    trailer_bytes: usize,
    trailer_fields: usize,
}

impl Chunked {
    pub(crate) fn new() -> Self {
        Self {
            state: ChunkedState::Size,
            remaining: 0,
            digits: 0,
            line: 0,
            total: 0,
            trailer_bytes: 0,
            trailer_fields: 0,
        }
    }

    fn decode(&mut self, input: &[u8], limits: &Limits) -> Result<(usize, Decoded), RecvError> {
        use ChunkedState::*;
        if self.state == Done {
            return Ok((0, Decoded::End));
        }
        let mut i = 0;
        while i < input.len() {
            if self.state == Data {
                let n =
                    (input.len() - i).min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                self.remaining -= n as u64;
                if self.remaining == 0 {
                    self.state = DataCr;
                }
                return Ok((i + n, Decoded::Data(i..i + n)));
            }
            let b = input[i];
            i += 1;
            match self.state {
                Size | SizeSpace | Extension | SizeLf => {
                    self.line += 1;
                    if self.line > limits.max_chunk_line {
                        return Err(RecvError::BadChunkSize);
                    }
                }
                TrailerStart | TrailerName | TrailerValue | TrailerLf | EndLf => {
                    self.trailer_bytes += 1;
                    if self.trailer_bytes > limits.max_trailer {
                        return Err(RecvError::TrailerTooLarge);
                    }
                }
                Data | DataCr | DataLf | Done => {}
            }
            self.state = match (self.state, b) {
                (Size, _) if b.is_ascii_hexdigit() => {
                    // RFC 9112 §7.1: recipients must anticipate large sizes and guard
                    // against overflow.
                    let digit = u64::from((b as char).to_digit(16).unwrap_or(0) as u8);
                    self.remaining = self
                        .remaining
                        .checked_mul(16)
                        .and_then(|r| r.checked_add(digit))
                        .ok_or(RecvError::BadChunkSize)?;
                    self.digits += 1;
                    Size
                }
                (Size, _) if self.digits == 0 => return Err(RecvError::BadChunkSize),
                // BWS before a chunk extension (RFC 9112 §7.1.1).
                (Size | SizeSpace, b' ' | b'\t') => SizeSpace,
                (Size | SizeSpace, b';') => Extension,
                (Size | SizeSpace | Extension, b'\r') => SizeLf,
                // Extensions are skipped, but a bare LF or a control byte in one is an attack
                // on a proxy's line reading, not an extension.
                (Extension, b'\t' | b' '..=b'~' | 0x80..) => Extension,
                (SizeLf, b'\n') if self.remaining == 0 => TrailerStart,
                (SizeLf, b'\n') => {
                    self.total = self
                        .total
                        .checked_add(self.remaining)
                        .ok_or(RecvError::BodyTooLarge)?;
                    if self.total > limits.max_body {
                        return Err(RecvError::BodyTooLarge);
                    }
                    Data
                }
                (Size | SizeSpace | Extension | SizeLf, _) => return Err(RecvError::BadChunkSize),
                (DataCr, b'\r') => DataLf,
                (DataLf, b'\n') => {
                    self.digits = 0;
                    self.line = 0;
                    Size
                }
                (DataCr | DataLf, _) => return Err(RecvError::BadChunkData),
                (TrailerStart, b'\r') => EndLf,
                (TrailerStart, _) if is_tchar(b) => {
                    self.trailer_fields += 1;
                    if self.trailer_fields > limits.max_trailers {
                        return Err(RecvError::TrailerTooLarge);
                    }
                    TrailerName
                }
                (TrailerName, b':') => TrailerValue,
                (TrailerName, _) if is_tchar(b) => TrailerName,
                (TrailerValue, b'\r') => TrailerLf,
                (TrailerValue, b'\t' | b' '..=b'~' | 0x80..) => TrailerValue,
                (TrailerLf, b'\n') => TrailerStart,
                (EndLf, b'\n') => {
                    self.state = Done;
                    return Ok((i, Decoded::End));
                }
                // Includes obs-fold (a trailer line starting with whitespace) and bare LF.
                (TrailerStart | TrailerName | TrailerValue | TrailerLf | EndLf, _) => {
                    return Err(RecvError::BadTrailer);
                }
                // Data is served before a byte is taken and Done returns above; staying put
                // keeps this total without a panic.
                (Data | Done, _) => self.state,
            };
        }
        Ok((i, Decoded::NeedMore))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; returns the data and how it ended.
    fn decode_all(
        input: &[u8],
        step: usize,
        limits: &Limits,
    ) -> (Vec<u8>, Result<usize, RecvError>) {
        let mut dec = BodyDecoder::Chunked(Chunked::new());
        let mut data = Vec::new();
        let mut pos = 0;
        let mut avail = step.min(input.len());
        loop {
            match dec.decode(&input[pos..avail], limits) {
                Ok((n, Decoded::Data(r))) => {
                    data.extend_from_slice(&input[pos + r.start..pos + r.end]);
                    pos += n;
                }
                Ok((n, Decoded::End)) => return (data, Ok(pos + n)),
                Ok((n, Decoded::NeedMore)) => {
                    pos += n;
                    if avail == input.len() {
                        return (data, Ok(usize::MAX));
                    }
                    avail = (avail + step).min(input.len());
                }
                Err(e) => return (data, Err(e)),
            }
        }
    }

    #[test]
    fn chunked_vectors() {
        use RecvError::*;
        // (input, decoded data, Ok(consumed) | Err; usize::MAX = needs more)
        type Case = (&'static [u8], &'static [u8], Result<usize, RecvError>);
        let cases: &[Case] = &[
            (b"0\r\n\r\n", b"", Ok(5)),
            (b"5\r\nhello\r\n0\r\n\r\nGET", b"hello", Ok(15)),
            (b"5;ext=1;b=\"q\"\r\nhello\r\n000\r\n\r\n", b"hello", Ok(29)),
            (b"5 ;ext\r\nhello\r\n0\r\n\r\n", b"hello", Ok(20)),
            (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789", Ok(20)),
            (
                b"a\r\n0123456789\r\n0\r\nX-T: v\r\nY: \r\n\r\n",
                b"0123456789",
                Ok(33),
            ),
            (b"5\r\nhel", b"hel", Ok(usize::MAX)),
            // Malformed sizes.
            (b"\r\n", b"", Err(BadChunkSize)),
            (b"x\r\n", b"", Err(BadChunkSize)),
            (b"-1\r\n", b"", Err(BadChunkSize)),
            (b"0x5\r\n", b"", Err(BadChunkSize)),
            (b"5\n", b"", Err(BadChunkSize)),
            (b"5\r\r\n", b"", Err(BadChunkSize)),
            (b"5;a\nb\r\n", b"", Err(BadChunkSize)),
            (b"5 5\r\n", b"", Err(BadChunkSize)),
            (b"10000000000000000\r\n", b"", Err(BadChunkSize)),
            // Data not followed by CRLF.
            (b"5\r\nhelloX\r\n", b"hello", Err(BadChunkData)),
            (b"5\r\nhello\rX", b"hello", Err(BadChunkData)),
            (b"5\r\nhello\n0\r\n\r\n", b"hello", Err(BadChunkData)),
            // Trailers: obs-fold, no colon, bare LF.
            (b"0\r\nA: b\r\n c\r\n\r\n", b"", Err(BadTrailer)),
            (b"0\r\nAb\r\n\r\n", b"", Err(BadTrailer)),
            (b"0\r\nA: b\n\r\n", b"", Err(BadTrailer)),
            (b"0\r\n\n", b"", Err(BadTrailer)),
            // Over the body limit (1 MiB by default), as soon as the size line ends.
            (b"100001\r\n", b"", Err(BodyTooLarge)),
            (b"80000\r\n", b"", Ok(usize::MAX)),
            (b"ffffffffffffffff\r\n", b"", Err(BodyTooLarge)),
        ];
        let limits = Limits::default();
        for (input, data, end) in cases {
            for step in 1..=input.len().max(1) {
                let got = decode_all(input, step, &limits);
                assert_eq!(
                    (got.0.as_slice(), got.1),
                    (*data, *end),
                    "input {:?} in steps of {step}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn chunked_limits() {
        let limits = Limits {
            max_chunk_line: 8,
            max_trailer: 12,
            max_trailers: 2,
            max_body: 10,
            ..Limits::default()
        };
        let cases: &[(&[u8], Result<usize, RecvError>)] = &[
            (b"5;abcd\r\nhello\r\n0\r\n\r\n", Ok(20)),
            (b"5;abcde\r\n", Err(RecvError::BadChunkSize)),
            (b"0000000005\r\n", Err(RecvError::BadChunkSize)),
            (b"0\r\nA:1\r\nB:2\r\n\r\n", Ok(15)),
            (
                b"0\r\nA:1\r\nB:2\r\nC:3\r\n\r\n",
                Err(RecvError::TrailerTooLarge),
            ),
            (b"0\r\nA:123456789\r\n\r\n", Err(RecvError::TrailerTooLarge)),
            (b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", Ok(25)),
            (b"5\r\nhello\r\n6\r\n", Err(RecvError::BodyTooLarge)),
        ];
        for (input, end) in cases {
            for step in 1..=input.len() {
                assert_eq!(
                    decode_all(input, step, &limits).1,
                    *end,
                    "{:?} in steps of {step}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn length_decoder() {
        let limits = Limits::default();
        let mut dec = BodyDecoder::Length(5);
        assert_eq!(dec.decode(b"", &limits), Ok((0, Decoded::NeedMore)));
        assert_eq!(dec.decode(b"he", &limits), Ok((2, Decoded::Data(0..2))));
        assert_eq!(dec.decode(b"lloGET", &limits), Ok((3, Decoded::Data(0..3))));
        assert_eq!(dec.decode(b"GET", &limits), Ok((0, Decoded::End)));
    }
}
