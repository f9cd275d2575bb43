//! The `Date` header's text, formatted at most once a second from a time the caller passes.

use std::time::{SystemTime, UNIX_EPOCH};

/// An IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`, cached per second.
///
/// The protocol crate never reads the clock: the caller passes the time to [`HttpDate::update`]
/// (a reactor does so once per loop turn), and the text is reformatted only when the second
/// has changed.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use rtserve_protocol::HttpDate;
///
/// let date = HttpDate::new(UNIX_EPOCH + Duration::from_secs(784_111_777));
/// assert_eq!(date.as_str(), "Sun, 06 Nov 1994 08:49:37 GMT");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpDate {
    secs: u64,
    text: [u8; 29],
}

impl HttpDate {
    /// The date of `now`.
    pub fn new(now: SystemTime) -> Self {
        let secs = unix_secs(now);
        Self {
            secs,
            text: format(secs),
        }
    }

    /// Moves the date to `now`; returns whether the text changed.
    pub fn update(&mut self, now: SystemTime) -> bool {
        let secs = unix_secs(now);
        if secs == self.secs {
            return false;
        }
        self.secs = secs;
        self.text = format(secs);
        true
    }

    /// The 29 bytes of text.
    pub fn as_bytes(&self) -> &[u8; 29] {
        &self.text
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written into `text`.
        std::str::from_utf8(&self.text).unwrap_or_default()
    }
}

fn unix_secs(now: SystemTime) -> u64 {
    // A clock before 1970 is clamped to the epoch rather than failing a response.
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn format(secs: u64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    // Years past 9999 do not fit the format; they are clamped to it.
    let year = year.min(9999);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    put2(&mut out[5..7], day);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    put2(&mut out[12..14], year / 100);
    put2(&mut out[14..16], year % 100);
    put2(&mut out[17..19], rem / 3600);
    put2(&mut out[20..22], rem / 60 % 60);
    put2(&mut out[23..25], rem % 60);
    out
}

fn put2(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

/// Year, month (1..=12) and day (1..=31) of a day count since 1970-01-01, from Howard
/// Hinnant's `civil_from_days`, for the proleptic Gregorian calendar.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> String {
        HttpDate::new(UNIX_EPOCH + Duration::from_secs(secs))
            .as_str()
            .to_owned()
    }

    #[test]
    fn known_dates() {
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        // RFC 9110 §5.6.7's example.
        assert_eq!(at(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT");
        assert_eq!(at(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
        assert_eq!(at(253_402_300_799), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn update_only_on_a_new_second() {
        let t = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut date = HttpDate::new(t);
        assert!(!date.update(t + Duration::from_millis(999)));
        assert!(date.update(t + Duration::from_secs(1)));
        assert_eq!(date.as_str(), at(1_000_001));
    }

    #[test]
    fn pre_epoch_clamps() {
        let date = HttpDate::new(UNIX_EPOCH - Duration::from_secs(5));
        assert_eq!(date.as_str(), "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
