//! Token introspection (RFC 7662): another service, itself authenticated,
//! asks whether a token is active and whose it is.
//!
//! The decisions live here so that every framework answers byte for byte
//! alike; pat-tower's `introspection` router and pat-actix's
//! `introspection` resource only route to them, behind the PAT layer (the
//! caller's own token authenticates the call). A `POST` with a form body
//! `token=…` (`token_type_hint` is accepted and ignored) gets:
//!
//! - for an active token, `{"active": true, "username", "sub", "token_type":
//!   "pat", "exp", "iat", "jti", "scope", "pat_meta", "pat_rate"}` (`jti`
//!   is the token id, `scope` its scopes space-separated, absent for an
//!   unrestricted token; `pat_meta` its metadata, an object of strings,
//!   absent when it has none; `pat_rate` its rate limit, `"100/m"`, absent
//!   when it has none, which a remote verifier's gate applies;
//!   `pat_uses_left` for a token with a use quota, the uses it has left
//!   after this one, and `"pat_spent": true`: introspecting such a token
//!   spends one of them, and a remote verifier never caches the answer
//!   (with `pat_spend`, below, nothing is spent: `pat_uses_left` counts
//!   this use among those left, and `"pat_spent": false`). An [`Introspection`] that
//!   does not count uses answers such a token inactive, `pat_reason`
//!   `"used_up"`: its use could not be counted);
//! - for anything else (unknown, expired, revoked, malformed, missing):
//!   exactly `{"active": false}`;
//! - for a caller the integrator does not allow: 403. The default allows
//!   nobody, so that introspection cannot be used to probe tokens until
//!   someone decides who may.
//!
//! A pat extension, for [`RemoteVerifier`](crate::backend::remote): instead of
//! `token`, the form may carry `token_digest`, the token's SHA-256 digest in
//! hex (64 digits), so that a verifier that only ever sees digests never
//! puts a usable secret on the wire; and `username`, an HTTP Basic user
//! name that must be the token's (else `{"active": false}`, and no use is
//! recorded), as [`Verifier`] lookups require. For these requests only, an
//! inactive answer says why when the token exists, so that the verifier's
//! clients get the same errors as with a local store:
//! `{"active": false, "pat_reason": "expired", "exp": …}`,
//! `{"active": false, "pat_reason": "disabled"}`,
//! `{"active": false, "pat_reason": "address"}`,
//! `{"active": false, "pat_reason": "used_up"}` or
//! `{"active": false, "pat_reason": "wrong_user"}`. A form may carry
//! `pat_client`, the address the token is presented from: a token with an
//! [address rule](crate::TokenInfo::allow_from) is inactive from elsewhere,
//! and without `pat_client`; an active answer to a digest request carries
//! the rule (as does every active answer: `pat_allow_from`), which the verifier applies to each use its
//! cached answer serves. (The caller is already
//! allowed to introspect, and could learn as much without `username`.) An
//! active answer to these requests also carries `"pat_prefixes"`, the
//! store's token prefixes (current first), from which the verifier learns
//! a change of prefix. A digest request may carry `pat_spend`, and is
//! then answered as a use in every other way (the token is refreshed, its
//! use recorded) but spends no use of a quota: `pat_spend=later` for a
//! use the verifier spends in a second request (without `pat_spend`)
//! once its own checks (the rate limit) passed, refused `used_up` when the
//! token has none left; `pat_spend=no` for a session's recheck, which is
//! no use and is answered active even with none left (its login spent
//! one). Another value, or `pat_spend` without `token_digest`, is a 400:
//! an RFC 7662 caller always spends as it asks. A caller allowed to
//! introspect is trusted with the uses of the requests it serves: it could
//! defer a use and never spend it, as it could let a token through
//! without asking at all; its own requests are all it can skip, never
//! another service's (each spend is checked against the store). Allow
//! only the services you trust to count.
//!
//! An endpoint older than `pat_spend` ignores it and spends as it answers:
//! the verifier then skips its second request (the answer says nothing of
//! `pat_spent`), so uses stay exact, but each session recheck spends one.
//! Upgrade the endpoints before the verifiers.
//!
//! Every answer carries `Cache-Control: no-store`. An introspection counts
//! as a use of the token (a sliding token is refreshed, `last_used_at`
//! moves) unless [`Introspection::counts_as_use`] says otherwise: the
//! caller usually serves a request made with that token. Counted as a use,
//! an old secret presented after its grace is a replay for reuse detection
//! (see [`Policy::on_reuse`](crate::Policy::on_reuse)), and one still in
//! its grace is answered with `"pat_previous_secret": true`, which
//! the remote verifier (`remote::RemoteVerifier`) carries into its
//! identities.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::json;

