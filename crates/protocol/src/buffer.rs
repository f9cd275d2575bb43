//! A connection's input between reads: the head of a request whose body is still arriving,
//! then the bytes not parsed yet.
//!
//! Theory of operation. Heads are parsed into spans (see [`RequestHead`](crate::RequestHead)),
//! so a head's bytes must stay where they are until its request ends, while the body arrives
//! over several reads. Most reads, though, hold whole requests: they are parsed where they lie
//! (in the caller's read buffer), and nothing is copied. Only what must outlive the read is
//! kept: the head of a request whose body goes on in a later read, and a partial request.
//!
//! A round of parsing starts with [`InputBuffer::begin`], which gives an [`Input`]: the kept
//! bytes followed by the new ones, seen as one slice ([`Input::data`]). The caller parses from
//! [`Input::rest`], says where heads start and requests end, and closes the round with
//! [`Input::finish`], which keeps exactly what a later round needs (or [`Input::discard`]).

use std::mem;

/// A buffer larger than this is freed once empty rather than kept for reuse, so that one
/// large request does not pin memory for the connection's lifetime (most connections never
/// need a buffer at all, since whole requests are parsed where they were read).
const KEEP_CAPACITY: usize = 4 * 1024;

/// A connection's unconsumed input, kept between reads.
///
/// # Examples
///
/// ```
/// use rtserve_protocol::{Event, InputBuffer, Limits, ServerConn};
///
/// let mut conn = ServerConn::new(Limits::default());
/// let mut kept = InputBuffer::new();
/// // The first read holds the head and part of the body.
/// let mut input = kept.begin(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab");
/// while let Ok((n, event)) = conn.recv(input.rest()) {
///     if matches!(event, Event::Head) {
///         input.head_starts();
///     }
///     input.consume(n);
///     if matches!(event, Event::NeedMore) {
///         break;
///     }
/// }
/// input.finish(conn.head().len());
/// // The head is kept for the body's second half.
/// assert!(kept.has_head());
/// assert!(kept.unconsumed().is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct InputBuffer {
    bytes: Vec<u8>,
    /// The first `head_len` bytes are the head of the request whose body is arriving.
    head_len: usize,
}

impl InputBuffer {
    /// An empty buffer; it allocates only when input must be kept.
    pub const fn new() -> Self {
        Self {
            bytes: Vec::new(),
            head_len: 0,
        }
    }

    /// Nothing is kept: no head, no unparsed bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// A request's head is kept while its body arrives.
    pub fn has_head(&self) -> bool {
        self.head_len > 0
    }

    /// The bytes received but not parsed yet.
    pub fn unconsumed(&self) -> &[u8] {
        &self.bytes[self.head_len..]
    }

    /// Drops everything kept, and the memory.
    pub fn clear(&mut self) {
        *self = Self::new();
    }

    /// Starts a round of parsing over the unconsumed bytes followed by `new`.
    ///
    /// With nothing unconsumed, `new` is parsed where it lies: nothing is copied unless the
    /// round ends with something to keep.
    #[must_use = "a round ends with `finish` or `discard`, or the kept input is lost"]
    pub fn begin<'a>(&'a mut self, new: &'a [u8]) -> Input<'a> {
        let mut bytes = mem::take(&mut self.bytes);
        let base = self.head_len;
        let direct = bytes.len() == base;
        if !direct {
            bytes.extend_from_slice(new);
        }
        Input {
            owner: self,
            bytes,
            new,
            direct,
            base,
            pos: 0,
            head: if base > 0 { HeadAt::Kept } else { HeadAt::None },
        }
    }
}

/// Where the head of the request in progress lies during a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HeadAt {
    /// No request in progress.
    None,
    /// In the buffer's first `base` bytes, kept from an earlier round.
    Kept,
    /// At this offset of [`Input::data`].
    Data(usize),
}

