//! A request's deadline: counted from its arrival, and never later than the budget its caller
//! states in a header.
//!
//! The convention. An operator names the header ([`Config::deadline_header`], the CLI's
//! `--deadline-header`). Its value is what is left of the caller's own budget when it sent the
//! request, in one of two forms:
//!
//! - whole milliseconds, `150` (Envoy's `x-envoy-expected-rq-timeout-ms`);
//! - gRPC's `grpc-timeout`: at most eight digits and a unit, `H` hours, `M` minutes, `S`
//!   seconds, `m` milliseconds, `u` microseconds, `n` nanoseconds (`100m`, `2S`).
//!
//! The budget counts from when the request arrived: the kernel's receive stamp of its head's
//! first byte ([`Request::received`](crate::Request::received)). The request's deadline is the
//! earlier of the caller's and its route's (or the server's default): a handler reads it with
//! [`Request::deadline`](crate::Request::deadline), a job or a future with its context's
//! `deadline()` and `remaining()`, so that it can pass the budget on to its own calls. A
//! request with less than [`Config::min_caller_budget`] left when it is read is answered 503
//! (`rtserve-shed: caller-budget`) at once, its handler not run: a job started then could only
//! be late. On an inline route that is all the budget decides. A value in neither form, or
//! the header sent twice, is answered 400.
//!
//! [`Config::deadline_header`]: crate::Config::deadline_header
//! [`Config::min_caller_budget`]: crate::Config::min_caller_budget

use std::time::{Duration, Instant};

/// `received + after`, at most a year on (a deadline of `Duration::MAX` means "none").
pub(crate) fn deadline_after(received: Instant, after: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(365 * 86_400);
    received.checked_add(after.min(FAR)).unwrap_or(received)
}

/// The deadlines a request's answer is held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Due {
    /// The request's own: its route's, or the server's default, under its caller's.
    pub(crate) request: Instant,
    /// Its caller's, which nothing done for the request may outlast.
    pub(crate) caller: Option<Instant>,
}

impl Due {
    /// The deadline of a job or future for the request: its own, `own` after the request's
    /// arrival at `received`, under the caller's; else the request's.
    pub(crate) fn of_work(self, received: Instant, own: Option<Duration>) -> Instant {
        match own {
            None => self.request,
            Some(after) => {
                let own = deadline_after(received, after);
                self.caller.map_or(own, |caller| caller.min(own))
            }
        }
    }
}

/// Why a caller's budget cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BadBudget;

/// What a request's caller stated of its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    /// Nothing (or no header is configured): the route's deadline holds.
    Silent,
    /// Its deadline: the request's is never later.
    Until(Instant),
    /// Less than `min_caller_budget` is left: refuse it now.
    Spent,
    /// The header could not be read: 400.
    Unreadable,
}

/// What the caller of `request`, received at `received`, stated in `header` (the configured
/// name, if any), judged at `now` against `min`, the least budget let in.
pub(crate) fn caller(
    header: Option<&str>,
    request: &rtserve_protocol::Request<'_>,
    received: Instant,
    (now, min): (Instant, Duration),
) -> Caller {
    let Some(name) = header else {
        return Caller::Silent;
    };
    match budget(request.headers_named(name)) {
        Ok(None) => Caller::Silent,
        Ok(Some(budget)) => {
            let at = deadline_after(received, budget);
            if at.saturating_duration_since(now) < min {
                Caller::Spent
            } else {
                Caller::Until(at)
            }
        }
        Err(BadBudget) => Caller::Unreadable,
    }
}

/// The budget a caller states in `values` (the values of the configured header, in order):
/// none if the header is absent.
fn budget<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Result<Option<Duration>, BadBudget> {
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BadBudget);
    }
    parse(value).map(Some).ok_or(BadBudget)
}

/// A budget in either form (see the module docs).
fn parse(value: &[u8]) -> Option<Duration> {
    let value = value.trim_ascii();
    let (digits, unit) = match value.split_last()? {
        (unit, digits) if unit.is_ascii_alphabetic() => (digits, Some(*unit)),
        _ => (value, None),
    };
    // gRPC allows eight digits; milliseconds alone, up to ten (over a hundred days).
    let most = if unit.is_some() { 8 } else { 10 };
    if digits.is_empty() || digits.len() > most || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        None | Some(b'm') => Duration::from_millis(n),
        Some(b'H') => Duration::from_secs(n * 3600),
        Some(b'M') => Duration::from_secs(n * 60),
        Some(b'S') => Duration::from_secs(n),
        Some(b'u') => Duration::from_micros(n),
        Some(b'n') => Duration::from_nanos(n),
        Some(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn milliseconds_and_grpc_timeouts_are_read() {
        for (value, budget) in [
            (&b"150"[..], 150 * MS),
            (b"0", Duration::ZERO),
            (b" 40 ", 40 * MS),
            (b"100m", 100 * MS),
            (b"2S", 2000 * MS),
            (b"1M", 60_000 * MS),
            (b"1H", 3_600_000 * MS),
            (b"250u", Duration::from_micros(250)),
            (b"1500000n", Duration::from_micros(1500)),
            (b"99999999S", Duration::from_secs(99_999_999)),
            (b"9999999999", Duration::from_millis(9_999_999_999)),
        ] {
            assert_eq!(parse(value), Some(budget), "{}", value.escape_ascii());
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for value in [
            &b""[..],
            b"  ",
            b"m",
            b"-5",
            b"1.5",
            b"10x",
            b"10ms",
            b"0x10",
            b"123456789m",
            b"12345678901",
            b"10 m",
            b"\xff",
        ] {
            assert_eq!(parse(value), None, "{}", value.escape_ascii());
        }
    }

    #[test]
    fn the_header_counts_once() {
        assert_eq!(budget([].into_iter()), Ok(None));
        assert_eq!(budget([&b"20"[..]].into_iter()), Ok(Some(20 * MS)));
        assert_eq!(budget([&b"20"[..], b"20"].into_iter()), Err(BadBudget));
        assert_eq!(budget([&b"soon"[..]].into_iter()), Err(BadBudget));
    }
}
