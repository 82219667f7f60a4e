//! A token settings API any app can mount: list, create and revoke
//! personal access tokens as JSON, for the app's own users, and the web
//! panel ([`crate::routes::panel`]) that drives it.
//!
//! The decisions live here so that every framework answers byte for byte
//! alike; pat-tower's `management` router and pat-actix's `management`
//! scope only route to them:
//!
//! | route | answer |
//! |---|---|
//! | `GET …[?user=NAME]` | 200, `{"principal": {"user", "admin"}, "user", "prefixes", "tokens": [record…]}`; `prefixes` are the store's token prefixes, the current one (which new tokens carry) first; each record has a `status`, `active` or `expired` |
//! | `POST …` | 201, the new token's record with its secret in `token` (the only time it is shown); body below |
//! | `DELETE …/{id}` | 200, the record of the token just revoked, with `revoked_descendants`: how many tokens made with it went with it |
//! | `POST …/{id}/disable` | 200, the token's record (`"status": "disabled"`) with `changed`: how many tokens the disabling reached (it, and those made with it not disabled already; 0 when it was disabled already) |
//! | `POST …/{id}/enable` | 200, the token's record with `changed`: how many tokens the enabling gave back; an admin's alone (below) |
//! | `GET …/expiries.ics[?user=NAME]` | 200, `text/calendar`: the listed tokens' expiry dates as an iCalendar feed, one all-day event per live token that will expire (see [`crate::routes::calendar`]); the listing's principal rule and refusals |
//!
//! The create body is a JSON object with the CLI's options: `label`,
//! `expire` (a hard limit, e.g. `"30d"`) or `auto` (a sliding window, e.g.
//! `"10m"`) with an optional `max_lifetime`, `scopes` (a list of
//! `node:UUID:PERM` and named permissions), `meta` (an object of strings,
//! see [`Metadata`]), `allow_from` (a list of networks in CIDR notation the
//! token may be used from, see [`TokenInfo::allow_from`](crate::TokenInfo::allow_from)),
//! `rate` (a rate limit, `"100/m"`, see [`TokenInfo::rate`](crate::TokenInfo::rate)), and `user`
//! (an admin creating for someone else).
//! Anything else is refused, naming the field.
//!
//! # Who is calling
//! The app's business: the adapters take a closure turning a request into a
//! [`Principal`] (from the app's session, its login, or the PAT layer's
//! [`Identity`]). A principal that is not an admin sees and manages only its
//! own tokens (another user's token is 404, as if absent); an admin any
//! user's. The store's [`Policy`](crate::Policy) applies to every creation.
//!
//! # No privilege escalation
//! When the principal authenticated with a token ([`Principal::with_token`]),
//! a token it creates is that token's child ([`crate::backend::authority`]): it may
//! not outlive it (its latest possible deadline, a hard limit or a sliding
//! token's `max_lifetime`, must be no later than the caller's deadline)
//! nor reach further (a scoped caller may only create tokens scoped to its
//! own nodes with at most its permissions on each; this crate does not
//! know your tree, so a node below one of the caller's is refused too),
//! and revoking the caller's token revokes it. The audit log names the
//! token as the actor (`token ID`).
//!
//! A **scoped** token manages only itself and the tokens made with it
//! (the list shows only those; revoking another is 403), and never has an
//! admin's powers: those need an unscoped token or a session. A secret in
//! its grace after a rotation authenticates, but creating or revoking with
//! it is 403.
//!
//! # Suspension
//! Whoever may revoke a token may disable it (a scoped token: itself and
//! the tokens made with it); a disabled token is refused until enabled,
//! and the tokens made with it with it. Only an admin may enable one: a
//! disabling may be an admin's, which the token's owner must not undo (an
//! owner who paused a token asks an admin, or revokes it and makes another).
//! The disable and enable routes take no body.
//!
//! Each listed record carries `descendants`, how many of the listed tokens
//! were made with it (directly or further down): what revoking it takes
//! with it.
//!
//! # Cross-site requests
//! `POST` and `DELETE` follow [`crate::routes::csrf`]'s rule: a request another
//! site sent (its `Sec-Fetch-Site`) is refused, and one whose credentials
//! a browser sends by itself (HTTP Basic, the app's cookie session) must
//! carry the header [`CSRF_HEADER`] (any non-empty value; the panel sends
//! it); a `Bearer` request needs nothing more. Every answer carries
//! `Cache-Control: no-store`.
//!
//! Errors are JSON, `{"error", "error_description"}`, with the messages
//! `pat-cli` gives for the same mistakes: 400 `invalid_request`, 401
//! `unauthorized` (no principal), 403 `forbidden` (another user's tokens, an
//! escalation, a cross-site request, the store's policy), 404 `not_found`,
//! 503 `temporarily_unavailable` (the cause is logged, not shown). The
//! [`Admin`] calls block: the adapters run them off the async workers.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::backend::admin::Admin;
use crate::error::StoreError;
use crate::model::expiry::ExpiryPolicy;
use crate::model::metadata::Metadata;
use crate::model::network::Cidr;
use crate::model::rate::RateLimit;
use crate::model::record::{Identity, NewToken, TokenInfo};
use crate::model::scope::{Scopes, TokenScope};
use crate::model::time::{Timestamp, parse_duration};
use crate::model::token::TokenId;
pub use crate::routes::answer::catalog_json;
use crate::routes::answer::{Answer, token_json};

