//! [`RemoteVerifierBuilder`]: the options of a remote verifier, and its
//! endpoint checked before anything is sent.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

use crate::error::BackendError;
use crate::model::prefix::{Prefix, Prefixes};
use crate::model::token::TokenSecret;

use super::{
    DEFAULT_CAPACITY, DEFAULT_MAX_IN_FLIGHT, DEFAULT_TIMEOUT, DEFAULT_TTL, Msg, RemoteError,
    RemoteVerifier, Shared,
};

/// Options of a [`RemoteVerifier`].
#[derive(Debug, Clone)]
pub struct RemoteVerifierBuilder {
    ttl: Duration,
    capacity: usize,
    timeout: Duration,
    allow_plain_http: bool,
    client: Option<reqwest::Client>,
    max_in_flight: usize,
    prefixes: Vec<Prefix>,
}

impl Default for RemoteVerifierBuilder {
    fn default() -> RemoteVerifierBuilder {
        RemoteVerifierBuilder {
            ttl: DEFAULT_TTL,
            capacity: DEFAULT_CAPACITY,
            timeout: DEFAULT_TIMEOUT,
            allow_plain_http: false,
            client: None,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            prefixes: Vec::new(),
        }
    }
}

impl RemoteVerifierBuilder {
    /// How long an answer is reused (default [`DEFAULT_TTL`]); the longest a
    /// revocation at the endpoint goes unseen here. Zero caches nothing.
    pub fn ttl(mut self, ttl: Duration) -> RemoteVerifierBuilder {
        self.ttl = ttl;
        self
    }

    /// How many active answers, and separately how many refusals, are kept
    /// (default [`DEFAULT_CAPACITY`] each); each map is emptied when it is
    /// full, so memory stays bounded whatever digests clients present, and
    /// unknown tokens never push out the identities of tokens in use.
    pub fn capacity(mut self, capacity: usize) -> RemoteVerifierBuilder {
        self.capacity = capacity;
        self
    }

    /// The deadline of one request to the endpoint (default
    /// [`DEFAULT_TIMEOUT`]); past it the lookup answers [`AuthError::Store`](crate::AuthError::Store).
    pub fn timeout(mut self, timeout: Duration) -> RemoteVerifierBuilder {
        self.timeout = timeout;
        self
    }

    /// How many requests to the endpoint may be under way at once (default
    /// [`DEFAULT_MAX_IN_FLIGHT`]). Lookups for the same digest share one
    /// request whatever this is; past the bound, a request waits up to the
    /// timeout for a turn, then its lookup answers [`AuthError::Store`](crate::AuthError::Store).
    pub fn max_in_flight(mut self, n: usize) -> RemoteVerifierBuilder {
        self.max_in_flight = n;
        self
    }

    /// Allows `http://` to a host that is not a loopback address (a private
    /// network you trust, a sidecar). Off by default.
    pub fn allow_plain_http(mut self, allow: bool) -> RemoteVerifierBuilder {
        self.allow_plain_http = allow;
        self
    }

    /// The HTTP client to use (TLS roots, proxies, client certificates);
    /// the timeout above still applies to each request.
    pub fn client(mut self, client: reqwest::Client) -> RemoteVerifierBuilder {
        self.client = Some(client);
        self
    }

    /// The token prefixes of the endpoint's store (see
    /// [`Prefixes`](crate::Prefixes)), current first, as `pat-cli prefix
    /// list` prints them. A token of no prefix here is not the endpoint's:
    /// the gate calls it foreign (in optional mode it passes to another
    /// auth layer) and never asks. By default, the prefix of the verifier's
    /// own token, which the endpoint's store made with its current one.
    /// Either way the verifier learns the store's prefixes from the
    /// endpoint's answers (`pat_prefixes`, see
    /// [`introspection`](crate::introspection)) as tokens are used: name
    /// the store's former prefixes here if tokens made under them may be
    /// the first presented.
    pub fn prefixes(mut self, prefixes: impl IntoIterator<Item = Prefix>) -> RemoteVerifierBuilder {
        self.prefixes = prefixes.into_iter().collect();
        self
    }

    /// A verifier asking the introspection endpoint at `url`, authenticating
    /// with `token` (whose user the endpoint must allow). Nothing is sent
    /// until the first lookup.
    pub fn connect(self, url: &str, token: &TokenSecret) -> Result<RemoteVerifier, RemoteError> {
        let endpoint = checked_url(url, self.allow_plain_http)?;
        let client_error =
            |e: &dyn fmt::Display| RemoteError::Client(BackendError::new(Msg(e.to_string())));
        let client = match self.client {
            Some(client) => client,
            None => reqwest::Client::builder()
                .build()
                .map_err(|e| client_error(&crate::error::chain(&e)))?,
        };
        let mut authorization = HeaderValue::try_from(format!("Bearer {}", token.expose_secret()))
            .map_err(|_| client_error(&"the token is not a header value"))?;
        authorization.set_sensitive(true);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("pat-remote")
            .enable_all()
            .build()
            .map_err(|e| RemoteError::Client(BackendError::new(e)))?;
        let told = match self.prefixes.is_empty() {
            true => vec![token.prefix()],
            false => self.prefixes,
        };
        let prefixes = Prefixes::from_stored(&told)
            .map_err(|e| client_error(&format!("token prefixes: {e}")))?;
        Ok(RemoteVerifier {
            shared: Arc::new(Shared {
                prefixes,
                endpoint,
                client,
                authorization,
                timeout: self.timeout,
                ttl: self.ttl,
                capacity: self.capacity.max(1),
                active: papaya::HashMap::with_hasher(std::hash::RandomState::new()),
                refused: papaya::HashMap::with_hasher(std::hash::RandomState::new()),
                waiting: std::sync::Mutex::new(HashMap::new()),
                in_flight: tokio::sync::Semaphore::new(self.max_in_flight.max(1)),
            }),
            handle: rt.handle().clone(),
            _runtime: crate::backend::block_on::OwnedRuntime::new(rt),
        })
    }
}

/// A checked endpoint: absolute, http(s), plain only where allowed.
pub(crate) fn checked_url(url: &str, allow_plain_http: bool) -> Result<reqwest::Url, RemoteError> {
    let bad = |reason: &str| RemoteError::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "credentials in the URL are not used; pass the token instead",
        ));
    }
    match parsed.scheme() {
        "https" => {}
        "http" => {
            let host = parsed.host_str().unwrap_or_default();
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = match bare.parse::<std::net::IpAddr>() {
                Ok(ip) => ip.is_loopback(),
                Err(_) => host.eq_ignore_ascii_case("localhost"),
            };
            if !loopback && !allow_plain_http {
                return Err(RemoteError::PlainHttp {
                    url: url.to_owned(),
                });
            }
        }
        _ => {
            // Not quoted: text before a `:` may be a secret pasted where
            // the URL belongs.
            return Err(bad("the scheme must be http or https"));
        }
    }
    Ok(parsed)
}
