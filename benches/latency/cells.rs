//! How the suite writes a number in a table cell: microseconds (milliseconds from 10 ms),
//! quantiles, the host's steal and the generator's lag, a dash where there is nothing.

use rtserve_loadgen::Histogram;

use crate::noise::HostSigns;

/// A run's steal time in ms, or a dash where the host reports none.
pub(crate) fn steal_ms(signs: &HostSigns) -> String {
    signs
        .steal
        .map_or_else(|| "—".to_owned(), |s| format!("{} ms", s.as_millis()))
}

/// The generator's schedule lag, p99 / max.
pub(crate) fn lag(signs: &HostSigns) -> String {
    format!("{} / {}", us(signs.lag_p99), us(signs.lag_max))
}

/// Microseconds, or milliseconds from 10 ms.
pub(crate) fn us(v: u64) -> String {
    if v >= 10_000 {
        format!("{:.1} ms", v as f64 / 1000.0)
    } else {
        format!("{v} µs")
    }
}

/// A quantile of `h` (µs), or a dash for an empty histogram.
pub(crate) fn quantile(h: &Histogram<u64>, p: f64) -> String {
    if h.is_empty() {
        "—".to_owned()
    } else {
        us(h.value_at_quantile(p))
    }
}