pub use crate::routes::csrf::CSRF_HEADER;

/// Who is calling the management API, as the app knows them.
#[derive(Clone, Debug)]
pub struct Principal {
    user: String,
    admin: bool,
    token: Option<Identity>,
}

impl Principal {
    /// A user logged in by the app (a session): manages their own tokens.
    pub fn user(name: impl Into<String>) -> Principal {
        Principal {
            user: name.into(),
            admin: false,
            token: None,
        }
    }

    /// The user a personal access token authenticated (the PAT layer's
    /// [`Identity`]): manages that user's tokens, within the token's own
    /// reach (see "No privilege escalation").
    pub fn with_token(identity: &Identity) -> Principal {
        Principal {
            user: identity.user().to_owned(),
            admin: false,
            token: Some(identity.clone()),
        }
    }

    /// Makes the principal an admin (or not): an admin manages any user's
    /// tokens.
    pub fn admin(mut self, admin: bool) -> Principal {
        self.admin = admin;
        self
    }

    /// The user name.
    pub fn name(&self) -> &str {
        &self.user
    }

    /// Whether the principal is an admin.
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// The token the principal authenticated with, if any.
    pub fn token(&self) -> Option<&Identity> {
        self.token.as_ref()
    }

    /// Whether the principal has an admin's powers now: an admin, not
    /// limited by a scoped token.
    fn acts_as_admin(&self) -> bool {
        self.admin
            && self
                .token
                .as_ref()
                .is_none_or(|t| t.scopes().is_unrestricted())
    }

    /// Whether this principal may manage `user`'s tokens.
    fn manages(&self, user: &str) -> bool {
        self.acts_as_admin() || self.user == user
    }

    /// The token whose family alone a scoped principal manages.
    fn scoped_to(&self) -> Option<TokenId> {
        self.token
            .as_ref()
            .filter(|t| !t.scopes().is_unrestricted())
            .map(Identity::token_id)
    }

    /// The audit log's actor: the token the principal authenticated with,
    /// else the user.
    fn actor(&self) -> String {
        match &self.token {
            Some(t) => format!("token {}", t.token_id()),
            None => format!("user {}", self.user),
        }
    }

    /// 403 when the principal authenticated with a secret in its grace.
    fn refuse_previous_secret(&self) -> Option<Answer> {
        self.token
            .as_ref()
            .filter(|t| t.is_previous_secret())
            .map(|_| crate::routes::self_service::previous_secret_refused())
    }
}

/// The management decisions over an [`Admin`] backend.
#[derive(Clone)]
pub struct Management {
    admin: Arc<dyn Admin + Send + Sync>,
}