use crate::backend::admin::Admin;
use crate::backend::{Lookup, Verification, Verifier};
use crate::model::rate::{Admission, uncounted};
use crate::model::record::Identity;
use crate::model::time::Timestamp;
use crate::model::token::TokenDigest;
use crate::routes::answer::Answer;

type Allow = dyn Fn(&Identity) -> bool + Send + Sync;

/// The introspection decisions over a backend.
#[derive(Clone)]
pub struct Introspection {
    admin: Arc<dyn Admin + Send + Sync>,
    verifier: Arc<dyn Verifier>,
    allow: Arc<Allow>,
    counts_as_use: bool,
}

impl std::fmt::Debug for Introspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspection")
            .field("counts_as_use", &self.counts_as_use)
            .finish_non_exhaustive()
    }
}

impl Introspection {
    /// Introspection of the tokens of `store` (usually the one the layer
    /// checks callers with), allowing no caller until
    /// [`allow`](Introspection::allow) or
    /// [`allow_users`](Introspection::allow_users) says who may.
    pub fn new<S>(store: Arc<S>) -> Introspection
    where
        S: Admin + Verifier + Send + Sync + 'static,
    {
        Introspection {
            admin: store.clone(),
            verifier: store,
            allow: Arc::new(|_: &Identity| false),
            counts_as_use: true,
        }
    }

    /// Who may introspect: a decision over the caller's identity (its user,
    /// its scopes...).
    pub fn allow(
        mut self,
        rule: impl Fn(&Identity) -> bool + Send + Sync + 'static,
    ) -> Introspection {
        self.allow = Arc::new(rule);
        self
    }

