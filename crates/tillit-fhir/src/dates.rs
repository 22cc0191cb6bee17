//! FHIR date, dateTime and instant values as half-open ranges of Unix milliseconds, so that
//! partial dates search right: "2026-03" is all of March.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// `[low, high)` in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    pub low: i64,
    pub high: i64,
}

/// Far ends for open periods.
pub const MIN: i64 = i64::MIN / 4;
pub const MAX: i64 = i64::MAX / 4;

fn ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(MAX)
}

fn num<T: std::str::FromStr>(s: Option<&str>) -> Option<T> {
    s.filter(|x| x.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|x| x.parse().ok())
}

/// Parses `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, or a dateTime with time and offset (`Z`/`±hh:mm`),
/// with optional fractional seconds. Dates without an offset are taken as UTC.
pub fn parse_range(s: &str) -> Option<DateRange> {
    let s = s.trim();
    let (date_part, time_part) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut it = date_part.split('-');
    let year: i32 = num(it.next()).filter(|_| date_part.get(..4).is_some_and(|y| y.len() == 4))?;
    let month: Option<u8> = match it.next() {
        Some(m) if m.len() == 2 => Some(num(Some(m))?),
        Some(_) => return None,
        None => None,
    };
    let day: Option<u8> = match it.next() {
        Some(d) if d.len() == 2 => Some(num(Some(d))?),
        Some(_) => return None,
        None => None,
    };
    if it.next().is_some() {
        return None;
    }
    let utc = |d: Date| PrimitiveDateTime::new(d, Time::MIDNIGHT).assume_utc();
    match (month, day, time_part) {
        (None, None, None) => {
            let low = utc(Date::from_calendar_date(year, Month::January, 1).ok()?);
            let high = utc(Date::from_calendar_date(year.checked_add(1)?, Month::January, 1).ok()?);
            Some(DateRange {
                low: ms(low),
                high: ms(high),
            })
        }
        (Some(m), None, None) => {
            let month = Month::try_from(m).ok()?;
            let low = Date::from_calendar_date(year, month, 1).ok()?;
            let (ny, nm) = if month == Month::December {
                (year.checked_add(1)?, Month::January)
            } else {
                (year, month.next())
            };
            let high = Date::from_calendar_date(ny, nm, 1).ok()?;
            Some(DateRange {
                low: ms(utc(low)),
                high: ms(utc(high)),
            })
        }
        (Some(m), Some(d), None) => {
            let date = Date::from_calendar_date(year, Month::try_from(m).ok()?, d).ok()?;
            let low = utc(date);
            Some(DateRange {
                low: ms(low),
                high: ms(low + time::Duration::days(1)),
            })
        }
        (Some(m), Some(d), Some(t)) => {
            let date = Date::from_calendar_date(year, Month::try_from(m).ok()?, d).ok()?;
            let (clock, offset) = split_offset(t)?;
            let mut parts = clock.split(':');
            let h: u8 = num(parts.next().filter(|p| p.len() == 2))?;
            let mi: u8 = num(parts.next().filter(|p| p.len() == 2))?;
            let sec_str = parts.next();
            if parts.next().is_some() {
                return None;
            }
            let (sec, nanos, precision_ms) = match sec_str {
                None => (0u8, 0u32, 60_000i64),
                Some(sf) => {
                    let (whole, frac) = sf.split_once('.').unwrap_or((sf, ""));
                    let sec: u8 = num(Some(whole).filter(|w| w.len() == 2))?;
                    if !frac.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    let digits: String =
                        frac.chars().chain(std::iter::repeat('0')).take(9).collect();
                    let nanos: u32 = digits.parse().ok()?;
                    let precision = if frac.is_empty() { 1000 } else { 1 };
                    (sec, nanos, precision)
                }
            };
            let time = Time::from_hms_nano(h, mi, sec, nanos).ok()?;
            let at = PrimitiveDateTime::new(date, time).assume_offset(offset);
            let low = ms(at);
            Some(DateRange {
                low,
                high: low + precision_ms,
            })
        }
        _ => None,
    }
}

fn split_offset(t: &str) -> Option<(&str, UtcOffset)> {
    if let Some(clock) = t.strip_suffix('Z') {
        return Some((clock, UtcOffset::UTC));
    }
    // No offset: UTC (search values may leave it out; resources may not, which the
    // validator enforces).
    let Some(idx) = t.rfind(['+', '-']) else {
        return Some((t, UtcOffset::UTC));
    };
    let (clock, off) = t.split_at(idx);
    let sign: i8 = if off.starts_with('-') { -1 } else { 1 };
    let (oh, om) = off.get(1..)?.split_once(':')?;
    let oh: i8 = num(Some(oh).filter(|x| x.len() == 2))?;
    let om: i8 = num(Some(om).filter(|x| x.len() == 2))?;
    Some((clock, UtcOffset::from_hms(sign * oh, sign * om, 0).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Option<(i64, i64)> {
        parse_range(s).map(|r| (r.low, r.high))
    }

    #[test]
    fn partial_dates_cover_their_whole_span() {
        assert_eq!(r("2026"), Some((1_767_225_600_000, 1_798_761_600_000)));
        assert_eq!(r("2026-02").map(|(l, h)| (h - l) / 86_400_000), Some(28));
        assert_eq!(r("2024-02").map(|(l, h)| (h - l) / 86_400_000), Some(29));
        assert_eq!(r("2026-12").map(|(l, h)| (h - l) / 86_400_000), Some(31));
        assert_eq!(r("2026-03-01").map(|(l, h)| h - l), Some(86_400_000));
    }

    #[test]
    fn date_times_respect_offsets_and_precision() {
        let utc = r("2026-03-01T12:00:00Z");
        assert_eq!(r("2026-03-01T13:00:00+01:00"), utc);
        assert_eq!(utc.map(|(l, h)| h - l), Some(1000));
        assert_eq!(r("2026-03-01T12:00:00.250Z").map(|(l, h)| h - l), Some(1));
        assert_eq!(r("2026-03-01T12:00Z").map(|(l, h)| h - l), Some(60_000));
        assert_eq!(r("2026-03-01T12:00:00"), utc, "no offset: UTC");
    }

    #[test]
    fn nonsense_is_refused() {
        for bad in [
            "",
            "26",
            "2026-13",
            "2026-02-30",
            "2026-1-01",
            "2026-01-01T25:00:00Z",
            "x",
            "2026-01-01T12:00:00+1:00",
        ] {
            assert_eq!(parse_range(bad), None, "{bad}");
        }
    }
}