impl std::fmt::Debug for Management {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Management").finish_non_exhaustive()
    }
}

// Errors may quote what the caller sent (a field, a value), which may be a
// token pasted in the wrong place: `redacted` cuts it.
fn bad(description: &str) -> Answer {
    Answer::error(
        400,
        "invalid_request",
        &crate::model::text::redacted(description),
    )
}

fn forbidden(description: &str) -> Answer {
    Answer::error(403, "forbidden", &crate::model::text::redacted(description))
}

fn not_found() -> Answer {
    Answer::error(404, "not_found", "no such token")
}

/// A token's record with its status at `now`: `expired`, `disabled` or
/// `active`.
fn record(info: &TokenInfo, now: Timestamp) -> Value {
    let mut v = token_json(info);
    v["status"] = json!(if info.is_expired(now) {
        "expired"
    } else if info.is_disabled() {
        "disabled"
    } else {
        "active"
    });
    v
}

impl Management {
    /// Management over `admin` (usually the store the PAT layer checks
    /// tokens with).
    pub fn new(admin: Arc<dyn Admin + Send + Sync>) -> Management {
        Management { admin }
    }

    /// The answer to a request with no principal (the closure found no
    /// session or login): 401.
    pub fn unauthorized() -> Answer {
        Answer::error(401, "unauthorized", "log in to manage tokens")
    }

    /// The CSRF check of a `POST` or `DELETE`, from its [`CSRF_HEADER`] and
    /// `Sec-Fetch-Site` headers, for a request whose credentials a browser
    /// may have sent by itself: `Some(403)` to answer instead, `None` to go
    /// on. [`CrossSite::refuse_token_change`](crate::routes::csrf::CrossSite::refuse_token_change)
    /// also takes the `Authorization` header, and lets a `Bearer` request
    /// through without [`CSRF_HEADER`]; the adapters use it.
    pub fn refuse_cross_site(csrf: Option<&[u8]>, sec_fetch_site: Option<&[u8]>) -> Option<Answer> {
        crate::routes::csrf::CrossSite::new(sec_fetch_site, csrf, None).refuse_token_change()
    }

    /// Who calls a route, for the adapters: for a change (`changes`), the
    /// CSRF check first ([`CrossSite::refuse_token_change`](crate::routes::csrf::CrossSite::refuse_token_change));
    /// then `principal`, the app's answer, or 401 ([`Management::unauthorized`])
    /// when it found none.
    pub fn caller(
        changes: bool,
        cross_site: &crate::routes::csrf::CrossSite<'_>,
        principal: impl FnOnce() -> Option<Principal>,
    ) -> Result<Principal, Answer> {
        if changes && let Some(refused) = cross_site.refuse_token_change() {
            return Err(refused);
        }
        principal().ok_or_else(Management::unauthorized)
    }

    /// The user a `GET` asks about (`?user=NAME`, else the principal) and
    /// the tokens of theirs the principal may see (a scoped token: itself
    /// and those made with it), expired ones included; the refusal else.
    /// The one rule of the listing and the calendar.
    fn listed(
        &self,
        p: &Principal,
        query: Option<&str>,
        now: Timestamp,
    ) -> Result<(String, Vec<TokenInfo>), Answer> {
        let mut user = None;
        for pair in query.unwrap_or("").split('&').filter(|q| !q.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if key != "user" {
                return Err(bad(&format!("unknown parameter `{}`: expected user", key)));
            }
            if user.is_some() {
                return Err(bad("parameter `user` given twice"));
            }
            match crate::routes::introspection::decode(value.as_bytes()) {
                Some(v) => user = Some(v),
                None => return Err(bad("parameter `user`: not percent-encoded UTF-8")),
            }
        }
        let user = user.unwrap_or_else(|| p.user.clone());
        if !p.manages(&user) {
            return Err(forbidden(if p.admin {
                "an admin's powers need an unscoped token: a scoped token manages only itself \
                 and the tokens made with it"
            } else {
                "only an admin may see another user's tokens"
            }));
        }
        let mut tokens = self
            .admin
            .list(Some(&user), true, now)
            .map_err(|e| failed(&e))?;
        if let Some(own) = p.scoped_to() {
            let family: std::collections::HashSet<TokenId> =
                crate::backend::authority::descendants_in(&tokens, own)
                    .iter()
                    .map(|d| d.id)
                    .collect();
            tokens.retain(|t| t.id == own || family.contains(&t.id));
        }
        Ok((user, tokens))
    }