    /// Allows callers whose tokens belong to one of `users`.
    pub fn allow_users<I, U>(self, users: I) -> Introspection
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        let users: BTreeSet<String> = users.into_iter().map(Into::into).collect();
        self.allow(move |caller| users.contains(caller.user()))
    }

    /// Whether introspecting a token counts as a use of it (default: yes).
    /// With `false` nothing about the token changes.
    pub fn counts_as_use(mut self, counts: bool) -> Introspection {
        self.counts_as_use = counts;
        self
    }

    /// The answer to `caller` posting the form `body` at `now`. Blocks: it
    /// reads the store (and, for a use, waits for the backend), so the
    /// adapters run it on a blocking pool.
    pub fn answer_blocking(&self, caller: &Identity, body: &[u8], now: Timestamp) -> Answer {
        if !(self.allow)(caller) {
            return Answer::error(403, "forbidden", "this caller may not introspect tokens");
        }
        let inactive = || Answer::json(200, &json!({ "active": false }));
        // A field that is there but cannot be read is the caller's mistake,
        // never silently another question (`token=%zz` is not "no token").
        let field = |key: &str| {
            form_value(body, key).map_err(|()| {
                Answer::error(
                    400,
                    "invalid_request",
                    &format!("`{key}` is not percent-encoded UTF-8"),
                )
            })
        };
        let (token, hex, user) = match (field("token"), field("token_digest"), field("username")) {
            (Ok(token), Ok(hex), Ok(user)) => (token, hex, user),
            (Err(bad), ..) | (_, Err(bad), _) | (.., Err(bad)) => return bad,
        };
        // The client the token is presented from (a remote verifier sends
        // it), for the token's address rule; without it, a token that has a
        // rule is inactive.
        let client = match field("pat_client") {
            Ok(None) => None,
            Ok(Some(text)) => match text.parse::<std::net::IpAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    return Answer::error(
                        400,
                        "invalid_request",
                        "`pat_client` is not an IP address",
                    );
                }
            },
            Err(bad) => return bad,
        };
        // `pat_spend` (a remote verifier's first question, see the module
        // documentation): `later`, a use whose quota the caller spends in a
        // second request once its own checks passed; `no`, a session's
        // recheck, which spends nothing.
        let spend = match field("pat_spend") {
            Ok(None) => Spend::Now,
            Ok(Some(text)) if text == "later" => Spend::Later,
            Ok(Some(text)) if text == "no" => Spend::Never,
            Ok(Some(_)) => {
                return Answer::error(
                    400,
                    "invalid_request",
                    "`pat_spend` can only be `later` or `no`",
                );
            }
            Err(bad) => return bad,
        };
        let (digest, by_digest) = match token {
            Some(token) => (TokenDigest::from_token(&token).ok(), false),
            None => (hex.and_then(|hex| digest_from_hex(&hex)), true),
        };
        if spend != Spend::Now && !by_digest {
            // An RFC 7662 caller spends as it asks: deferring is the remote
            // verifier's, whose requests carry digests.
            return Answer::error(
                400,
                "invalid_request",
                "`pat_spend` goes with `token_digest` only",
            );
        }
        let Some(digest) = digest else {
            return inactive();
        };
        // Why a known token is inactive, for a digest request only (see the
        // module documentation); RFC 7662 requests get `{"active": false}`.
        let refused = |why: crate::AuthError| match why {
            crate::AuthError::Expired { expires_at } if by_digest => Answer::json(
                200,
                &json!({ "active": false, "pat_reason": "expired", "exp": expires_at.as_unix_secs() }),
            ),
            crate::AuthError::WrongUser if by_digest => {
                Answer::json(200, &json!({ "active": false, "pat_reason": "wrong_user" }))
            }
            crate::AuthError::Disabled if by_digest => {
                Answer::json(200, &json!({ "active": false, "pat_reason": "disabled" }))
            }
            crate::AuthError::AddressNotAllowed if by_digest => {
                Answer::json(200, &json!({ "active": false, "pat_reason": "address" }))
            }
            crate::AuthError::UsedUp if by_digest => {
                Answer::json(200, &json!({ "active": false, "pat_reason": "used_up" }))
            }
            _ => inactive(),
        };
        let info = match self.admin.find(&digest, now) {
            Ok(Some(info)) => info,
            Ok(None) => {
                // Presented like a use: an old secret after its grace is
                // a replay, which reuse detection must see (the lookup
                // answers unknown; `find` is blind to it).
                if self.counts_as_use {
                    let lookup = Lookup::new(digest, user.as_deref(), now).from(client);
                    if let Verification::Pending(f) = self.verifier.verify(lookup) {
                        let _ = crate::backend::block_on::block_on(f);
                    }
                }
                return inactive();
            }
            Err(e) => {
                tracing::error!(error = %crate::error::chain(&e), "introspection: store failed");
                return Answer::unavailable();
            }
        };
        if let Err(why) = info.check_use_from(user.as_deref(), client, now) {
            return refused(why);
        }
        let mut exp = info.expiry.expires_at();
        let mut previous = false;
        let mut uses_left = info.uses_left();
        if uses_left.is_some() && !self.counts_as_use {
            // A use that cannot be counted is not given: a verifier behind
            // this answer would let the token through uncounted.
            return refused(crate::AuthError::UsedUp);
        }
        if self.counts_as_use {
            // A use (not a recheck) of a quota with nothing left is refused
            // by the use rule before it is recorded, as the gate's is.
            let admission = Admission::new(uncounted());
            let lookup = Lookup::new(digest, user.as_deref(), now).from(client);
            let lookup = match spend {
                Spend::Never => lookup,
                Spend::Now | Spend::Later => lookup.admitted_by(&admission),
            };
            let wait = |v: Verification| match v {
                Verification::Ready(r) => r,
                Verification::Pending(f) => crate::backend::block_on::block_on(f),
            };
            // A use of a quota is spent here, as the gate would, unless the
            // caller asked not to (it spends it in its own request).
            let verified = wait(self.verifier.verify(lookup)).and_then(|identity| {
                match spend {
                    _ if !identity.has_quota() => Ok(identity),
                    Spend::Now => wait(self.verifier.spend(identity.presented_from(client), now)),
                    // A use with none left is refused, as its spend would
                    // be: by this crate's backends in the use rule, before
                    // anything is recorded; here for one that leaves the
                    // quota to the gate. A recheck is not a use.
                    Spend::Later if identity.uses_left() == Some(0) => {
                        Err(crate::AuthError::UsedUp)
                    }
                    Spend::Later | Spend::Never => Ok(identity),
                }
            });
            match verified {
                Ok(identity) => {
                    exp = identity.expires_at();
                    previous = identity.is_previous_secret();
                    uses_left = identity.uses_left();
                }
                Err(crate::AuthError::Store(e)) => {
                    tracing::error!(error = %crate::error::chain(&e), "introspection: store failed");
                    return Answer::unavailable();
                }
                // Revoked or expired between the two reads.
                Err(why) => return refused(why),
            }
        }
        let mut body = json!({
            "active": true,
            "username": info.user,
            "sub": info.user,
            "token_type": "pat",
            "exp": exp.as_unix_secs(),
            "iat": info.issued_at().as_unix_secs(),
            "jti": info.id.to_string(),
        });
        if !info.scopes.is_unrestricted() {
            // Node scopes, then every permission the token holds, its
            // wildcards and implications resolved by this store's catalog,
            // so that a remote verifier needs none.
            let scopes: Vec<String> = (info.scopes.iter().map(ToString::to_string))
                .chain(info.scopes.granted().iter().map(ToString::to_string))
                .collect();
            body["scope"] = json!(scopes.join(" "));
        }
        if !info.allow_from.is_empty() {
            // Its address rule, which a remote verifier applies to every
            // use its cached answer serves.
            body["pat_allow_from"] = json!(
                info.allow_from
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            );
        }
        if let Some(rate) = info.rate {
            // Its rate limit, which a remote verifier's gate counts.
            body["pat_rate"] = json!(rate.to_string());
        }
        if let Some(left) = uses_left {
            // Its quota: this use is spent (or, with `pat_spend=no`, still
            // to spend: `pat_spent` says which), and a remote verifier must
            // ask again for the next one.
            body["pat_uses_left"] = json!(left);
            body["pat_spent"] = json!(spend == Spend::Now);
        }
        if !info.meta.is_empty() {
            // The token's metadata, so that a remote verifier's identities
            // carry it too.
            body["pat_meta"] = info.meta.to_json();
        }
        if previous {
            // A secret in its grace after a rotation: it authenticates, but
            // a remote verifier's routes must not let it act on tokens.
            body["pat_previous_secret"] = json!(true);
        }
        if by_digest {
            // What a remote verifier checks a token's prefix against
            // before it asks: the store's, current first.
            let prefixes = self.verifier.prefixes().all();
            body["pat_prefixes"] = json!(prefixes.iter().map(|p| p.as_str()).collect::<Vec<_>>());
        }
        Answer::json(200, &body)
    }
}

