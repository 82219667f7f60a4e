//! GitHub's secret scanning partner endpoint: GitHub finds a token of this
//! store in a public repository, a gist or an issue, and posts it here;
//! each live one is revoked at once, and GitHub is told which were real.
//!
//! GitHub signs each request: `Github-Public-Key-Signature` is the base64
//! of a DER ECDSA signature (NIST P-256, SHA-256) over the raw body, made
//! with the key `Github-Public-Key-Identifier` names. The keys are
//! GitHub's own, published at `https://api.github.com/meta/public_keys/secret_scanning`;
//! pat never fetches them: the operator puts that answer
//! (`{"public_keys": [{"key_identifier", "key", "is_current"}]}`) in a file
//! ([`KeyFile`], read again when it changes), or the integrator plugs in
//! a [`KeySource`] of their own (a fetcher with its cache).
//!
//! The body is a JSON array of `{"token", "type", "url", "source"}`. The
//! answer is `200` with GitHub's feedback format, one entry per reported
//! token: `{"token_hash": SHA-256 hex, "token_type", "label":
//! "true_positive" | "false_positive"}`, true for a token of this store
//! that was live. Refused, revoking nothing: a missing, malformed or wrong
//! signature, an unknown key identifier, a body changed after signing
//! (`401`); a body that is not such an array, or holds more than
//! [`MAX_REPORTED`](crate::leaks::MAX_REPORTED) tokens (`400`). The
//! adapters refuse a body over [`MAX_REPORT_LEN`] (`413`, 1 MiB: a report
//! of 1,000 findings with long URLs) before it gets here. Signed reports
//! are not held to the public leak route's per-address limit (GitHub sends
//! from few addresses); refused ones are: past
//! [`DEFAULT_REFUSALS`] a minute from one client address (an IPv4
//! address, an IPv6 `/64`), that client gets `429` with `Retry-After` before
//! its body is read or its signature checked, so that a flood of forged
//! signatures cannot keep the blocking pool busy with P-256 checks.
//! [`SecretScanning::precheck`] is what the adapters ask before reading
//! the body: the limit, and the headers' shape, checked without I/O. A
//! report is counted when the precheck admits it and given back once its
//! signature holds, so forged reports sent at once are counted before any
//! is checked (and at most that many reports from one address are being
//! checked at a time); a call without signature headers costs nothing to
//! refuse and is not counted, so that other services' webhooks from
//! GitHub's addresses cannot lock GitHub out.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::backend::admin::Admin;
use crate::gate::limiter::PerAddress;
use crate::leaks::MAX_REPORTED;
use crate::model::text::printable;
use crate::model::time::Timestamp;
use crate::model::token::TokenDigest;
use crate::routes::answer::Answer;
use crate::routes::proxy::TrustedProxies;

/// The header naming the key that signed a request.
pub const KEY_IDENTIFIER_HEADER: &str = "github-public-key-identifier";

/// The largest report body the adapters read: 1 MiB. GitHub sends at most
/// [`MAX_REPORTED`](crate::leaks::MAX_REPORTED) findings in one report,
/// each with the URL of where it was found, which a 64 KiB limit
/// ([`MAX_BODY_LEN`](crate::hygiene::MAX_BODY_LEN)) would cut at about
/// 300: GitHub would get `413` on every retry.
pub const MAX_REPORT_LEN: usize = 1024 * 1024;

/// Refused reports one client address may send in a minute by default
/// (see [`SecretScanning::refusal_limit`]).
pub const DEFAULT_REFUSALS: u32 = 10;
/// The header holding the request's signature.
pub const SIGNATURE_HEADER: &str = "github-public-key-signature";

/// The longest `url` or `source` kept in the audit actor.
const MAX_NOTED: usize = 200;

/// GitHub's public keys, as `meta/public_keys/secret_scanning` answers;
/// the default holds none, and every report is refused.
#[derive(Clone, Debug, Default)]
pub struct PublicKeys {
    keys: Arc<[(String, VerifyingKey)]>,
}

/// Keys that cannot be read or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeysError {
    /// The key file could not be read.
    #[error("cannot read the secret scanning keys file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not GitHub's format.
    #[error("secret scanning keys: {0}")]
    Format(String),
    /// A key file not in GitHub's format.
    #[error("secret scanning keys file {path}: {why}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong in it.
        why: String,
    },
}