    /// `GET …/expiries.ics[?user=NAME]`: the expiry dates of the tokens
    /// the listing would show, as an iCalendar feed
    /// ([`crate::routes::calendar`]); the same principal rule and refusals.
    pub fn calendar_blocking(&self, p: &Principal, query: Option<&str>, now: Timestamp) -> Answer {
        match self.listed(p, query, now) {
            Ok((user, tokens)) => Answer::text(
                crate::routes::calendar::calendar(&user, &tokens, now),
                crate::routes::calendar::CONTENT_TYPE,
            ),
            Err(refused) => refused,
        }
    }

    /// `GET …[?user=NAME]`: the tokens of the principal, or (an admin) of
    /// `NAME`, expired ones included, oldest first.
    pub fn list_blocking(&self, p: &Principal, query: Option<&str>, now: Timestamp) -> Answer {
        let (user, tokens) = match self.listed(p, query, now) {
            Ok(listed) => listed,
            Err(refused) => return refused,
        };
        let prefixes = match self.admin.token_prefixes() {
            Ok(all) => all,
            Err(e) => return failed(&e),
        };
        // What a new token may carry: the panel offers them as checkboxes.
        let permissions = match self.admin.permissions() {
            Ok(catalog) => catalog_json(&catalog),
            Err(e) => return failed(&e),
        };
        let counts = crate::backend::authority::descendant_counts(&tokens);
        let listed: Vec<Value> = tokens
            .iter()
            .map(|t| {
                let mut v = record(t, now);
                v["descendants"] = json!(counts.get(&t.id).copied().unwrap_or(0));
                v
            })
            .collect();
        Answer::json(
            200,
            &json!({
                "principal": { "user": p.user, "admin": p.acts_as_admin() },
                "user": user,
                "prefixes": prefixes.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                "permissions": permissions,
                "tokens": listed,
            }),
        )
    }

    /// `POST …` with a JSON `body`: a new token, its secret in the answer
    /// only.
    pub fn create_blocking(&self, p: &Principal, body: &[u8], now: Timestamp) -> Answer {
        let request = match Request::parse(body) {
            Ok(r) => r,
            Err(why) => return bad(&why),
        };
        if let Some(refused) = p.refuse_previous_secret() {
            return refused;
        }
        let user = request.user.unwrap_or_else(|| p.user.clone());
        if !p.manages(&user) {
            return forbidden(if p.admin {
                "an admin's powers need an unscoped token: a scoped token may only make tokens \
                 for its own user"
            } else {
                "only an admin may create tokens for another user"
            });
        }
        let mut new = NewToken::new(user, request.expiry)
            .label(
                request
                    .label
                    .unwrap_or_else(|| crate::model::record::DEFAULT_LABEL.to_owned()),
            )
            .created_by(p.user.clone())
            .scopes(request.scopes)
            .meta(request.meta)
            .allow_from(request.allow_from);
        new.rate = request.rate;
        new.max_uses = request.max_uses;
        if let Some(caller) = &p.token {
            // The store checks the rule against the parent's record, and
            // that the secret presented is still its current one.
            new = new.child_of(caller);
        }
        match self.admin.acting_as(&p.actor()).create(&new, now) {
            Ok(created) => {
                tracing::info!(token_id = %created.info.id, user = %created.info.user, by = %p.user, "token created");
                let mut body = record(&created.info, now);
                body["token"] = json!(created.secret.expose_secret());
                Answer::json(201, &body)
            }
            Err(StoreError::Policy(e)) => forbidden(&e.to_string()),
            Err(StoreError::Authority(e)) => forbidden(&authority_error(&e)),
            Err(StoreError::NewToken(e)) => bad(&field_error(&e)),
            // A name the catalog lacks, a wildcard that stands for none.
            Err(StoreError::Catalog(e)) => bad(&format!("invalid value for `scopes`: {e}")),
            Err(e) => failed(&e),
        }
    }

