//! The answer every route pat decides gives the adapters to send.

use serde_json::{Value, json};

use crate::model::record::TokenInfo;
use crate::model::time::Timestamp;

/// The answer of a route pat decides (self-service, management,
/// introspection, leak reports, the request hygiene): status and body
/// (JSON, but for the management API's calendar). Send it with its
/// [`content_type`](Answer::content_type) and
/// [`CACHE_CONTROL`](Answer::CACHE_CONTROL).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body. After a rotation it holds the new secret: send it,
    /// never log it.
    pub body: String,
    /// Seconds for a `Retry-After` header (a rate limit), if any.
    pub retry_after: Option<u64>,
    /// Whether to close the connection after it (`Connection: close`): a
    /// body was left unread.
    pub close: bool,
    /// The body's `Content-Type`: [`CONTENT_TYPE`](Answer::CONTENT_TYPE)
    /// for every answer but the calendar's (`text/calendar`).
    pub content_type: &'static str,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The body of a rotation holds a secret.
        f.debug_struct("Answer")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Answer {
    /// The `Content-Type` of every JSON answer.
    pub const CONTENT_TYPE: &'static str = "application/json";
    /// The `Cache-Control` of every answer: a record or a secret is never
    /// kept by a cache.
    pub const CACHE_CONTROL: &'static str = "no-store";

    pub(crate) fn json(status: u16, body: &Value) -> Answer {
        Answer {
            status,
            body: body.to_string(),
            retry_after: None,
            close: false,
            content_type: Answer::CONTENT_TYPE,
        }
    }

    /// 200 with `body` of type `content_type`.
    pub(crate) fn text(body: String, content_type: &'static str) -> Answer {
        Answer {
            status: 200,
            body,
            retry_after: None,
            close: false,
            content_type,
        }
    }

    pub(crate) fn error(status: u16, error: &str, description: &str) -> Answer {
        Answer::json(
            status,
            &json!({ "error": error, "error_description": description }),
        )
    }

    /// 204, no body: done, nothing to say (the adapters send no
    /// `Content-Type` with it).
    pub(crate) fn no_content() -> Answer {
        Answer {
            status: 204,
            body: String::new(),
            retry_after: None,
            close: false,
            content_type: Answer::CONTENT_TYPE,
        }
    }

    /// 429 with `Retry-After: retry_after` (seconds): a client past a
    /// per-address limit.
    pub(crate) fn too_many(description: &str, retry_after: u64) -> Answer {
        let mut a = Answer::error(429, "too_many_requests", description);
        a.retry_after = Some(retry_after);
        a
    }

    /// The answer when the store failed, or the call itself could not run
    /// (a panicked worker): 503, retry later (the cause is logged, not
    /// shown).
    pub fn unavailable() -> Answer {
        Answer::error(
            503,
            "temporarily_unavailable",
            "the token store is unavailable; retry later",
        )
    }
}

/// A catalog as the routes and `pat-cli scopes list --json` show it: an
/// array of `{"name", "description", "implies"}`, by name.
pub fn catalog_json(catalog: &crate::Catalog) -> Value {
    Value::Array(
        catalog
            .iter()
            .map(|d| {
                json!({
                    "name": d.name.as_str(),
                    "description": d.description,
                    "implies": d.implies.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// A token's record as the routes show it (never a secret).
pub fn token_json(info: &TokenInfo) -> Value {
    json!({
        "id": info.id.to_string(),
        "user": info.user,
        "label": info.label,
        "scopes": info.scopes.entries().map(|s| s.to_string()).collect::<Vec<_>>(),
        "expiry": if info.expiry.window().is_some() { "sliding" } else { "hard" },
        "auto_refresh_seconds": info.expiry.window().map(|d| d.as_secs()),
        "max_lifetime_seconds": info.expiry.max_lifetime().map(|d| d.as_secs()),
        "expires_at": info.expiry.expires_at().to_string(),
        "last_used_at": info.last_used_at.map(|t| t.to_string()),
        "created_at": info.created_at.to_string(),
        "rotated_at": info.rotated_at.map(|t| t.to_string()),
        "latest_expires_at": info.latest_possible().map(|t| t.to_string()),
        "parent": info.parent.map(|p| p.to_string()),
        "previous_secret_until": info.previous_secret_until(Timestamp::now()).map(|t| t.to_string()),
        "disabled": info.is_disabled(),
        "disabled_by": info.disabled_by.map(|t| t.to_string()),
        "meta": info.meta.to_json(),
        "allow_from": info.allow_from.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "rate": info.rate.map(|r| r.to_string()),
        "max_uses": info.max_uses,
        "uses": info.uses,
        "last_addresses": info.last_addresses.to_json(),
    })
}
