//! Every bound the parser enforces, with its default and the attack it stops.

/// The largest `max_headers` that [`Limits`] accepts.
///
/// The parser keeps an uninitialised array of this many `httparse` header slots on the stack
/// (8 KiB, never written unless used), so the bound is fixed at compile time.
pub const MAX_HEADERS_CAP: usize = 256;

/// Bounds on what one peer may make the parser hold or count.
///
/// Every field is checked while bytes arrive, so a peer can never make the parser buffer or loop
/// past it. For comparison, nginx's defaults are given next to ours.
///
/// # Examples
///
/// ```
/// use rtserve_protocol::Limits;
///
/// let mut limits = Limits::default();
/// limits.max_body = 64 * 1024;
/// assert!(limits.validate().is_ok());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest request head (request line, headers and the empty line), in bytes. Default
    /// 16 KiB (nginx: up to 4 × 8 KiB `large_client_header_buffers`). Over it: 431. Stops a
    /// peer from growing a connection's input buffer without end.
    pub max_head: usize,
    /// Largest request line, in bytes. Default 8 KiB (nginx: 8 KiB). Over it: 414.
    pub max_request_line: usize,
    /// Most header fields in one head. Default 100 (hyper: 100; nginx: bounded by bytes only).
    /// Over it: 431. At most [`MAX_HEADERS_CAP`].
    pub max_headers: usize,
    /// Largest request body, in bytes, however it is framed. Default 1 MiB (nginx:
    /// `client_max_body_size 1m`). Over it: 413, decided from Content-Length before any body
    /// byte is read when the length is declared.
    pub max_body: u64,
    /// Longest chunk-size line (size, extensions and CRLF) in a chunked body, in bytes. Default
    /// 4 KiB.
    /// Over it: 400. Extensions are skipped, so without this cap a peer could keep the decoder
    /// busy forever on one line.
    pub max_chunk_line: usize,
    /// Largest trailer section of a chunked body, in bytes, counting the CRLF that ends the
    /// body (so at least 2). Default 16 KiB. Over it: 431.
    pub max_trailer: usize,
    /// Most trailer fields. Default 32. Over it: 431.
    pub max_trailers: usize,
}

impl Limits {
    /// Checks that the limits are usable.
    ///
    /// # Errors
    ///
    /// A static description of the first field out of range: any zero bound,
    /// `max_headers` above [`MAX_HEADERS_CAP`], or a request line longer than the head.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.max_head == 0 || self.max_request_line == 0 {
            return Err("head and request-line limits must be greater than zero");
        }
        // The shortest size line is `0\r\n`; the shortest trailer section is `\r\n`.
        if self.max_chunk_line < 3 || self.max_trailer < 2 {
            return Err("max_chunk_line must be at least 3 and max_trailer at least 2");
        }
        if self.max_headers == 0 || self.max_headers > MAX_HEADERS_CAP {
            return Err("max_headers must be between 1 and 256");
        }
        if self.max_request_line > self.max_head {
            return Err("max_request_line must not exceed max_head");
        }
        if self.max_head > u32::MAX as usize {
            return Err("max_head must fit in 32 bits");
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head: 16 * 1024,
            max_request_line: 8 * 1024,
            max_headers: 100,
            max_body: 1024 * 1024,
            max_chunk_line: 4 * 1024,
            max_trailer: 16 * 1024,
            max_trailers: 32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Limits::default().validate(), Ok(()));
    }

    #[test]
    fn bad_limits_are_refused() {
        let base = Limits::default();
        for bad in [
            Limits {
                max_head: 0,
                ..base
            },
            Limits {
                max_headers: 0,
                ..base
            },
            Limits {
                max_headers: MAX_HEADERS_CAP + 1,
                ..base
            },
            Limits {
                max_request_line: base.max_head + 1,
                ..base
            },
            Limits {
                max_chunk_line: 0,
                ..base
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