    /// `DELETE …/{id}`: revokes a token of the principal's (an admin: any).
    pub fn revoke_blocking(&self, p: &Principal, id: &str, now: Timestamp) -> Answer {
        let Ok(id) = id.parse::<TokenId>() else {
            return bad(&format!("`{}` is not a token id (16 hex digits)", id));
        };
        if let Some(refused) = p.refuse_previous_secret() {
            return refused;
        }
        if let Err(refused) = self.may_act_on(p, id) {
            return refused;
        }
        // What goes with it, as it stands just before.
        let descendants = match self.admin.descendants(id) {
            Ok(d) => d,
            Err(e) => return failed(&e),
        };
        match self.admin.acting_as(&p.actor()).revoke(id) {
            Ok(info) => {
                tracing::info!(token_id = %info.id, user = %info.user, by = %p.user, "token revoked");
                let mut body = record(&info, now);
                body["revoked_descendants"] = json!(descendants.len());
                Answer::json(200, &body)
            }
            Err(StoreError::NotFound(_)) => not_found(),
            Err(e) => failed(&e),
        }
    }
}

impl Management {
    /// `POST …/{id}/disable` (`disable`) or `POST …/{id}/enable`: the body
    /// must be empty. Disabling is for whoever may revoke the token;
    /// enabling for an admin alone (see the module documentation).
    pub fn suspend_blocking(
        &self,
        p: &Principal,
        id: &str,
        disable: bool,
        body: &[u8],
        now: Timestamp,
    ) -> Answer {
        if !body.is_empty() {
            return bad("this route takes no body");
        }
        let Ok(id) = id.parse::<TokenId>() else {
            return bad(&format!("`{}` is not a token id (16 hex digits)", id));
        };
        if let Some(refused) = p.refuse_previous_secret() {
            return refused;
        }
        if let Err(refused) = self.may_act_on(p, id) {
            return refused;
        }
        if !disable && !p.acts_as_admin() {
            return forbidden(
                "only an admin may enable a token: a disabling may be an admin's, which its owner may not undo",
            );
        }
        let admin = self.admin.acting_as(&p.actor());
        let changed = if disable {
            admin.disable(id)
        } else {
            admin.enable(id)
        };
        let changed = match changed {
            Ok(n) => n,
            Err(StoreError::NotFound(_)) => return not_found(),
            Err(StoreError::Suspension(e)) => return bad(&e.to_string()),
            Err(e) => return failed(&e),
        };
        match self.admin.get(id) {
            Ok(info) => {
                tracing::info!(token_id = %info.id, user = %info.user, by = %p.user, disable, changed, "token suspension changed");
                let mut body = record(&info, now);
                body["changed"] = json!(changed);
                Answer::json(200, &body)
            }
            Err(StoreError::NotFound(_)) => not_found(),
            Err(e) => failed(&e),
        }
    }

    /// Whether `p` may act on token `id` as on its own: 404 for a token it
    /// may not see (another user's, unless an admin), 403 for one outside a
    /// scoped token's family.
    fn may_act_on(&self, p: &Principal, id: TokenId) -> Result<(), Answer> {
        match self.admin.get(id) {
            Ok(info) if p.manages(&info.user) => {}
            // Another user's token is none of a non-admin's business.
            Ok(_) | Err(StoreError::NotFound(_)) => return Err(not_found()),
            Err(e) => return Err(failed(&e)),
        }
        if let Some(own) = p.scoped_to()
            && id != own
            && !matches!(self.admin.descendants(own), Ok(d) if d.iter().any(|t| t.id == id))
        {
            return Err(forbidden(
                "a scoped token manages only itself and the tokens made with it",
            ));
        }
        Ok(())
    }
}

