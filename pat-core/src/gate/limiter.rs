//! Counting per client address, in windows that end: the leak reports'
//! limit and the failed logins' limit share it.
//!
//! It counts per IPv4 address and per IPv6 `/64` (one host holds a whole
//! `/64`; an IPv4-mapped address is its IPv4 address). It remembers at most
//! [`MAX_CLIENTS`] clients, and past that forgets the one whose window began
//! first, so a flood of addresses costs honest clients at most one window.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::model::time::Timestamp;

/// How many clients a limiter remembers at most; past it, the one whose
/// window began first is forgotten.
pub(crate) const MAX_CLIENTS: usize = 10_000;

/// What a limit counts by: an IPv4 address, or the `/64` of an IPv6 one.
type Client = IpAddr;

pub(crate) use crate::model::network::unmapped;

/// The client `addr` counts as.
fn counted_as(addr: IpAddr) -> Client {
    match unmapped(addr) {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

/// The limiter's memory: each client's window (start, count) and the
/// clients in the order their windows began.
#[derive(Default)]
struct Windows {
    clients: HashMap<Client, (u64, u32)>,
    /// Oldest first; an element whose start no longer matches its client's
    /// window is stale and skipped.
    order: VecDeque<(Client, u64)>,
}

/// At most `limit` counts per client address per window.
pub(crate) struct PerAddress {
    limit: u32,
    window: Duration,
    windows: Mutex<Windows>,
}

impl std::fmt::Debug for PerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerAddress")
            .field("limit", &self.limit)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl PerAddress {
    /// `limit` counts per `window` (at least a second) from one client.
    pub(crate) fn new(limit: u32, window: Duration) -> PerAddress {
        PerAddress {
            limit,
            window: window.max(Duration::from_secs(1)),
            windows: Mutex::new(Windows::default()),
        }
    }

    /// The limit.
    pub(crate) fn limit(&self) -> u32 {
        self.limit
    }

    /// The window.
    pub(crate) fn window(&self) -> Duration {
        self.window
    }

    /// `Err(seconds to wait)` when `addr` has reached the limit in its
    /// window; counts nothing.
    pub(crate) fn check(&self, addr: IpAddr, now: Timestamp) -> Result<(), u64> {
        self.with(addr, now, false).map(drop)
    }

    /// [`check`](PerAddress::check), and counts one when below the limit.
    pub(crate) fn admit(&self, addr: IpAddr, now: Timestamp) -> Result<(), u64> {
        self.with(addr, now, true).map(drop)
    }

    /// [`admit`](PerAddress::admit), answering the start of the window
    /// it counted in, for [`forgive`](PerAddress::forgive).
    pub(crate) fn admit_in(&self, addr: IpAddr, now: Timestamp) -> Result<u64, u64> {
        self.with(addr, now, true)
    }

    /// Takes back one count of `addr` made in the window that started at
    /// `start` (a call counted before it was checked, that passed); none
    /// once that window is over.
    pub(crate) fn forgive(&self, addr: IpAddr, start: u64) {
        let mut w = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((s, count)) = w.clients.get_mut(&counted_as(addr))
            && *s == start
        {
            *count = count.saturating_sub(1);
        }
    }

    /// The check, counting one with `count_it`: the start of the window,
    /// or the seconds to wait.
    fn with(&self, addr: IpAddr, now: Timestamp, count_it: bool) -> Result<u64, u64> {
        let client = counted_as(addr);
        let now = now.as_unix_secs();
        let window = self.window.as_secs();
        let mut w = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let Windows { clients, order } = &mut *w;
        let fresh = match clients.get(&client) {
            None => true,
            Some(&(start, _)) => now >= start + window,
        };
        if fresh {
            if !count_it {
                // Nothing counted in an open window: below any limit but 0.
                return if self.limit == 0 {
                    Err(window.max(1))
                } else {
                    Ok(now)
                };
            }
            // A new window: forget the oldest clients past the bound (and
            // stale elements of the order on the way).
            while clients.len() >= MAX_CLIENTS && !clients.contains_key(&client) {
                let Some((oldest, start)) = order.pop_front() else {
                    break;
                };
                if clients.get(&oldest).is_some_and(|&(s, _)| s == start) {
                    clients.remove(&oldest);
                }
            }
            clients.insert(client, (now, 0));
            order.push_back((client, now));
            if order.len() > 2 * MAX_CLIENTS {
                order.retain(|(c, start)| clients.get(c).is_some_and(|&(s, _)| s == *start));
            }
        }
        let (start, count) = clients.entry(client).or_insert((now, 0));
        if *count >= self.limit {
            return Err((*start + window).saturating_sub(now).max(1));
        }
        if count_it {
            *count += 1;
        }
        Ok(*start)
    }

    /// How many clients it remembers, and the length of its order (tests).
    #[cfg(test)]
    pub(crate) fn sizes(&self) -> (usize, usize) {
        let w = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        (w.clients.len(), w.order.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_unix_secs(secs).unwrap()
    }

    #[test]
    fn check_counts_nothing_and_admit_counts_up_to_the_limit() {
        let limiter = PerAddress::new(2, Duration::from_secs(60));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..5 {
            assert_eq!(limiter.check(ip, at(0)), Ok(()));
        }
        assert_eq!(limiter.admit(ip, at(0)), Ok(()));
        assert_eq!(limiter.admit(ip, at(10)), Ok(()));
        assert_eq!(limiter.check(ip, at(20)), Err(40));
        assert_eq!(limiter.admit(ip, at(20)), Err(40));
        // The window ends.
        assert_eq!(limiter.check(ip, at(60)), Ok(()));
        assert_eq!(limiter.admit(ip, at(60)), Ok(()));
        assert_eq!(
            PerAddress::new(0, Duration::ZERO).check(ip, at(0)),
            Err(1),
            "a zero limit refuses"
        );
    }
}
