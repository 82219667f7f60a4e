//! Leak reports, as GitHub's credential revocation API: whoever finds a
//! token (in a public repository, a log, a ticket) posts it, and it is
//! revoked. The route is public, so it answers the same whatever was
//! posted (it must not tell a caller which tokens were valid) and is rate
//! limited per client address.
//!
//! `POST` a JSON array of up to [`MAX_REPORTED`] token strings: each one
//! that is a live token is revoked, the audit log naming the actor
//! `reported leaked by ADDRESS`. The answer is `202 {"status":"received"}`
//! for any such array (idempotent: reporting again changes nothing), 400
//! for a body that is not one, and 429 with `Retry-After` past the limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::admin::Admin;
use crate::selfservice::Answer;
use crate::time::Timestamp;
use crate::token::TokenDigest;

/// The most tokens one report may carry.
pub const MAX_REPORTED: usize = 1000;

/// How many client addresses the limiter remembers at most; past it, a new
/// address is refused (429) until windows expire.
const MAX_CLIENTS: usize = 10_000;

/// The leak-report decisions over a backend.
#[derive(Clone)]
pub struct LeakReports {
    admin: Arc<dyn Admin + Send + Sync>,
    limit: u32,
    window: Duration,
    clients: Arc<Mutex<HashMap<IpAddr, (u64, u32)>>>,
}

impl std::fmt::Debug for LeakReports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeakReports")
            .field("limit", &self.limit)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl LeakReports {
    /// Leak reports revoking tokens of `admin`, at most 10 reports a minute
    /// from one address.
    pub fn new(admin: Arc<dyn Admin + Send + Sync>) -> LeakReports {
        LeakReports {
            admin,
            limit: 10,
            window: Duration::from_secs(60),
            clients: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// At most `reports` reports per `window` from one client address.
    pub fn limit(mut self, reports: u32, window: Duration) -> LeakReports {
        self.limit = reports;
        self.window = window.max(Duration::from_secs(1));
        self
    }

    /// The answer to `client` posting `body` at `now`. Blocks (store
    /// reads and writes): the adapters run it on a blocking pool.
    pub fn report_blocking(&self, client: IpAddr, body: &[u8], now: Timestamp) -> Answer {
        if let Err(retry_after) = self.admit(client, now) {
            let mut a = Answer::error(
                429,
                "too_many_requests",
                "too many leak reports from this address; retry later",
            );
            a.retry_after = Some(retry_after);
            return a;
        }
        let tokens: Vec<String> = match serde_json::from_slice(body) {
            Ok(tokens) => tokens,
            Err(_) => {
                return Answer::error(
                    400,
                    "invalid_request",
                    "the body must be a JSON array of token strings",
                );
            }
        };
        if tokens.len() > MAX_REPORTED {
            return Answer::error(
                400,
                "invalid_request",
                &format!("at most {MAX_REPORTED} tokens per report"),
            );
        }
        let actor = format!("reported leaked by {client}");
        let admin = self.admin.acting_as(&actor);
        let mut revoked = 0;
        for token in &tokens {
            let Ok(digest) = TokenDigest::from_token(token) else {
                continue;
            };
            match self.admin.find(&digest, now) {
                Ok(Some(info)) if !info.is_expired(now) => match admin.revoke(info.id) {
                    Ok(_) => revoked += 1,
                    Err(crate::StoreError::NotFound(_)) => {}
                    Err(e) => {
                        tracing::error!(error = %crate::error::chain(&e), "leak report: revoke failed")
                    }
                },
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %crate::error::chain(&e), "leak report: lookup failed")
                }
            }
        }
        if revoked > 0 {
            tracing::warn!(%client, revoked, "tokens reported leaked were revoked");
        }
        Answer::json(202, &serde_json::json!({ "status": "received" }))
    }

    /// Counts a report from `client`; `Err(seconds to wait)` past the limit.
    fn admit(&self, client: IpAddr, now: Timestamp) -> Result<(), u64> {
        let now = now.as_unix_secs();
        let window = self.window.as_secs();
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&client) {
            clients.retain(|_, (start, _)| now < *start + window);
            if clients.len() >= MAX_CLIENTS {
                return Err(window);
            }
        }
        let (start, count) = clients.entry(client).or_insert((now, 0));
        if now >= *start + window {
            (*start, *count) = (now, 0);
        }
        if *count >= self.limit {
            return Err((*start + window).saturating_sub(now).max(1));
        }
        *count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::{ExpiryPolicy, MemoryStore, NewToken};

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_unix_secs(secs).unwrap()
    }

    #[test]
    fn the_limit_is_per_address_and_per_window_and_bounded() {
        let store = Arc::new(MemoryStore::new());
        let t = store
            .create(
                &NewToken::new("alice", ExpiryPolicy::hard(Duration::from_secs(3600))),
                at(0),
            )
            .unwrap();
        let reports = LeakReports::new(store.clone()).limit(2, Duration::from_secs(60));
        let one = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let two = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(reports.report_blocking(one, b"[]", at(10)).status, 202);
        assert_eq!(reports.report_blocking(one, b"[]", at(20)).status, 202);
        let refused = reports.report_blocking(one, b"[]", at(30));
        assert_eq!((refused.status, refused.retry_after), (429, Some(40)));
        // Another address has its own count; the window ends.
        assert_eq!(reports.report_blocking(two, b"[]", at(30)).status, 202);
        let body = serde_json::to_vec(&[t.secret.expose_secret()]).unwrap();
        assert_eq!(reports.report_blocking(one, &body, at(70)).status, 202);
        assert!(store.get(t.info.id).is_err(), "revoked");
        let log = store.audit(at(0), Some("alice")).unwrap();
        assert_eq!(log.last().unwrap().actor, "reported leaked by 192.0.2.1");

        // A flood of addresses: the limiter stays bounded and fails closed.
        let many = LeakReports::new(store).limit(1, Duration::from_secs(60));
        for i in 0..MAX_CLIENTS as u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            assert_eq!(many.report_blocking(ip, b"[]", at(100)).status, 202);
        }
        assert_eq!(many.report_blocking(two, b"[]", at(100)).status, 429);
        assert!(many.clients.lock().unwrap().len() <= MAX_CLIENTS);
        // Once their windows end, new addresses get in again.
        assert_eq!(many.report_blocking(two, b"[]", at(200)).status, 202);
    }
}