fn failed(e: &StoreError) -> Answer {
    tracing::error!(error = %crate::error::chain(e), "token management call failed");
    Answer::unavailable()
}

/// A request to create a token, as the JSON body gives it.
#[derive(Debug)]
struct Request {
    user: Option<String>,
    label: Option<String>,
    expiry: ExpiryPolicy,
    scopes: Scopes,
    meta: Metadata,
    allow_from: Vec<Cidr>,
    rate: Option<RateLimit>,
    max_uses: Option<u32>,
}

const FIELDS: [&str; 10] = [
    "user",
    "label",
    "expire",
    "auto",
    "max_lifetime",
    "scopes",
    "meta",
    "allow_from",
    "rate",
    "max_uses",
];

impl Request {
    fn parse(body: &[u8]) -> Result<Request, String> {
        let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
            return Err("the body must be a JSON object".into());
        };
        if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(format!(
                "unknown field `{}`: expected user, label, expire, auto, max_lifetime, scopes, meta, allow_from, rate or max_uses",
                unknown
            ));
        }
        let text = |key: &str| -> Result<Option<String>, String> {
            match fields.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("`{key}` must be a string")),
            }
        };
        let duration = |key: &str| -> Result<Option<Duration>, String> {
            text(key)?
                .map(|s| parse_duration(&s).map_err(|e| format!("invalid value for `{key}`: {e}")))
                .transpose()
        };
        let expiry = ExpiryPolicy::from_fields(
            duration("expire")?,
            duration("auto")?,
            duration("max_lifetime")?,
        )?
        .ok_or(
            "an expiry is required: `expire` for a hard limit, e.g. \"24h\", or `auto` for a \
             sliding window, e.g. \"10m\"",
        )?;
        let scopes: Scopes = list::<TokenScope>(&fields, "scopes")?.into_iter().collect();
        let meta = match fields.get("meta") {
            None | Some(Value::Null) => Metadata::empty(),
            Some(v) => {
                Metadata::from_json(v).map_err(|e| format!("invalid value for `meta`: {e}"))?
            }
        };
        let allow_from: Vec<Cidr> = list(&fields, "allow_from")?;
        let rate = text("rate")?
            .map(|r| {
                r.parse::<RateLimit>()
                    .map_err(|e| format!("invalid value for `rate`: {e}"))
            })
            .transpose()?;
        let max_uses = match fields.get("max_uses") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| {
                        format!(
                            "`max_uses` must be a whole number from 1 to {}",
                            crate::MAX_USES
                        )
                    })
                    .and_then(|n| {
                        crate::use_quota(n)
                            .map_err(|e| format!("invalid value for `max_uses`: {e}"))
                    })?,
            ),
        };
        Ok(Request {
            user: text("user")?,
            label: text("label")?,
            expiry,
            scopes,
            meta,
            allow_from,
            rate,
            max_uses,
        })
    }
}

/// The field `key` of `fields`, a list of strings each parsed as a `T`;
/// empty when absent or null.
fn list<T>(fields: &serde_json::Map<String, Value>, key: &str) -> Result<Vec<T>, String>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let not_a_list = || format!("`{key}` must be a list of strings");
    match fields.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(all)) => all
            .iter()
            .map(|v| {
                let text = v.as_str().ok_or_else(not_a_list)?;
                text.parse::<T>()
                    .map_err(|e| format!("invalid value for `{key}`: {e}"))
            })
            .collect(),
        Some(_) => Err(not_a_list()),
    }
}

/// The authority rule's refusal, naming the field to change where one
/// would fix it.
fn authority_error(e: &crate::backend::authority::AuthorityViolation) -> String {
    use crate::backend::authority::AuthorityViolation;
    match e {
        AuthorityViolation::OutlivesParent { limit, asked: None } => format!(
            "a token may not outlive the token it was made with: give `max_lifetime` so that \
             the new token ends by {limit}, when the token you authenticated with expires"
        ),
        other => other.to_string(),
    }
}

