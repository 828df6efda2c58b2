//! Points in time as the event log records them.
//!
//! A [`Timestamp`] is a count of microseconds since the UNIX epoch, in UTC. It is
//! what `ctx.now()` hands a command handler and what every stored event carries
//! as its recorded-at time. Human-readable formats (JSON) write it as RFC 3339
//! (`2026-11-26T20:12:29.123456Z`); binary formats write the integer.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Microseconds since 1970-01-01T00:00:00Z.
///
/// Obtain one from the command [`Context`](crate::Context) (`ctx.now()`), from
/// an event's metadata, or build one for a test with [`Timestamp::from_micros`]
/// or [`Timestamp::parse`]. Reading the wall clock inside a handler is what the
/// rules forbid; the runtime reads it once per command, before the handler runs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

/// The reason a text is not an RFC 3339 UTC timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not an RFC 3339 UTC timestamp like 2026-11-26T20:12:29.123456Z: {reason}")]
pub struct TimestampParseError {
    text: String,
    reason: &'static str,
}

impl Timestamp {
    /// The UNIX epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// A timestamp `micros` microseconds after the UNIX epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// A timestamp `secs` seconds after the UNIX epoch.
    pub const fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000))
    }

    /// Microseconds since the UNIX epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// The wall clock, now. Only the runtime and the clocks it is given call this:
    /// handlers receive the time through [`Context::now`](crate::Context::now).
    pub fn wall_clock() -> Self {
        Timestamp::from(SystemTime::now())
    }

    /// This timestamp moved forward by `d` (saturating); also `timestamp + d`.
    pub fn plus(self, d: Duration) -> Self {
        let micros = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(micros))
    }

    /// The time from `earlier` to `self`, or zero when `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`.
    pub fn parse(text: &str) -> Result<Self, TimestampParseError> {
        let fail = |reason| TimestampParseError {
            text: text.to_owned(),
            reason,
        };
        let b = text.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
            return Err(fail("expected YYYY-MM-DDTHH:MM:SS"));
        }
        if b.last() != Some(&b'Z') {
            return Err(fail("expected a trailing `Z` (UTC)"));
        }
        let num = |range: std::ops::Range<usize>| -> Result<i64, TimestampParseError> {
            let s = text.get(range).ok_or_else(|| fail("not ASCII"))?;
            if !s.bytes().all(|c| c.is_ascii_digit()) {
                return Err(fail("expected digits"));
            }
            s.parse::<i64>().map_err(|_| fail("number out of range"))
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
            return Err(fail("a field is out of range"));
        }
        let mut micros = 0i64;
        let rest = &text[19..text.len() - 1];
        if !rest.is_empty() {
            let frac = rest
                .strip_prefix('.')
                .ok_or_else(|| fail("expected `.` before the fraction"))?;
            if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|c| c.is_ascii_digit()) {
                return Err(fail("expected 1 to 9 fraction digits"));
            }
            let digits: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
            micros = digits.parse::<i64>().map_err(|_| fail("bad fraction"))?;
        }
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + hour * 3_600 + minute * 60 + second;
        Ok(Timestamp(secs * 1_000_000 + micros))
    }
}

/// Calendar dates through [jiff](https://docs.rs/jiff) (feature `jiff`).
#[cfg(feature = "jiff")]
impl Timestamp {
    /// This instant as a `jiff::Timestamp`. jiff spans the years -9999 to
    /// 9999; a timestamp outside them (only a hand-built one can be) is an error.
    pub fn to_jiff(self) -> Result<jiff::Timestamp, jiff::Error> {
        jiff::Timestamp::from_microsecond(self.0)
    }

    /// The calendar day (UTC) this instant falls on: the day a booking
    /// starts, the night it covers. Day arithmetic is jiff's:
    /// `date.checked_add(jiff::ToSpan::days(1))`, `date.until(other)`, `date.series(1.day())`.
    pub fn utc_date(self) -> Result<jiff::civil::Date, jiff::Error> {
        Ok(self.to_jiff()?.to_zoned(jiff::tz::TimeZone::UTC).date())
    }
}

/// Every `jiff::Timestamp` fits (microsecond precision; nanoseconds below a
/// microsecond are dropped, toward the past).
#[cfg(feature = "jiff")]
impl From<jiff::Timestamp> for Timestamp {
    fn from(t: jiff::Timestamp) -> Self {
        Timestamp(t.as_microsecond())
    }
}

#[cfg(feature = "jiff")]
impl TryFrom<Timestamp> for jiff::Timestamp {
    type Error = jiff::Error;

    fn try_from(t: Timestamp) -> Result<Self, Self::Error> {
        t.to_jiff()
    }
}

impl std::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        self.plus(d)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
            Err(e) => Timestamp(-i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX)),
        }
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> Self {
        if t.0 >= 0 {
            UNIX_EPOCH + Duration::from_micros(t.0 as u64)
        } else {
            UNIX_EPOCH - Duration::from_micros(t.0.unsigned_abs())
        }
    }
}