/// One round of parsing over a connection's kept input and a new read (see
/// [`InputBuffer::begin`]). Offsets (of [`consume`](Self::consume), and the body ranges the
/// parser reports) are relative to [`data`](Self::data).
#[derive(Debug)]
pub struct Input<'a> {
    owner: &'a mut InputBuffer,
    /// The owner's bytes, taken out for the round (and `new` appended, unless `direct`).
    bytes: Vec<u8>,
    new: &'a [u8],
    /// `new` is parsed where it lies.
    direct: bool,
    /// The length of the head kept from an earlier round.
    base: usize,
    /// Bytes of `data` consumed.
    pos: usize,
    head: HeadAt,
}

impl Input<'_> {
    /// This round's bytes after any kept head: the unparsed rest of earlier reads, then the
    /// new read.
    pub fn data(&self) -> &[u8] {
        if self.direct {
            self.new
        } else {
            &self.bytes[self.base..]
        }
    }

    /// The bytes not consumed yet.
    pub fn rest(&self) -> &[u8] {
        &self.data()[self.pos..]
    }

    /// Bytes of [`data`](Self::data) consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Marks `n` more bytes as parsed.
    ///
    /// # Panics
    ///
    /// If that is past the end of the data (a parser never reports more than it was given).
    pub fn consume(&mut self, n: usize) {
        assert!(self.pos + n <= self.data().len(), "consumed past the input");
        self.pos += n;
    }

    /// A request's head starts at the current position (call it before consuming the head).
    pub fn head_starts(&mut self) {
        self.head = HeadAt::Data(self.pos);
    }

    /// The head of the request in progress (it may run on past the head's end), or nothing.
    pub fn head(&self) -> &[u8] {
        match self.head {
            HeadAt::None => &[],
            HeadAt::Kept => &self.bytes[..self.base],
            HeadAt::Data(at) => &self.data()[at..],
        }
    }

    /// The request in progress has ended: its head need not be kept.
    pub fn request_ends(&mut self) {
        self.head = HeadAt::None;
    }

    /// Ends the round, keeping the head of a request still in progress (its first
    /// `head_len` bytes) and whatever was not consumed.
    pub fn finish(self, head_len: usize) {
        let Self {
            owner,
            mut bytes,
            new,
            direct,
            base,
            pos,
            head,
        } = self;
        match (direct, head) {
            (true, HeadAt::None) => {
                bytes.clear();
                bytes.extend_from_slice(&new[pos..]);
                owner.head_len = 0;
            }
            (true, HeadAt::Kept) => bytes.extend_from_slice(&new[pos..]),
            (true, HeadAt::Data(at)) => {
                bytes.clear();
                bytes.extend_from_slice(&new[at..at + head_len]);
                bytes.extend_from_slice(&new[pos..]);
                owner.head_len = head_len;
            }
            (false, HeadAt::None) => {
                bytes.drain(..base + pos);
                owner.head_len = 0;
            }
            (false, HeadAt::Kept) => {
                bytes.drain(base..base + pos);
            }
            (false, HeadAt::Data(at)) => {
                // Move the head to the front, then the unconsumed rest behind it.
                bytes.copy_within(base + at..base + at + head_len, 0);
                let rest = base + pos;
                let len = bytes.len();
                bytes.copy_within(rest..len, head_len);
                bytes.truncate(head_len + len - rest);
                owner.head_len = head_len;
            }
        }
        if bytes.is_empty() && bytes.capacity() > KEEP_CAPACITY {
            bytes = Vec::new();
        }
        owner.bytes = bytes;
    }

    /// Ends the round keeping nothing: the connection takes no more requests.
    pub fn discard(self) {
        self.owner.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, Limits, ServerConn};

    /// Parses one round as a server would: heads marked, requests ended, body bytes
    /// gathered. Returns the (head, body) of each request that ended in this round.
    fn round(
        conn: &mut ServerConn,
        kept: &mut InputBuffer,
        new: &[u8],
        body: &mut Vec<u8>,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut done = Vec::new();
        let mut input = kept.begin(new);
        loop {
            let (n, event) = conn.recv(input.rest()).expect("valid input");
            let at = input.position();
            match event {
                Event::Head => input.head_starts(),
                Event::Body(range) => body.extend_from_slice(&input.data()[at..][range]),
                Event::End => {
                    let len = conn.head().len();
                    done.push((input.head()[..len].to_vec(), mem::take(body)));
                    input.request_ends();
                }
                Event::NeedMore | Event::Closed => {
                    input.consume(n);
                    break;
                }
            }
            input.consume(n);
        }
        input.finish(conn.head().len());
        done
    }

    const GET: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    const POST: &[u8] = b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabcdef";

    #[test]
    fn whole_requests_are_parsed_in_place_and_nothing_is_kept() {
        let mut conn = ServerConn::new(Limits::default());
        let mut kept = InputBuffer::new();
        let mut body = Vec::new();
        let both = [GET, POST].concat();
        let done = round(&mut conn, &mut kept, &both, &mut body);
        assert_eq!(done.len(), 2);
        assert_eq!(done[1].1, b"abcdef");
        assert!(kept.is_empty());
        assert_eq!(kept.bytes.capacity(), 0, "nothing was copied");
    }

    #[test]
    fn every_split_of_a_pipeline_gives_the_same_requests() {
        let stream = [GET, POST, GET].concat();
        for a in 0..stream.len() {
            for b in a..stream.len() {
                let mut conn = ServerConn::new(Limits::default());
                let mut kept = InputBuffer::new();
                let mut body = Vec::new();
                let mut done = Vec::new();
                for piece in [&stream[..a], &stream[a..b], &stream[b..]] {
                    done.extend(round(&mut conn, &mut kept, piece, &mut body));
                }
                let heads: Vec<&[u8]> = done.iter().map(|(h, _)| &h[..]).collect();
                assert_eq!(heads, [GET, &POST[..POST.len() - 6], GET], "split {a} {b}");
                assert_eq!(done[1].1, b"abcdef", "split {a} {b}");
                assert!(kept.is_empty(), "split {a} {b}");
            }
        }
    }

    #[test]
    fn a_head_is_kept_while_its_body_arrives_and_dropped_after() {
        let mut conn = ServerConn::new(Limits::default());
        let mut kept = InputBuffer::new();
        let mut body = Vec::new();
        let head_len = POST.len() - 6;
        assert!(round(&mut conn, &mut kept, &POST[..head_len + 2], &mut body).is_empty());
        assert!(kept.has_head());
        assert_eq!(kept.bytes, &POST[..head_len]);
        assert!(kept.unconsumed().is_empty());
        assert!(
            round(
                &mut conn,
                &mut kept,
                &POST[head_len + 2..head_len + 4],
                &mut body
            )
            .is_empty()
        );
        assert_eq!(kept.bytes, &POST[..head_len], "body bytes are not kept");
        let done = round(
            &mut conn,
            &mut kept,
            &[&POST[head_len + 4..], GET].concat(),
            &mut body,
        );
        assert_eq!(done.len(), 2);
        assert_eq!(done[0], (POST[..head_len].to_vec(), b"abcdef".to_vec()));
        assert!(kept.is_empty());
    }

    #[test]
    fn a_partial_head_is_kept_and_completed() {
        let mut conn = ServerConn::new(Limits::default());
        let mut kept = InputBuffer::new();
        let mut body = Vec::new();
        assert!(round(&mut conn, &mut kept, &GET[..10], &mut body).is_empty());
        assert_eq!(kept.unconsumed(), &GET[..10]);
        assert!(!kept.has_head());
        let done = round(&mut conn, &mut kept, &GET[10..], &mut body);
        assert_eq!(done, [(GET.to_vec(), Vec::new())]);
        assert!(kept.is_empty());
    }

    #[test]
    fn a_large_emptied_buffer_is_freed() {
        let mut kept = InputBuffer::new();
        let big = vec![b'x'; 3 * KEEP_CAPACITY];
        let input = kept.begin(&big);
        input.finish(0);
        assert_eq!(kept.unconsumed().len(), big.len());
        let mut input = kept.begin(&[]);
        input.consume(big.len());
        input.finish(0);
        assert!(kept.is_empty());
        assert_eq!(kept.bytes.capacity(), 0);
    }

    #[test]
    fn discard_keeps_nothing() {
        let mut kept = InputBuffer::new();
        kept.begin(b"GET / HT").finish(0);
        assert!(!kept.is_empty());
        kept.begin(b"TP/1.1").discard();
        assert!(kept.is_empty());
    }
}
