//! Which scheduled backups to keep, and when the next is due.
//!
//! Retention is grandfather-father-son, as `restic forget --keep-daily/--keep-weekly/
//! --keep-monthly` does it: going from the newest backup to the oldest, each rule keeps a
//! backup when it is the newest of a day (ISO week, month) that rule has not kept one of yet,
//! until it has kept its count. A backup any rule keeps stays; the others are removed. The
//! newest backup is always kept.

use std::collections::BTreeSet;
use time::{Duration, OffsetDateTime, Time};

/// The names of the backups to keep, from (name, time taken) pairs in any order.
pub fn keep(
    backups: &[(String, OffsetDateTime)],
    daily: u32,
    weekly: u32,
    monthly: u32,
) -> BTreeSet<String> {
    let mut sorted: Vec<&(String, OffsetDateTime)> = backups.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    type Bucket = fn(OffsetDateTime) -> (i32, u16);
    let rules: [(u32, Bucket); 3] = [
        (daily, |t| (t.year(), t.ordinal())),
        (weekly, |t| {
            let (y, w, _) = t.to_iso_week_date();
            (y, u16::from(w))
        }),
        (monthly, |t| (t.year(), u16::from(u8::from(t.month())))),
    ];
    let mut kept = BTreeSet::new();
    if let Some((newest, _)) = sorted.first() {
        kept.insert(newest.clone());
    }
    for (count, bucket) in rules {
        let mut last = None;
        let mut n = 0;
        for (name, at) in &sorted {
            if n >= count {
                break;
            }
            let b = bucket(at.to_offset(time::UtcOffset::UTC));
            if last != Some(b) {
                last = Some(b);
                n += 1;
                kept.insert(name.clone());
            }
        }
    }
    kept
}

/// How scheduled backups are timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cadence {
    /// Every day at this UTC time.
    Daily { hour: u8, minute: u8 },
    /// Every this many seconds.
    Every(Duration),
}

/// When the next backup is due, given the latest attempt (if any).
pub fn next_run(
    cadence: Cadence,
    now: OffsetDateTime,
    last_attempt: Option<OffsetDateTime>,
) -> OffsetDateTime {
    let soon = now + Duration::minutes(1);
    match cadence {
        Cadence::Every(every) => match last_attempt {
            Some(t) => (t + every).max(now),
            None => now + every.min(Duration::minutes(1)),
        },
        Cadence::Daily { hour, minute } => {
            let at = Time::from_hms(hour, minute, 0).unwrap_or(Time::MIDNIGHT);
            let now_utc = now.to_offset(time::UtcOffset::UTC);
            let today = now_utc.replace_time(at);
            let next = if today > now_utc {
                today
            } else {
                today + Duration::days(1)
            };
            // A day missed (the server was down at the time): catch up now.
            match last_attempt {
                Some(t) if next - t > Duration::hours(25) && soon < next => soon,
                _ => next,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn names(set: &BTreeSet<String>) -> Vec<&str> {
        set.iter().map(String::as_str).collect()
    }

    #[test]
    fn keeps_the_newest_of_each_day_week_and_month() {
        // Two backups a day, every day, for 400 days, ending Monday 2027-03-01.
        let end = datetime!(2027-03-01 14:00 UTC);
        let mut all = Vec::new();
        for day in 0..400 {
            for hour in [2, 14] {
                let at = end - Duration::days(day) - Duration::hours(14 - hour);
                all.push((format!("b-{}", at.unix_timestamp()), at));
            }
        }
        let kept = keep(&all, 7, 4, 12);
        let when = |n: &str| {
            all.iter()
                .find(|(name, _)| name == n)
                .map(|(_, t)| *t)
                .unwrap()
        };
        let mut times: Vec<OffsetDateTime> = kept.iter().map(|n| when(n)).collect();
        times.sort();
        // Daily: the 14:00 backups of the last 7 days.
        for d in 0..7 {
            assert!(times.contains(&(end - Duration::days(d))), "day {d}");
        }
        assert!(
            !times.contains(&(end - Duration::hours(12))),
            "an older one of today"
        );
        // Weekly: the newest of the 4 latest ISO weeks (Sundays 14:00, besides this week's).
        for w in 1..4 {
            assert!(
                times.contains(&(end - Duration::days(1 + 7 * (w - 1)))),
                "week {w}"
            );
        }
        // Monthly: the last backup of each of the 12 latest months.
        assert!(times.contains(&datetime!(2027-02-28 14:00 UTC)));
        assert!(times.contains(&datetime!(2027-01-31 14:00 UTC)));
        assert!(times.contains(&datetime!(2026-04-30 14:00 UTC)));
        assert!(
            !times.contains(&datetime!(2026-03-31 14:00 UTC)),
            "a 13th month"
        );
        // 7 daily + 2 more weeks (this week's and last week's newest are daily ones) + 10
        // more months (this month's and February's newest are daily ones).
        assert_eq!(kept.len(), 7 + 2 + 10, "{:?}", names(&kept));
        // The oldest kept is the 12th month back.
        assert_eq!(times.first(), Some(&datetime!(2026-04-30 14:00 UTC)));
    }

    #[test]
    fn the_newest_is_kept_and_few_backups_are_all_kept() {
        let t = datetime!(2027-03-01 02:00 UTC);
        let all = vec![
            ("a".to_string(), t - Duration::days(2)),
            ("b".to_string(), t - Duration::days(1)),
            ("c".to_string(), t),
        ];
        assert_eq!(names(&keep(&all, 7, 4, 12)), ["a", "b", "c"]);
        assert_eq!(names(&keep(&all, 1, 0, 0)), ["c"]);
        assert_eq!(names(&keep(&all, 0, 0, 1)), ["c"]);
        // Several in one day (a short interval): the newest of the day only.
        let burst: Vec<_> = (0..10)
            .map(|i| (format!("s{i}"), t + Duration::seconds(i)))
            .collect();
        assert_eq!(names(&keep(&burst, 7, 4, 12)), ["s9"]);
        assert!(keep(&[], 7, 4, 12).is_empty());
    }

    #[test]
    fn the_next_run_follows_the_cadence() {
        let daily = Cadence::Daily {
            hour: 2,
            minute: 30,
        };
        let now = datetime!(2027-03-01 01:00 UTC);
        assert_eq!(
            next_run(daily, now, Some(now - Duration::hours(22))),
            datetime!(2027-03-01 02:30 UTC)
        );
        let later = datetime!(2027-03-01 03:00 UTC);
        assert_eq!(
            next_run(daily, later, Some(datetime!(2027-03-01 02:30 UTC))),
            datetime!(2027-03-02 02:30 UTC)
        );
        // Never run: wait for the time of day; a day missed: catch up within a minute.
        assert_eq!(
            next_run(daily, later, None),
            datetime!(2027-03-02 02:30 UTC)
        );
        assert_eq!(
            next_run(daily, later, Some(datetime!(2027-02-27 02:30 UTC))),
            later + Duration::minutes(1)
        );
        let every = Cadence::Every(Duration::hours(6));
        assert_eq!(
            next_run(every, later, Some(later - Duration::hours(1))),
            later + Duration::hours(5)
        );
        assert_eq!(
            next_run(every, later, Some(later - Duration::days(1))),
            later
        );
        assert_eq!(next_run(every, later, None), later + Duration::minutes(1));
        let fast = Cadence::Every(Duration::seconds(2));
        assert_eq!(next_run(fast, later, None), later + Duration::seconds(2));
    }
}