/// A request the store would refuse, naming the field (as the CLI names
/// its flag).
fn field_error(e: &crate::NewTokenError) -> String {
    use crate::NewTokenError;
    match e {
        NewTokenError::User { .. } => format!("invalid value for `user`: {e}"),
        NewTokenError::Label { .. } => format!("invalid value for `label`: {e}"),
        NewTokenError::TooManyScopes { .. } => format!("invalid value for `scopes`: {e}"),
        NewTokenError::TooManyNetworks { .. } => format!("invalid value for `allow_from`: {e}"),
        NewTokenError::MaxUses { .. } => format!("invalid value for `max_uses`: {e}"),
        NewTokenError::CapBelowWindow {
            window,
            max_lifetime,
        } => format!("`max_lifetime` ({max_lifetime}) must not be shorter than `auto` ({window})"),
        NewTokenError::TooLate => {
            format!("invalid value for `expire` or `auto`: {e}; choose a shorter duration")
        }
        other => format!("invalid token request: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::MemoryStore;

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_unix_secs(secs).unwrap()
    }

    fn body(a: &Answer) -> Value {
        serde_json::from_str(&a.body).unwrap()
    }

    const NODE: &str = "0b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a";

    #[test]
    fn a_token_may_mint_up_to_its_own_deadline_and_scopes_but_not_past() {
        let store = Arc::new(MemoryStore::new());
        let m = Management::new(store.clone());
        let scoped: Scopes = [format!("node:{NODE}:rw").parse::<crate::Scope>().unwrap()]
            .into_iter()
            .collect();
        let login = store
            .create(
                &NewToken::new("alice", ExpiryPolicy::hard(Duration::from_secs(3600)))
                    .scopes(scoped),
                at(0),
            )
            .unwrap();
        let p = Principal::with_token(&Identity::new(&login.info, login.info.expiry.expires_at()));
        let create = |json: Value, t| m.create_blocking(&p, json.to_string().as_bytes(), at(t));
        let r = format!("node:{NODE}:r");
        // Exactly the caller's deadline, and a narrower permission: allowed.
        assert_eq!(
            create(json!({"expire": "30m", "scopes": [r]}), 1800).status,
            201
        );
        assert_eq!(
            create(json!({"expire": "30m", "scopes": [r]}), 1801).status,
            403
        );
        assert_eq!(
            create(
                json!({"auto": "1m", "max_lifetime": "1h", "scopes": [r]}),
                0
            )
            .status,
            201
        );
        // A session login (no token) is not bound by a token's reach.
        let session = Principal::user("alice");
        let a = m.create_blocking(&session, br#"{"expire": "30d"}"#, at(0));
        assert_eq!(a.status, 201, "{}", a.body);
        assert_eq!(body(&a)["label"], crate::model::record::DEFAULT_LABEL);
        assert_eq!(body(&a)["status"], "active");
    }

    #[test]
    fn users_see_their_own_and_admins_anyones() {
        let store = Arc::new(MemoryStore::new());
        let m = Management::new(store.clone());
        let hour = ExpiryPolicy::hard(Duration::from_secs(3600));
        let bobs = store.create(&NewToken::new("bob", hour), at(0)).unwrap();
        let alice = Principal::user("alice");
        let admin = Principal::user("root").admin(true);
        let list = m.list_blocking(&alice, None, at(10));
        assert_eq!(
            (list.status, body(&list)["tokens"].as_array().unwrap().len()),
            (200, 0)
        );
        assert_eq!(
            m.list_blocking(&alice, Some("user=bob"), at(10)).status,
            403
        );
        let listed = m.list_blocking(&admin, Some("user=bob"), at(7200));
        assert_eq!(body(&listed)["tokens"][0]["status"], "expired");
        assert_eq!(m.list_blocking(&admin, Some("user=%ZZ"), at(0)).status, 400);
        assert_eq!(
            m.list_blocking(&admin, Some("user=a&user=b"), at(0)).status,
            400
        );
        let id = bobs.info.id.to_string();
        assert_eq!(m.revoke_blocking(&alice, &id, at(10)).status, 404);
        assert_eq!(m.revoke_blocking(&admin, &id, at(10)).status, 200);
        assert_eq!(m.revoke_blocking(&admin, &id, at(10)).status, 404);
        let e = m.revoke_blocking(&admin, "pat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", at(10));
        assert_eq!(e.status, 400);
        assert!(
            !e.body.contains("AAAAAAAA"),
            "a pasted token echoed: {}",
            e.body
        );
        let audit = store.audit(at(0), Some("bob")).unwrap();
        assert!(audit.iter().any(|e| e.actor == "user root"), "{audit:?}");
    }

    proptest::proptest! {
        /// Any body, query or id: an answer, never a panic, and no secret
        /// outside a 201.
        #[test]
        fn any_input_gets_an_answer(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            query in ".{0,40}",
            id in ".{0,40}",
        ) {
            let store = Arc::new(MemoryStore::new());
            let m = Management::new(store);
            let p = Principal::user("alice");
            let a = m.create_blocking(&p, &body, at(0));
            proptest::prop_assert!(matches!(a.status, 201 | 400 | 403), "{}", a.status);
            proptest::prop_assert!(a.status == 201 || !a.body.contains("pat_"));
            let a = m.list_blocking(&p, Some(&query), at(0));
            proptest::prop_assert!(matches!(a.status, 200 | 400 | 403));
            let a = m.revoke_blocking(&p, &id, at(0));
            proptest::prop_assert!(matches!(a.status, 400 | 404));
        }

        /// Any JSON object of the known fields with any string values.
        #[test]
        fn any_create_request_gets_an_answer(
            fields in proptest::collection::btree_map(
                proptest::sample::select(FIELDS.to_vec()),
                ".{0,12}",
                0..6,
            ),
        ) {
            let store = Arc::new(MemoryStore::new());
            let m = Management::new(store);
            let body = serde_json::to_vec(&fields).unwrap();
            let a = m.create_blocking(&Principal::user("alice"), &body, at(0));
            proptest::prop_assert!(matches!(a.status, 201 | 400 | 403), "{}", a.status);
        }
    }

    #[test]
    fn a_token_pasted_anywhere_is_never_echoed() {
        let m = Management::new(Arc::new(MemoryStore::new()));
        let p = Principal::user("alice");
        let pasted = crate::TokenSecret::generate();
        let t = pasted.expose_secret();
        for a in [
            m.create_blocking(&p, format!(r#"{{"{t}": 1}}"#).as_bytes(), at(0)),
            m.create_blocking(&p, format!(r#"{{"expire": "{t}"}}"#).as_bytes(), at(0)),
            m.create_blocking(
                &p,
                format!(r#"{{"expire": "1h", "scopes": ["{t}"]}}"#).as_bytes(),
                at(0),
            ),
            m.list_blocking(&p, Some(&format!("{t}=1")), at(0)),
            m.revoke_blocking(&p, t, at(0)),
        ] {
            assert_eq!(a.status, 400, "{}", a.body);
            assert!(!a.body.contains(&t[4..12]), "echoed: {}", a.body);
        }
    }

    #[test]
    fn changes_need_the_header_and_the_same_origin() {
        let refuse = Management::refuse_cross_site;
        assert!(refuse(Some(b"1"), None).is_none());
        assert!(refuse(Some(b"1"), Some(b"same-origin")).is_none());
        assert!(refuse(Some(b"1"), Some(b"none")).is_none());
        for (csrf, site) in [
            (None, None),
            (Some(&b""[..]), None),
            (Some(&b"1"[..]), Some(&b"cross-site"[..])),
            (Some(&b"1"[..]), Some(&b"same-site"[..])),
        ] {
            assert_eq!(refuse(csrf, site).map(|a| a.status), Some(403));
        }
    }
}