impl Timestamp {
    /// The RFC 3339 text of this instant, written into `buf`, for the years
    /// 0 to 9999 (`None` outside them, where the year needs more digits).
    /// Every JSON event with a time goes through here: two digits at a time
    /// from a table, no `fmt` machinery in between.
    fn rfc3339(self, buf: &mut [u8; 27]) -> Option<&str> {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000) as usize;
        let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400) as usize);
        let (y, m, d) = civil_from_days(days);
        if !(0..=9999).contains(&y) {
            return None;
        }
        let y = y as usize;
        *buf = *b"0000-00-00T00:00:00.000000Z";
        put_pair(buf, 0, y / 100);
        put_pair(buf, 2, y % 100);
        put_pair(buf, 5, m as usize);
        put_pair(buf, 8, d as usize);
        put_pair(buf, 11, sod / 3_600);
        put_pair(buf, 14, sod % 3_600 / 60);
        put_pair(buf, 17, sod % 60);
        put_pair(buf, 20, micros / 10_000);
        put_pair(buf, 22, micros / 100 % 100);
        put_pair(buf, 24, micros % 100);
        std::str::from_utf8(buf).ok()
    }
}

/// "00" to "99", two bytes each.
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Writes `n` (< 100) as two decimal digits at `buf[at..at + 2]`.
fn put_pair(buf: &mut [u8; 27], at: usize, n: usize) {
    let n = n % 100;
    buf[at] = PAIRS[2 * n];
    buf[at + 1] = PAIRS[2 * n + 1];
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(text) = self.rfc3339(&mut [0; 27]) {
            return f.write_str(text);
        }
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            sod / 3_600,
            sod % 3_600 / 60,
            sod % 60
        )
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            // The text straight to `serialize_str`: through `collect_str` it
            // went by `fmt::write` and the writer's adapter, ~850
            // instructions per JSON event with a time (callgrind), now ~400.
            match self.rfc3339(&mut [0; 27]) {
                Some(text) => s.serialize_str(text),
                None => s.collect_str(self),
            }
        } else {
            s.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            Timestamp::parse(&text).map_err(serde::de::Error::custom)
        } else {
            i64::deserialize(d).map(Timestamp)
        }
    }
}

/// Where the runtime reads the time of a command, once, before its handler runs.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// For a clock that moves only when told to ([`ManualClock`]): a receiver
    /// that sees every move, so whoever waits for a time (the timer runner)
    /// wakes when the clock is set or advanced instead of sleeping. `None`,
    /// the default, for a clock that moves by itself: wait for it with a timer.
    fn moves(&self) -> Option<tokio::sync::watch::Receiver<()>> {
        None
    }
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::wall_clock()
    }
}

/// A clock that moves only when told to: for tests and simulations.
/// Clones share the same time. Every move is announced ([`Clock::moves`]),
/// so timers due by the new time fire without anyone sleeping.
#[derive(Clone, Debug)]
pub struct ManualClock {
    micros: std::sync::Arc<std::sync::atomic::AtomicI64>,
    moved: std::sync::Arc<tokio::sync::watch::Sender<()>>,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new(Timestamp::EPOCH)
    }
}

impl ManualClock {
    /// A clock standing at `at`.
    pub fn new(at: Timestamp) -> Self {
        ManualClock {
            micros: std::sync::Arc::new(std::sync::atomic::AtomicI64::new(at.as_micros())),
            moved: std::sync::Arc::new(tokio::sync::watch::channel(()).0),
        }
    }

    /// The time it stands at (also [`Clock::now`], without importing the trait).
    pub fn now(&self) -> Timestamp {
        Timestamp(self.micros.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Sets the time.
    pub fn set(&self, at: Timestamp) {
        self.micros
            .store(at.as_micros(), std::sync::atomic::Ordering::SeqCst);
        self.moved.send_replace(());
    }

    /// Moves the time forward by `d`.
    pub fn advance(&self, d: Duration) {
        let micros = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        self.micros.fetch_add(micros, std::sync::atomic::Ordering::SeqCst);
        self.moved.send_replace(());
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        ManualClock::now(self)
    }

    fn moves(&self) -> Option<tokio::sync::watch::Receiver<()>> {
        Some(self.moved.subscribe())
    }
}

// Howard Hinnant's civil calendar algorithms (proleptic Gregorian, public domain).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_rfc3339() {
        let t = Timestamp::parse("2026-11-26T20:12:29.123456Z").unwrap();
        assert_eq!(t.to_string(), "2026-11-26T20:12:29.123456Z");
        assert_eq!(
            Timestamp::parse("1970-01-01T00:00:00Z").unwrap(),
            Timestamp::EPOCH
        );
        assert_eq!(
            Timestamp::from_micros(-1).to_string(),
            "1969-12-31T23:59:59.999999Z"
        );
        assert_eq!(
            Timestamp::parse("2000-02-29T12:00:00.5Z").unwrap().to_string(),
            "2000-02-29T12:00:00.500000Z"
        );
    }