/// When an introspection spends a use of the token's quota (`pat_spend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spend {
    /// As it answers (RFC 7662 callers, and the verifier's second request).
    Now,
    /// In the caller's second request; a token with none left is refused.
    Later,
    /// Never: a session's recheck.
    Never,
}

/// A digest written as 64 hex digits (either case).
fn digest_from_hex(hex: &str) -> Option<TokenDigest> {
    let hex = hex.as_bytes();
    if hex.len() != 64 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut bytes = [0; 32];
    for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(TokenDigest::from_bytes(bytes))
}

/// The first value of `key` in an `application/x-www-form-urlencoded` body
/// (`+` is a space, `%XX` a byte): `Ok(None)` when absent, `Err` when
/// there but not percent-encoded UTF-8. Pairs whose key cannot be read are
/// no field of ours.
fn form_value(body: &[u8], key: &str) -> Result<Option<String>, ()> {
    for pair in body.split(|&b| b == b'&') {
        let mut parts = pair.splitn(2, |&b| b == b'=');
        if parts.next().and_then(decode).as_deref() == Some(key) {
            return decode(parts.next().unwrap_or_default()).map(Some).ok_or(());
        }
    }
    Ok(None)
}

pub(crate) fn decode(raw: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = raw.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    use crate::{ExpiryPolicy, MemoryStore, NewToken};

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_unix_secs(secs).unwrap()
    }

    #[test]
    fn nobody_may_introspect_by_default_and_a_use_is_an_option() {
        let store = Arc::new(MemoryStore::new());
        let window = ExpiryPolicy::sliding(Duration::from_secs(60), None);
        let caller = store
            .create(&NewToken::new("gateway", window), at(0))
            .unwrap();
        let subject = store
            .create(&NewToken::new("alice", window), at(0))
            .unwrap();
        let caller = Identity::new(&caller.info, caller.info.expiry.expires_at());
        let form = format!("token={}", subject.secret.expose_secret());

        let closed = Introspection::new(store.clone());
        assert_eq!(
            closed
                .answer_blocking(&caller, form.as_bytes(), at(10))
                .status,
            403
        );

        let peek = Introspection::new(store.clone())
            .allow_users(["gateway"])
            .counts_as_use(false);
        let a = peek.answer_blocking(&caller, form.as_bytes(), at(10));
        assert_eq!(a.status, 200);
        assert!(a.body.contains(r#""exp":60"#), "{}", a.body);
        assert_eq!(store.get(subject.info.id).unwrap().last_used_at, None);

        let using = Introspection::new(store.clone()).allow(|c| c.user() == "gateway");
        let a = using.answer_blocking(&caller, form.as_bytes(), at(20));
        assert!(a.body.contains(r#""exp":80"#), "refreshed: {}", a.body);
        assert_eq!(
            store.get(subject.info.id).unwrap().last_used_at,
            Some(at(20))
        );
        // Dead at 80 unless used: inactive after, and not brought back.
        let a = using.answer_blocking(&caller, form.as_bytes(), at(80));
        assert_eq!(a.body, r#"{"active":false}"#);
    }

    #[test]
    fn form_bodies_are_decoded_strictly() {
        let value = |body: &[u8]| form_value(body, "token");
        assert_eq!(value(b"token=pat_abc"), Ok(Some("pat_abc".into())));
        assert_eq!(
            value(b"token_type_hint=access_token&token=pat%5Fx+y"),
            Ok(Some("pat_x y".into()))
        );
        assert_eq!(value(b"token"), Ok(Some(String::new())));
        assert_eq!(value(b"other=1"), Ok(None));
        assert_eq!(value(b""), Ok(None));
        assert_eq!(value(b"%zz=1"), Ok(None), "not a key of ours");
        // There, but unreadable: an error, not an absent field.
        assert_eq!(value(b"token=%zz"), Err(()));
        assert_eq!(value(b"token=%4"), Err(()));
        assert_eq!(value(b"token=%ff"), Err(()), "not UTF-8");
        assert_eq!(value(b"token=%+f"), Err(()), "a sign is no digit");
    }

    #[test]
    fn a_secret_in_its_grace_is_flagged_and_a_replay_is_seen_by_reuse_detection() {
        use crate::Rotation;
        let store = Arc::new(MemoryStore::new());
        let hour = ExpiryPolicy::hard(Duration::from_secs(3600));
        let caller = store.create(&NewToken::new("gw", hour), at(0)).unwrap();
        let caller = Identity::new(&caller.info, caller.info.expiry.expires_at());
        let first = store.create(&NewToken::new("alice", hour), at(0)).unwrap();
        let id = first.info.id;
        let second = store
            .rotate(id, &Rotation::new().grace(Duration::from_secs(60)), at(1))
            .unwrap();
        let intro = Introspection::new(store.clone()).allow_users(["gw"]);
        let ask = |secret: &crate::TokenSecret, t| {
            let form = format!("token={}", secret.expose_secret());
            intro.answer_blocking(&caller, form.as_bytes(), at(t)).body
        };
        assert!(ask(&first.secret, 2).contains(r#""pat_previous_secret":true"#));
        assert!(!ask(&second.secret, 2).contains("pat_previous_secret"));
        // After its grace: inactive, and a replay the policy revokes for.
        assert_eq!(ask(&first.secret, 61), r#"{"active":false}"#);
        assert_eq!(
            ask(&second.secret, 62),
            r#"{"active":false}"#,
            "refused at once"
        );
        crate::Verifier::flush(&*store).unwrap();
        assert!(store.get(id).is_err(), "revoked by the flush");
    }

    // Issue 21, finding 9: an unreadable `token` fell back to
    // `token_digest`, answering a question the caller did not ask.
    #[test]
    fn an_unreadable_field_is_a_bad_request_never_another_question() {
        let store = Arc::new(MemoryStore::new());
        let hour = ExpiryPolicy::hard(Duration::from_secs(3600));
        let caller = store.create(&NewToken::new("gw", hour), at(0)).unwrap();
        let caller = Identity::new(&caller.info, caller.info.expiry.expires_at());
        let alice = store.create(&NewToken::new("alice", hour), at(0)).unwrap();
        let hex: String = alice
            .secret
            .digest()
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let intro = Introspection::new(store.clone()).allow_users(["gw"]);
        for (form, field) in [
            (format!("token=%zz&token_digest={hex}"), "`token`"),
            (format!("token_digest={hex}%"), "`token_digest`"),
            (format!("token_digest={hex}&username=%ff"), "`username`"),
        ] {
            let a = intro.answer_blocking(&caller, form.as_bytes(), at(1));
            assert_eq!(a.status, 400, "{form}");
            assert!(
                a.body.contains("invalid_request") && a.body.contains(field),
                "{}",
                a.body
            );
        }
        assert_eq!(store.get(alice.info.id).unwrap().last_used_at, None);
    }

    #[test]
    fn a_digest_and_a_basic_user_name_may_stand_in_for_the_token() {
        let store = Arc::new(MemoryStore::new());
        let window = ExpiryPolicy::sliding(Duration::from_secs(60), None);
        let caller = store.create(&NewToken::new("gw", window), at(0)).unwrap();
        let caller = Identity::new(&caller.info, caller.info.expiry.expires_at());
        let alice = store
            .create(&NewToken::new("alice", window), at(0))
            .unwrap();
        let hex: String = alice
            .secret
            .digest()
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        let intro = Introspection::new(store.clone()).allow_users(["gw"]);
        let ask = |form: &str, t| intro.answer_blocking(&caller, form.as_bytes(), at(t)).body;

        assert!(ask(&format!("token_digest={hex}"), 10).contains(r#""username":"alice""#));
        assert!(ask(&format!("token_digest={hex}&username=alice"), 10).contains("active\":true"));
        // Someone else's name: inactive, why (to a digest request only),
        // and not a use.
        assert_eq!(
            ask(&format!("token_digest={hex}&username=bob"), 30),
            r#"{"active":false,"pat_reason":"wrong_user"}"#
        );
        let token = alice.secret.expose_secret();
        assert_eq!(
            ask(&format!("token={token}&username=bob"), 30),
            r#"{"active":false}"#
        );
        assert_eq!(store.get(alice.info.id).unwrap().last_used_at, Some(at(10)));
        // Expired: the deadline, to a digest request only.
        assert_eq!(
            ask(&format!("token_digest={hex}"), 70),
            r#"{"active":false,"exp":70,"pat_reason":"expired"}"#
        );
        assert_eq!(ask(&format!("token={token}"), 70), r#"{"active":false}"#);
        // Disabled: said so to a digest request only, and not a use.
        store.disable(alice.info.id).unwrap();
        assert_eq!(
            ask(&format!("token_digest={hex}"), 40),
            r#"{"active":false,"pat_reason":"disabled"}"#
        );
        assert_eq!(ask(&format!("token={token}"), 40), r#"{"active":false}"#);
        assert_eq!(store.get(alice.info.id).unwrap().last_used_at, Some(at(10)));
        store.enable(alice.info.id).unwrap();
        // A digest is exactly 64 hex digits.
        for bad in [&hex[1..], &format!("{hex}0"), &format!("+{}", &hex[1..])] {
            assert_eq!(
                ask(&format!("token_digest={bad}"), 10),
                r#"{"active":false}"#
            );
        }
        // `token` wins when both are given.
        assert_eq!(
            ask(&format!("token=pat_nonsense&token_digest={hex}"), 10),
            r#"{"active":false}"#
        );
    }
}