impl PublicKeys {
    /// Reads GitHub's answer: `{"public_keys": [{"key_identifier": …,
    /// "key": PEM, "is_current": …}]}`. Every key is kept, current or not
    /// (GitHub signs with a retired key for a while after a rotation).
    pub fn parse(json: &[u8]) -> Result<PublicKeys, KeysError> {
        let value: Value = serde_json::from_slice(json)
            .map_err(|e| KeysError::Format(format!("not JSON: {e}")))?;
        let list = value
            .get("public_keys")
            .and_then(Value::as_array)
            .ok_or_else(|| KeysError::Format("no \"public_keys\" array".into()))?;
        let mut keys = Vec::with_capacity(list.len());
        for (i, entry) in list.iter().enumerate() {
            let id = entry
                .get("key_identifier")
                .and_then(Value::as_str)
                .ok_or_else(|| KeysError::Format(format!("key {i}: no \"key_identifier\"")))?;
            let pem = entry
                .get("key")
                .and_then(Value::as_str)
                .ok_or_else(|| KeysError::Format(format!("key {i}: no \"key\"")))?;
            let key = VerifyingKey::from_public_key_pem(pem).map_err(|e| {
                KeysError::Format(format!("key {i}: not a P-256 public key in PEM: {e}"))
            })?;
            if keys.iter().any(|(k, _): &(String, VerifyingKey)| k == id) {
                return Err(KeysError::Format(format!(
                    "key {i}: the key_identifier {id:?} is given twice"
                )));
            }
            keys.push((id.to_owned(), key));
        }
        Ok(PublicKeys { keys: keys.into() })
    }

    /// Whether there is no key (every report is refused).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn get(&self, id: &str) -> Option<&VerifyingKey> {
        self.keys.iter().find(|(k, _)| k == id).map(|(_, key)| key)
    }
}

/// Where the endpoint gets GitHub's keys: [`PublicKeys`] as they are, a
/// [`KeyFile`], or the integrator's own (a fetcher with its cache; called
/// for each report, on the blocking pool).
pub trait KeySource: Send + Sync {
    /// The keys to check a report with now.
    fn keys(&self) -> Result<Arc<PublicKeys>, KeysError>;
}

impl KeySource for PublicKeys {
    fn keys(&self) -> Result<Arc<PublicKeys>, KeysError> {
        Ok(Arc::new(self.clone()))
    }
}

/// GitHub's keys in a file, read again when its modification time or size
/// changes. A file that becomes unreadable or malformed keeps the keys read
/// last (logged as an error), so a half-written update loses no report.
#[derive(Debug)]
pub struct KeyFile {
    path: PathBuf,
    last: Mutex<(Stamp, Arc<PublicKeys>)>,
}

/// What tells that a file changed: its modification time and size, and on
/// Unix its inode and change time too (which no copy that keeps times,
/// nor a rewrite of the same size within a clock tick, keeps).
type Stamp = Option<(SystemTime, u64, u64, i64, i64)>;

fn stamp_of(meta: &std::fs::Metadata) -> Stamp {
    #[cfg(unix)]
    let (ino, ctime, ctime_ns) = {
        use std::os::unix::fs::MetadataExt as _;
        (meta.ino(), meta.ctime(), meta.ctime_nsec())
    };
    #[cfg(not(unix))]
    let (ino, ctime, ctime_ns) = (0, 0, 0);
    meta.modified()
        .ok()
        .map(|m| (m, meta.len(), ino, ctime, ctime_ns))
}

impl KeyFile {
    /// Reads `path` now: an error if it is not GitHub's format.
    pub fn open(path: impl AsRef<Path>) -> Result<KeyFile, KeysError> {
        let path = path.as_ref().to_path_buf();
        let (stamp, keys) = read_key_file(&path)?;
        Ok(KeyFile {
            path,
            last: Mutex::new((stamp, Arc::new(keys))),
        })
    }
}

fn read_key_file(path: &Path) -> Result<(Stamp, PublicKeys), KeysError> {
    let read = |source| KeysError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    let bytes = std::fs::read(path).map_err(read)?;

    let keys = PublicKeys::parse(&bytes).map_err(|e| match e {
        KeysError::Format(why) => KeysError::File {
            path: path.to_path_buf(),
            why,
        },
        other => other,
    })?;
    Ok((stamp_of(&meta), keys))
}

