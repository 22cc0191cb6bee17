//! In-memory throttling of login attempts per client IP and per unknown username.
//!
//! Known accounts are throttled in the store (so a lockout survives a restart and holds across
//! nodes); unknown usernames get the same treatment here, so that "locked" never tells an
//! attacker that an account exists.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Entries kept at most per map; the oldest-expiring are dropped first beyond it.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Default, Clone)]
struct Entry {
    window_start: i64,
    failures: u32,
    blocked_until: i64,
    strikes: u32,
}

#[derive(Debug)]
pub struct Throttle {
    max_failures: u32,
    window: i64,
    base_block: i64,
    max_block: i64,
    by_ip: Mutex<HashMap<IpAddr, Entry>>,
    by_name: Mutex<HashMap<String, Entry>>,
}

impl Throttle {
    pub fn new(ip_max_failures: u32, ip_window: u32, base_block: u32, max_block: u32) -> Self {
        Self {
            max_failures: ip_max_failures.max(1),
            window: i64::from(ip_window.max(1)),
            base_block: i64::from(base_block.max(1)),
            max_block: i64::from(max_block.max(1)),
            by_ip: Mutex::default(),
            by_name: Mutex::default(),
        }
    }

    /// Seconds until `ip` may try again, or `None` if it may now.
    pub fn ip_blocked(&self, ip: IpAddr, now: i64) -> Option<u64> {
        let map = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        blocked(map.get(&ip), now)
    }

    pub fn ip_failed(&self, ip: IpAddr, now: i64) {
        let mut map = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        fail(
            &mut map,
            ip,
            now,
            self.max_failures,
            self.window,
            self.base_block,
            self.max_block,
        );
    }

    /// For usernames that do not exist: same policy as accounts (`max_failures`, doubling).
    pub fn name_blocked(&self, name: &str, now: i64) -> Option<u64> {
        let map = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        blocked(map.get(name), now)
    }

    pub fn name_failed(&self, name: &str, now: i64, max_failures: u32) {
        let mut map = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        // Accounts count failures without a window until a success; so do unknown names.
        fail(
            &mut map,
            name.to_string(),
            now,
            max_failures.max(1),
            i64::MAX / 4,
            self.base_block,
            self.max_block,
        );
    }

    /// The lockout for an account's `n`-th consecutive failure, if that failure locks it:
    /// every `max_failures`-th failure locks, for `base * 2^(k-1)` seconds, capped.
    pub fn account_lockout(&self, n: u32, max_failures: u32) -> Option<i64> {
        let max_failures = max_failures.max(1);
        if n == 0 || !n.is_multiple_of(max_failures) {
            return None;
        }
        Some(backoff(
            n / max_failures - 1,
            self.base_block,
            self.max_block,
        ))
    }
}

fn backoff(strikes: u32, base: i64, max: i64) -> i64 {
    base.saturating_mul(1i64 << strikes.min(30)).min(max)
}

fn blocked(e: Option<&Entry>, now: i64) -> Option<u64> {
    e.filter(|e| e.blocked_until > now)
        .map(|e| u64::try_from(e.blocked_until - now).unwrap_or(1))
}

fn fail<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Entry>,
    key: K,
    now: i64,
    max_failures: u32,
    window: i64,
    base: i64,
    max: i64,
) {
    if map.len() >= MAX_ENTRIES {
        map.retain(|_, e| e.blocked_until > now || now - e.window_start < window.min(86_400));
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
    }
    let e = map.entry(key).or_default();
    if now - e.window_start >= window {
        e.window_start = now;
        e.failures = 0;
    }
    e.failures += 1;
    if e.failures >= max_failures {
        e.blocked_until = now + backoff(e.strikes, base, max);
        e.strikes += 1;
        e.failures = 0;
        e.window_start = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_is_blocked_after_the_limit_with_doubling_backoff() {
        let t = Throttle::new(3, 600, 60, 3600);
        let ip: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..2 {
            t.ip_failed(ip, 1000);
        }
        assert_eq!(t.ip_blocked(ip, 1000), None);
        t.ip_failed(ip, 1000);
        assert_eq!(t.ip_blocked(ip, 1000), Some(60));
        assert_eq!(t.ip_blocked(ip, 1060), None);
        for _ in 0..3 {
            t.ip_failed(ip, 1060);
        }
        assert_eq!(t.ip_blocked(ip, 1060), Some(120));
    }

    #[test]
    fn account_lockouts_double_and_are_capped() {
        let t = Throttle::new(3, 600, 60, 200);
        assert_eq!(t.account_lockout(4, 5), None);
        assert_eq!(t.account_lockout(5, 5), Some(60));
        assert_eq!(t.account_lockout(10, 5), Some(120));
        assert_eq!(t.account_lockout(15, 5), Some(200));
    }

    #[test]
    fn unknown_names_lock_like_accounts() {
        let t = Throttle::new(100, 600, 60, 3600);
        for _ in 0..4 {
            t.name_failed("ghost", 0, 5);
        }
        assert_eq!(t.name_blocked("ghost", 0), None);
        t.name_failed("ghost", 0, 5);
        assert_eq!(t.name_blocked("ghost", 10), Some(50));
    }
}
