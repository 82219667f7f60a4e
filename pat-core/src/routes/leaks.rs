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
//!
//! The limit counts per IPv4 address and per IPv6 `/64` (one host holds a
//! whole `/64`), in windows that end; the limiter remembers at most 10,000
//! clients, and past that forgets the one whose window began first, so a
//! flood of addresses costs honest reporters at most one window. Behind a
//! reverse proxy every reporter would be the proxy: name it with
//! [`LeakReports::trusted_proxies`], and the client address is read from
//! the headers it writes (see [`TrustedProxies`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::gate::limiter::PerAddress;
use crate::routes::proxy::TrustedProxies;

use crate::backend::admin::Admin;
use crate::model::time::Timestamp;
use crate::routes::answer::Answer;
use crate::routes::secret_scanning::revoke_found;

/// The most tokens one report may carry.
pub const MAX_REPORTED: usize = 1000;

/// The leak-report decisions over a backend.
#[derive(Clone)]
pub struct LeakReports {
    admin: Arc<dyn Admin + Send + Sync>,
    proxies: TrustedProxies,
    limiter: Arc<PerAddress>,
}

impl std::fmt::Debug for LeakReports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeakReports")
            .field("limit", &self.limiter.limit())
            .field("window", &self.limiter.window())
            .finish_non_exhaustive()
    }
}

impl LeakReports {
    /// Leak reports revoking tokens of `admin`, at most 10 reports a minute
    /// from one address.
    pub fn new(admin: Arc<dyn Admin + Send + Sync>) -> LeakReports {
        LeakReports {
            admin,
            proxies: TrustedProxies::none(),
            limiter: Arc::new(PerAddress::new(10, Duration::from_secs(60))),
        }
    }

    crate::routes::proxy::client_address!(LeakReports);

    /// At most `reports` reports per `window` from one client address.
    pub fn limit(mut self, reports: u32, window: Duration) -> LeakReports {
        self.limiter = Arc::new(PerAddress::new(reports, window));
        self
    }

    /// The answer to `client` posting `body` at `now`. Blocks (store
    /// reads and writes): the adapters run it on a blocking pool.
    pub fn report_blocking(&self, client: IpAddr, body: &[u8], now: Timestamp) -> Answer {
        if let Err(retry_after) = self.limiter.admit(client, now) {
            return Answer::too_many(
                "too many leak reports from this address; retry later",
                retry_after,
            );
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
        let actor = format!("{}{client}", crate::model::event::LEAK_ACTORS[2]);
        // A store that fails is logged there; the answer stays the same
        // whatever became of each token.
        let revoked = tokens
            .iter()
            .filter(|token| revoke_found(&*self.admin, token, || actor.clone(), now) == Ok(true))
            .count();
        if revoked > 0 {
            tracing::warn!(%client, revoked, "tokens reported leaked were revoked");
        }
        Answer::json(202, &serde_json::json!({ "status": "received" }))
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::gate::limiter::MAX_CLIENTS;
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

        // A flood of addresses: the limiter stays bounded, and forgets the
        // oldest client rather than lock every new one out. (Issue 21,
        // finding 7: a full table refused every new reporter.)
        let many = LeakReports::new(store).limit(1, Duration::from_secs(60));
        for i in 0..2 * MAX_CLIENTS as u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            assert_eq!(many.report_blocking(ip, b"[]", at(100)).status, 202);
        }
        assert_eq!(many.report_blocking(two, b"[]", at(100)).status, 202);
        let (clients, order) = many.limiter.sizes();
        assert!(clients <= MAX_CLIENTS);
        assert!(order <= 2 * MAX_CLIENTS);
    }

    // Finding 7: the limit was per exact address, and one IPv6 /64 holds
    // more addresses than the table.
    #[test]
    fn an_ipv6_64_counts_as_one_client() {
        let reports =
            LeakReports::new(Arc::new(MemoryStore::new())).limit(1, Duration::from_secs(60));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            reports
                .report_blocking(ip("2001:db8::1"), b"[]", at(0))
                .status,
            202
        );
        assert_eq!(
            reports
                .report_blocking(ip("2001:db8::2"), b"[]", at(0))
                .status,
            429
        );
        assert_eq!(
            reports
                .report_blocking(ip("2001:db8::ffff:ffff:ffff:ffff"), b"[]", at(0))
                .status,
            429
        );
        assert_eq!(
            reports
                .report_blocking(ip("2001:db8:0:1::1"), b"[]", at(0))
                .status,
            202
        );
        // An IPv4-mapped address is its IPv4 address.
        assert_eq!(
            reports
                .report_blocking(ip("192.0.2.9"), b"[]", at(0))
                .status,
            202
        );
        assert_eq!(
            reports
                .report_blocking(ip("::ffff:192.0.2.9"), b"[]", at(0))
                .status,
            429
        );
    }
}