impl KeySource for KeyFile {
    fn keys(&self) -> Result<Arc<PublicKeys>, KeysError> {
        // The file is looked at and read with no lock held: a slow disk
        // delays only the report that noticed the change.
        let now = std::fs::metadata(&self.path)
            .ok()
            .and_then(|m| stamp_of(&m));
        {
            let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            if now.is_none() || now == last.0 {
                return Ok(last.1.clone());
            }
        }
        match read_key_file(&self.path) {
            Ok((stamp, keys)) => {
                // Two reports racing a change both read the file; an older
                // read stored last is read again by the next report, its
                // stamp no longer the file's.
                let keys = Arc::new(keys);
                *self.last.lock().unwrap_or_else(|p| p.into_inner()) = (stamp, keys.clone());
                Ok(keys)
            }
            Err(e) => {
                tracing::error!(error = %crate::error::chain(&e), "secret scanning keys: keeping the keys read before");
                // Noted as seen, so that the broken file is read (and
                // logged) once, not on every report until it is fixed.
                let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
                last.0 = now;
                Ok(last.1.clone())
            }
        }
    }
}

/// The partner endpoint's decisions over a backend.
#[derive(Clone)]
pub struct SecretScanning {
    admin: Arc<dyn Admin + Send + Sync>,
    keys: Arc<dyn KeySource>,
    proxies: TrustedProxies,
    /// Refused reports per client address.
    refusals: Arc<PerAddress>,
}

impl std::fmt::Debug for SecretScanning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretScanning").finish_non_exhaustive()
    }
}

/// The public routes whose prechecks admit calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    GitHub,
    GitLab,
}

/// A call a route's precheck let through, to hand to the call that
/// answers it (the only way to make one): counted as a refusal until it
/// proves to be none, when the route gives the count back.
#[derive(Debug)]
#[must_use = "a call admitted is answered by the route's blocking call"]
pub struct Admitted {
    client: std::net::IpAddr,
    /// The route whose precheck made it: another route's refuses it.
    route: Route,
    /// The window its count went to, if it was counted.
    counted: Option<u64>,
}

impl Admitted {
    /// A call to `route` admitted without a count.
    pub(crate) fn uncounted(client: std::net::IpAddr, route: Route) -> Admitted {
        Admitted {
            client,
            route,
            counted: None,
        }
    }

    /// Whether it was admitted by `route`'s precheck.
    pub(crate) fn is_for(&self, route: Route) -> bool {
        self.route == route
    }

    /// The client it came from.
    pub fn client(&self) -> std::net::IpAddr {
        self.client
    }

    /// Gives its count back to `limiter`.
    pub(crate) fn forgive(&self, limiter: &PerAddress) {
        if let Some(window) = self.counted {
            limiter.forgive(self.client, window);
        }
    }
}

