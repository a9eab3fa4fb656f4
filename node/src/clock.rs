//! Wall-clock time, for people to read. No decision (ordering, merging,
//! authorization) may depend on it: nodes' clocks disagree.

use std::sync::OnceLock;

use time::{OffsetDateTime, UtcOffset, format_description::FormatItem, macros::format_description};

static LOCAL_OFFSET: OnceLock<UtcOffset> = OnceLock::new();

/// Captures the local UTC offset. Call once at start-up, before any thread is
/// spawned: the platform lookup is only sound while the process is single-threaded.
pub fn init() {
    let off = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
    let _ = LOCAL_OFFSET.set(off);
}

/// RFC 3339 with milliseconds and an explicit numeric offset (never `Z`), the
/// form police data protection logs ask for.
const RFC3339_OFFSET: &[FormatItem<'static>] = format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3][offset_hour sign:mandatory]:[offset_minute]"
);

/// Now, as (Unix milliseconds, RFC 3339 with the local offset).
pub fn now() -> (i64, String) {
    let off = LOCAL_OFFSET.get().copied().unwrap_or(UtcOffset::UTC);
    let t = OffsetDateTime::now_utc().to_offset(off);
    let ms = (t.unix_timestamp_nanos() / 1_000_000) as i64;
    let text = t.format(RFC3339_OFFSET).unwrap_or_else(|_| t.to_string());
    (ms, text)
}

/// Unix milliseconds as RFC 3339 with the local offset (as [`now`] gives).
pub fn format_ms(ms: i64) -> String {
    let off = LOCAL_OFFSET.get().copied().unwrap_or(UtcOffset::UTC);
    match OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) {
        Ok(t) => {
            let t = t.to_offset(off);
            t.format(RFC3339_OFFSET).unwrap_or_else(|_| t.to_string())
        }
        Err(_) => format!("{ms} ms after 1970"),
    }
}