    /// The table-driven text, checked against `write!` over the years 0 to
    /// 9999, every second of a day and microseconds with every digit pair.
    #[test]
    fn the_fast_text_is_the_formatted_text() {
        let reference = |t: Timestamp| {
            let (secs, micros) = (t.0.div_euclid(1_000_000), t.0.rem_euclid(1_000_000));
            let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
            let (y, m, d) = civil_from_days(days);
            format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
                sod / 3_600,
                sod % 3_600 / 60,
                sod % 60
            )
        };
        let first = Timestamp::parse("0000-01-01T00:00:00Z").unwrap().0;
        let last = Timestamp::parse("9999-12-31T23:59:59.999999Z").unwrap().0;
        let mut checked = 0;
        let mut at = first;
        while at <= last {
            let t = Timestamp(at);
            assert_eq!(t.rfc3339(&mut [0; 27]), Some(reference(t).as_str()));
            at += 86_400_000_000 * 7 + 3_600_000_000 * 5 + 60_000_000 * 7 + 1_000_000 * 13 + 10_101;
            checked += 1;
        }
        for sod in 0..86_400 {
            let t = Timestamp::from_secs(1_767_225_600 + sod);
            assert_eq!(t.to_string(), reference(t));
        }
        for micros in (0..1_000_000).step_by(101) {
            let t = Timestamp(1_767_225_600_000_000 + micros);
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                format!("\"{}\"", reference(t))
            );
        }
        assert!(checked > 500_000, "{checked} instants checked");
        assert_eq!(Timestamp(first - 1).rfc3339(&mut [0; 27]), None);
        assert_eq!(Timestamp(last + 1).rfc3339(&mut [0; 27]), None);
    }

    #[test]
    fn rejects_text_that_is_not_a_timestamp() {
        let err = Timestamp::parse("2026-11-26 20:12:29").unwrap_err();
        assert!(err.to_string().contains("2026-11-26 20:12:29"), "{err}");
        assert!(Timestamp::parse("2026-13-01T00:00:00Z").is_err());
        assert!(Timestamp::parse("2026-11-26T20:12:29+01:00").is_err());
    }

    #[test]
    fn serializes_as_text_for_json_and_integer_for_binary() {
        let t = Timestamp::from_secs(86_400);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"1970-01-02T00:00:00.000000Z\""
        );
        assert_eq!(
            Timestamp::from_micros(-62_135_596_800_000_001).to_string(),
            "0000-12-31T23:59:59.999999Z"
        );
        assert_eq!(
            Timestamp::from_secs(253_402_300_800).to_string(),
            "10000-01-01T00:00:00.000000Z"
        );
        let bytes = postcard::to_stdvec(&t).unwrap();
        assert_eq!(postcard::from_bytes::<Timestamp>(&bytes).unwrap(), t);
    }

    #[test]
    fn a_manual_clock_announces_every_move_and_the_wall_clock_none() {
        let clock = ManualClock::new(Timestamp::from_secs(10));
        let mut moves = clock.moves().expect("a manual clock announces its moves");
        assert!(!moves.has_changed().unwrap());
        clock.advance(Duration::from_secs(5));
        assert!(moves.has_changed().unwrap());
        moves.borrow_and_update();
        clock.clone().set(Timestamp::from_secs(1));
        assert!(moves.has_changed().unwrap(), "a clone moves the same clock");
        assert_eq!(clock.now(), Timestamp::from_secs(1));
        assert!(SystemClock.moves().is_none());
    }
}

#[cfg(all(test, feature = "jiff"))]
mod jiff_tests {
    use super::Timestamp;

    #[test]
    fn a_timestamp_round_trips_through_jiff_and_names_its_utc_day() {
        let t = Timestamp::parse("2026-03-31T23:59:59.123456Z").unwrap();
        let j = t.to_jiff().unwrap();
        assert_eq!(j.to_string(), "2026-03-31T23:59:59.123456Z");
        assert_eq!(Timestamp::from(j), t);
        let day = t.utc_date().unwrap();
        assert_eq!(day, jiff::civil::date(2026, 3, 31));
        // Day arithmetic crosses the month: the next night is April 1st.
        assert_eq!(day.tomorrow().unwrap(), jiff::civil::date(2026, 4, 1));
        // Before the epoch too.
        assert_eq!(
            Timestamp::parse("1969-12-31T12:00:00Z")
                .unwrap()
                .utc_date()
                .unwrap(),
            jiff::civil::date(1969, 12, 31)
        );
    }

    #[test]
    fn a_timestamp_beyond_jiffs_years_is_an_error_and_now_saturates() {
        let far = Timestamp::from_micros(i64::MAX);
        assert!(far.to_jiff().is_err());
        assert!(jiff::Timestamp::try_from(far).is_err());
        let ctx = crate::Context::new(uuid::Uuid::nil(), far, "e", 0);
        assert_eq!(ctx.now_jiff(), jiff::Timestamp::MAX);
    }
}