/// The key identifier and the signature the headers hold, or why they
/// hold none: their shape, checked without a key.
fn signed_by<'a>(
    key_id: Option<&'a [u8]>,
    signature: Option<&[u8]>,
) -> Result<(&'a str, Signature), &'static str> {
    let (Some(key_id), Some(signature)) = (key_id, signature) else {
        return Err(
            "a signed report needs the Github-Public-Key-Identifier and Github-Public-Key-Signature headers",
        );
    };
    let key_id = std::str::from_utf8(key_id).map_err(|_| "unknown key identifier")?;
    // A DER P-256 signature is at most 72 bytes: 96 in base64.
    if signature.len() > 128 {
        return Err("the signature is not DER ECDSA");
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(signature.trim_ascii())
        .map_err(|_| "the signature is not base64")?;
    let signature = Signature::from_der(&der).map_err(|_| "the signature is not DER ECDSA")?;
    Ok((key_id, signature))
}

impl SecretScanning {
    /// Reports signed by one of `keys`, revoking tokens of `admin`.
    pub fn new(
        admin: Arc<dyn Admin + Send + Sync>,
        keys: impl KeySource + 'static,
    ) -> SecretScanning {
        SecretScanning {
            admin,
            keys: Arc::new(keys),
            proxies: TrustedProxies::none(),
            refusals: Arc::new(PerAddress::new(
                DEFAULT_REFUSALS,
                std::time::Duration::from_secs(60),
            )),
        }
    }

    crate::routes::proxy::client_address!(SecretScanning);

    /// At most `refused` refused reports per `window` from one client
    /// address (default [`DEFAULT_REFUSALS`] a minute); past it, `429`
    /// before anything is read or checked. A report counts from the
    /// precheck until its signature holds: at most `refused` reports from
    /// one address are being read and checked at once, GitHub's too (past
    /// that, GitHub is answered 429 and sends again later).
    pub fn refusal_limit(mut self, refused: u32, window: std::time::Duration) -> SecretScanning {
        self.refusals = Arc::new(PerAddress::new(refused, window));
        self
    }

    /// What to do before the body is read: `Err`, the answer to send (the
    /// client is past its limit of refused reports, `429`; the headers
    /// cannot hold a signature, `401`, not counted, since turning it away
    /// costs nothing); `Ok`, a call to read and hand to
    /// [`report_blocking`](SecretScanning::report_blocking), counted as a
    /// refusal until its signature holds, so that forged reports sent at
    /// once are counted before any is checked. No I/O, no key lookup: the
    /// adapters ask it on their event loop.
    pub fn precheck(
        &self,
        client: std::net::IpAddr,
        key_id: Option<&[u8]>,
        signature: Option<&[u8]>,
        now: Timestamp,
    ) -> Result<Admitted, Answer> {
        let too_many = |retry_after| {
            Answer::too_many(
                "too many refused reports from this address; retry later",
                retry_after,
            )
        };
        self.refusals.check(client, now).map_err(too_many)?;
        if let Err(why) = signed_by(key_id, signature) {
            // Free to refuse, and not counted: no warning per call either.
            tracing::debug!(why, %client, "secret scanning report refused");
            return Err(Answer::error(401, "invalid_signature", why));
        }
        let window = self.refusals.admit_in(client, now).map_err(too_many)?;
        Ok(Admitted {
            client,
            route: Route::GitHub,
            counted: Some(window),
        })
    }

    /// The answer to a report `precheck` admitted: `key_id` and
    /// `signature` are the values of [`KEY_IDENTIFIER_HEADER`] and
    /// [`SIGNATURE_HEADER`], `body` the raw body. Blocks (store reads and
    /// writes): the adapters run it on a blocking pool.
    pub fn report_blocking(
        &self,
        admitted: Admitted,
        key_id: Option<&[u8]>,
        signature: Option<&[u8]>,
        body: &[u8],
        now: Timestamp,
    ) -> Answer {
        if !admitted.is_for(Route::GitHub) {
            return Answer::error(401, "invalid_signature", "not admitted by this route");
        }
        if let Err(why) = self.verify(key_id, signature, body) {
            tracing::warn!(why, client = %admitted.client, "secret scanning report refused");
            return Answer::error(401, "invalid_signature", why);
        }
        // Signed: not a refusal after all.
        admitted.forgive(&self.refusals);
        let Some(items) = parse_report(body) else {
            return Answer::error(
                400,
                "invalid_request",
                &format!(
                    "the body must be a JSON array of at most {MAX_REPORTED} objects with a \"token\" string"
                ),
            );
        };
        let mut feedback = Vec::with_capacity(items.len());
        let mut labels: std::collections::HashMap<&str, bool> = std::collections::HashMap::new();
        let mut revoked = 0;
        for item in &items {
            // The same token twice in a report gets the same label.
            let live = match labels.get(item.token.as_str()) {
                Some(&live) => live,
                None => {
                    let Ok(live) = self.revoke(item, now) else {
                        // GitHub sends again what it did not get an answer
                        // to, and a revocation done already is a no-op.
                        return Answer::unavailable();
                    };
                    labels.insert(&item.token, live);
                    revoked += usize::from(live);
                    live
                }
            };
            feedback.push(json!({
                "token_hash": hex(&Sha256::digest(item.token.as_bytes())),
                "token_type": item.kind,
                "label": if live { "true_positive" } else { "false_positive" },
            }));
        }
        if revoked > 0 {
            tracing::warn!(revoked, "tokens GitHub secret scanning found were revoked");
        }
        Answer::json(200, &Value::Array(feedback))
    }

    fn verify(
        &self,
        key_id: Option<&[u8]>,
        signature: Option<&[u8]>,
        body: &[u8],
    ) -> Result<(), &'static str> {
        let (key_id, signature) = signed_by(key_id, signature)?;
        let keys = self.keys.keys().map_err(|e| {
            tracing::error!(error = %crate::error::chain(&e), "secret scanning keys unavailable");
            "no keys to check the signature with"
        })?;
        if keys.is_empty() {
            return Err("no GitHub keys are configured: every report is refused");
        }
        let key = keys.get(key_id).ok_or("unknown key identifier")?;
        key.verify(body, &signature)
            .map_err(|_| "the signature does not match the body")
    }

    /// Revokes `item`'s token if it is a live one of this store; whether
    /// it was, or `Err` when the store failed (logged).
    fn revoke(&self, item: &Reported, now: Timestamp) -> Result<bool, ()> {
        // Quoted: the URL names a file in someone's repository, chosen by
        // whoever leaked the token.
        let actor = || {
            format!(
                "{}{:?}: {:?})",
                crate::model::event::LEAK_ACTORS[0],
                noted(&item.source),
                noted(&item.url)
            )
        };
        revoke_found(&*self.admin, &item.token, actor, now)
    }
}

/// Revokes `token` if it is a live one of the store `admin`, audited as
/// done by `actor`: whether it was, or `Err` when the store failed
/// (logged), so that the reporter is told to send it again. A value that
/// is no token, or no token of this store's, is not looked up further
/// than its digest. For every route that takes reports of found tokens.
pub(crate) fn revoke_found(
    admin: &(dyn Admin + Send + Sync),
    token: &str,
    actor: impl FnOnce() -> String,
    now: Timestamp,
) -> Result<bool, ()> {
    let found = find_and_revoke(admin, token, actor, now);
    let result = match found {
        Ok(true) => "revoked",
        Ok(false) => "unknown",
        Err(()) => "failed",
    };
    crate::metrics::count_by(crate::metrics::LEAK_REPORTS, "result", result);
    found
}

/// [`revoke_found`] but the count.
fn find_and_revoke(
    admin: &(dyn Admin + Send + Sync),
    token: &str,
    actor: impl FnOnce() -> String,
    now: Timestamp,
) -> Result<bool, ()> {
    let Ok(digest) = TokenDigest::from_token(token) else {
        return Ok(false);
    };
    match admin.find(&digest, now) {
        Ok(Some(info)) if !info.is_expired(now) => {
            match admin.acting_as(&actor()).revoke(info.id) {
                Ok(_) => Ok(true),
                Err(crate::StoreError::NotFound(_)) => Ok(false),
                Err(e) => {
                    tracing::error!(token_id = %info.id, error = %crate::error::chain(&e), "a reported token: revoke failed");
                    Err(())
                }
            }
        }
        Ok(_) => Ok(false),
        Err(e) => {
            tracing::error!(error = %crate::error::chain(&e), "a reported token: lookup failed");
            Err(())
        }
    }
}

/// One reported match.
struct Reported {
    token: String,
    kind: String,
    url: String,
    source: String,
}

fn parse_report(body: &[u8]) -> Option<Vec<Reported>> {
    let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    if items.len() > MAX_REPORTED {
        return None;
    }
    let text = |item: &Value, key: &str| {
        item.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    items
        .iter()
        .map(|item| {
            Some(Reported {
                token: item.get("token")?.as_str()?.to_owned(),
                kind: text(item, "type"),
                url: text(item, "url"),
                source: text(item, "source"),
            })
        })
        .collect()
}

/// `text` as the audit log may keep it: printable, and short.
pub(crate) fn noted(text: &str) -> String {
    let shown = printable(text).to_string();
    match shown.char_indices().nth(MAX_NOTED) {
        Some((cut, _)) => format!("{}…", &shown[..cut]),
        None => shown,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::{EncodePublicKey as _, LineEnding};
    use rand::TryRngCore as _;

    use super::*;
    use crate::{ExpiryPolicy, MemoryStore, NewToken};

    /// Where the tests' reports come from (TEST-NET-1).
    const GITHUB: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    fn key() -> SigningKey {
        loop {
            let mut bytes = [0u8; 32];
            rand::rngs::OsRng.try_fill_bytes(&mut bytes).unwrap();
            if let Ok(key) = SigningKey::from_slice(&bytes) {
                return key;
            }
        }
    }

    fn keys_json(keys: &[(&str, &SigningKey)]) -> Vec<u8> {
        let list: Vec<Value> = keys
            .iter()
            .map(|(id, key)| {
                json!({
                    "key_identifier": id,
                    "key": key.verifying_key().to_public_key_pem(LineEnding::LF).unwrap(),
                    "is_current": true,
                })
            })
            .collect();
        serde_json::to_vec(&json!({ "public_keys": list })).unwrap()
    }

    fn sign(key: &SigningKey, body: &[u8]) -> String {
        let signature: Signature = key.sign(body);
        base64::engine::general_purpose::STANDARD.encode(signature.to_der())
    }

    fn now() -> Timestamp {
        Timestamp::from_unix_secs(1_800_000_000).unwrap()
    }

    struct Setup {
        store: Arc<MemoryStore>,
        scanning: SecretScanning,
        github: SigningKey,
        live: String,
        live_id: crate::TokenId,
    }

    /// What the adapters do with a report: the precheck, then the
    /// blocking call.
    fn ask(
        scanning: &SecretScanning,
        from: std::net::IpAddr,
        key_id: Option<&[u8]>,
        signature: Option<&[u8]>,
        body: &[u8],
    ) -> Answer {
        match scanning.precheck(from, key_id, signature, now()) {
            Err(answer) => answer,
            Ok(admitted) => scanning.report_blocking(admitted, key_id, signature, body, now()),
        }
    }

    impl Setup {
        /// `body`, with `signature` by the key `k1`, from GitHub's address.
        fn signed(&self, signature: &str, body: &[u8]) -> Answer {
            ask(
                &self.scanning,
                GITHUB,
                Some(b"k1"),
                Some(signature.as_bytes()),
                body,
            )
        }
    }

    fn setup() -> Setup {
        let store = Arc::new(MemoryStore::new());
        let made = store
            .create(
                &NewToken::new("alice", ExpiryPolicy::hard(Duration::from_secs(3600))),
                now(),
            )
            .unwrap();
        let github = key();
        let keys = PublicKeys::parse(&keys_json(&[("k1", &github)])).unwrap();
        Setup {
            scanning: SecretScanning::new(store.clone(), keys),
            store,
            github,
            live: made.secret.expose_secret().to_owned(),
            live_id: made.info.id,
        }
    }

    fn report(tokens: &[&str]) -> Vec<u8> {
        let items: Vec<Value> = tokens
            .iter()
            .map(|t| {
                json!({
                    "token": t,
                    "type": "pat_personal_access_token",
                    "url": "https://github.com/octo/repo/blob/abc/config.env",
                    "source": "content",
                })
            })
            .collect();
        serde_json::to_vec(&items).unwrap()
    }

    #[test]
    fn a_signed_report_revokes_live_tokens_and_labels_each() {
        let s = setup();
        let other = crate::TokenSecret::generate();
        let body = report(&[&s.live, other.expose_secret(), "not a token", &s.live]);
        let signature = sign(&s.github, &body);
        let a = s.signed(&signature, &body);
        assert_eq!(a.status, 200, "{}", a.body);
        let feedback: Value = serde_json::from_str(&a.body).unwrap();
        let labels: Vec<&str> = feedback
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["label"].as_str().unwrap())
            .collect();
        // The same token twice: the same label.
        assert_eq!(
            labels,
            [
                "true_positive",
                "false_positive",
                "false_positive",
                "true_positive"
            ]
        );
        assert_eq!(
            feedback[0]["token_hash"],
            hex(&Sha256::digest(s.live.as_bytes()))
        );
        assert_eq!(feedback[0]["token_type"], "pat_personal_access_token");
        assert!(s.store.get(s.live_id).is_err(), "revoked");
        let log = s.store.audit(Timestamp::UNIX_EPOCH, Some("alice")).unwrap();
        assert_eq!(
            log.last().unwrap().actor,
            r#"GitHub secret scanning ("content": "https://github.com/octo/repo/blob/abc/config.env")"#
        );
        // Sent again: the token is no longer live.
        let again = s.signed(&signature, &body);
        assert!(again.body.contains("\"false_positive\"") && !again.body.contains("true_"));
    }

    #[test]
    fn an_unsigned_or_wrongly_signed_report_revokes_nothing() {
        let s = setup();
        let body = report(&[&s.live]);
        let good = sign(&s.github, &body);
        let stranger = sign(&key(), &body);
        let mut changed = body.clone();
        changed.extend_from_slice(b" ");
        let bad_der = base64::engine::general_purpose::STANDARD.encode(b"not der");
        type Case<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, &'a [u8], &'a str);
        let cases: [Case<'_>; 8] = [
            (None, None, &body, "no headers"),
            (Some(b"k1"), None, &body, "no signature"),
            (None, Some(good.as_bytes()), &body, "no key id"),
            (Some(b"k2"), Some(good.as_bytes()), &body, "unknown key"),
            (Some(b"k1"), Some(stranger.as_bytes()), &body, "another key"),
            (Some(b"k1"), Some(b"%%%"), &body, "not base64"),
            (Some(b"k1"), Some(bad_der.as_bytes()), &body, "not DER"),
            (Some(b"k1"), Some(good.as_bytes()), &changed, "body changed"),
        ];
        for (i, (id, signature, body, case)) in cases.into_iter().enumerate() {
            // Each from its own address: the limit of refusals is tested below.
            let from = std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 10 + i as u8));
            let a = ask(&s.scanning, from, id, signature, body);
            assert_eq!(a.status, 401, "{case}: {}", a.body);
            assert!(!a.body.contains(&s.live), "{case}");
        }
        assert!(s.store.get(s.live_id).is_ok(), "nothing revoked");
    }

    /// Past the limit of refused reports, a client gets 429 before its
    /// signature is checked (even a good one); another client, and signed
    /// reports however many, are not held back.
    #[test]
    fn refused_reports_are_limited_per_address_and_signed_ones_never_count() {
        let mut s = setup();
        s.scanning = s.scanning.refusal_limit(3, Duration::from_secs(60));
        let body = report(&["pat_notalivetoken"]);
        let good = sign(&s.github, &body);
        let forged = sign(&key(), &body);
        let attacker = std::net::IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7));
        let send = |from, signature: &str| {
            ask(
                &s.scanning,
                from,
                Some(b"k1"),
                Some(signature.as_bytes()),
                &body,
            )
        };
        for _ in 0..3 {
            assert_eq!(send(attacker, &forged).status, 401);
        }
        let held = send(attacker, &good);
        assert_eq!(held.status, 429, "{}", held.body);
        assert_eq!(held.retry_after, Some(60));
        let pre = s
            .scanning
            .precheck(attacker, Some(b"k1"), Some(good.as_bytes()), now());
        assert_eq!(
            pre.map_err(|a| a.status).err(),
            Some(429),
            "before the body is read"
        );
        for _ in 0..20 {
            assert_eq!(
                send(GITHUB, &good).status,
                200,
                "signed reports never count"
            );
        }
        // Forged reports sent at once are counted before any is checked:
        // three admitted, the fourth held, with none answered yet.
        let flood = std::net::IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 8));
        let admitted: Vec<Admitted> = (0..3)
            .map(|_| {
                s.scanning
                    .precheck(flood, Some(b"k1"), Some(forged.as_bytes()), now())
                    .expect("admitted")
            })
            .collect();
        let held = s
            .scanning
            .precheck(flood, Some(b"k1"), Some(forged.as_bytes()), now());
        assert_eq!(held.map_err(|a| a.status).err(), Some(429));
        drop(admitted);
        // Headers that cannot hold a signature cost nothing to refuse and
        // are not counted: another service's webhooks from GitHub's
        // addresses lock no one out.
        for _ in 0..10 {
            let pre = s.scanning.precheck(GITHUB, None, None, now());
            assert_eq!(pre.map_err(|a| a.status).err(), Some(401));
        }
        assert_eq!(send(GITHUB, &good).status, 200);
        // The shape of the headers is checked without a key.
        for (i, (id, signature)) in [
            (None, Some(good.as_bytes())),
            (Some(&b"k1"[..]), Some(&b"%%%"[..])),
            (Some(&b"k1"[..]), Some(&[b'A'; 200][..])),
        ]
        .into_iter()
        .enumerate()
        {
            let from = std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, i as u8));
            let pre = s.scanning.precheck(from, id, signature, now());
            assert_eq!(pre.map_err(|a| a.status).err(), Some(401));
        }
        assert!(
            s.scanning
                .precheck(GITHUB, Some(b"k9"), Some(good.as_bytes()), now())
                .is_ok(),
            "an unknown key is told only after the body, by the key source"
        );
    }

    #[test]
    fn a_signed_body_that_is_not_a_report_is_refused() {
        let s = setup();
        let many = report(&vec![s.live.as_str(); MAX_REPORTED + 1]);
        for body in [
            b"{}".to_vec(),
            b"not json".to_vec(),
            br#"[{"type": "x"}]"#.to_vec(),
            br#"[{"token": 7}]"#.to_vec(),
            many,
        ] {
            let signature = sign(&s.github, &body);
            let a = s.signed(&signature, &body);
            assert_eq!(
                a.status,
                400,
                "{}",
                String::from_utf8_lossy(&body[..20.min(body.len())])
            );
        }
        assert!(s.store.get(s.live_id).is_ok(), "nothing revoked");
    }

    #[test]
    fn what_github_says_of_the_finding_reaches_the_log_printable_and_short() {
        let s = setup();
        let items = json!([{
            "token": s.live,
            "type": "t",
            "url": format!("https://x/\u{1b}[31m{}", "a".repeat(500)),
            "source": "issue\ncomment",
        }]);
        let body = serde_json::to_vec(&items).unwrap();
        let signature = sign(&s.github, &body);
        let a = s.signed(&signature, &body);
        assert_eq!(a.status, 200);
        let actor = s
            .store
            .audit(Timestamp::UNIX_EPOCH, Some("alice"))
            .unwrap()
            .last()
            .unwrap()
            .actor
            .clone();
        assert!(!actor.chars().any(char::is_control), "{actor:?}");
        assert!(
            actor.chars().count() < 2 * MAX_NOTED + 40,
            "{}",
            actor.len()
        );
    }

    #[test]
    fn the_key_file_is_read_again_when_it_changes_and_kept_when_broken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let (one, two) = (key(), key());
        std::fs::write(&path, keys_json(&[("k1", &one)])).unwrap();
        let store = Arc::new(MemoryStore::new());
        let scanning = SecretScanning::new(store, KeyFile::open(&path).unwrap());
        let body = report(&[]);
        let by = |key: &SigningKey, id: &[u8]| {
            let signature = sign(key, &body);
            ask(
                &scanning,
                GITHUB,
                Some(id),
                Some(signature.as_bytes()),
                &body,
            )
            .status
        };
        assert_eq!(by(&one, b"k1"), 200);
        assert_eq!(by(&two, b"k2"), 401);
        // GitHub rotated its key: the operator writes the new answer (a
        // longer file, so that the size changes whatever the clock).
        std::fs::write(&path, keys_json(&[("k1", &one), ("k2", &two)])).unwrap();
        assert_eq!(by(&two, b"k2"), 200);
        assert_eq!(by(&one, b"k1"), 200);
        // A half-written file keeps the keys read before.
        std::fs::write(&path, b"{\"public_keys\": [").unwrap();
        assert_eq!(by(&two, b"k2"), 200);
        assert_eq!(by(&two, b"k2"), 200, "the broken file read once");
        // Fixed: read again.
        let three = key();
        std::fs::write(&path, keys_json(&[("k3", &three)])).unwrap();
        assert_eq!(by(&three, b"k3"), 200);
        assert_eq!(by(&two, b"k2"), 401, "GitHub retired k2");
        std::fs::write(&path, b"{\"public_keys\": [").unwrap();
        assert!(KeyFile::open(&path).is_err());
        assert!(KeyFile::open(dir.path().join("missing.json")).is_err());
        let named = KeyFile::open(&path).unwrap_err().to_string();
        assert!(named.contains("keys.json"), "{named}");
        // No keys at all: every report refused, saying so.
        let none = SecretScanning::new(Arc::new(MemoryStore::new()), PublicKeys::default());
        let signature = sign(&one, &body);
        let a = ask(
            &none,
            GITHUB,
            Some(b"k1"),
            Some(signature.as_bytes()),
            &body,
        );
        assert_eq!(a.status, 401);
        assert!(
            a.body.contains("no GitHub keys are configured"),
            "{}",
            a.body
        );
    }

    #[test]
    fn keys_not_in_githubs_format_are_refused_naming_the_fault() {
        let k = key();
        let twice = keys_json(&[("a", &k), ("a", &k)]);
        for (json, says) in [
            (&b"nope"[..], "not JSON"),
            (b"{}", "public_keys"),
            (br#"{"public_keys": [{"key": "x"}]}"#, "key_identifier"),
            (br#"{"public_keys": [{"key_identifier": "a"}]}"#, "no \"key\""),
            (&twice, "given twice"),
            (
                br#"{"public_keys": [{"key_identifier": "a", "key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}]}"#,
                "P-256",
            ),
        ] {
            let e = PublicKeys::parse(json).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
    }
}
