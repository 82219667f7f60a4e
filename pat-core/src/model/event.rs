//! Events: what happened to a token, for the people and programs that
//! watch them (webhooks, an app's own mail). An event is read from the
//! audit log: every change a store makes appends its entries in the same
//! transaction, in commit order ([`AuditEntry::seq`]), so the log is the
//! outbox, and an event exists exactly when its change committed. One
//! rule, [`Event::from_audit`], says which entries are events and what
//! they mean.

use std::fmt;

use crate::backend::authority::{PARENT_REVOKED, REUSE_ACTOR};
use crate::model::audit::{AuditAction, AuditEntry};
use crate::model::time::Timestamp;
use crate::model::token::TokenId;

/// The audit actors of the routes that revoke tokens reported leaked (the
/// start of each: the rest names the report).
pub(crate) const LEAK_ACTORS: [&str; 3] = [
    "GitHub secret scanning (",
    "GitLab secret detection (",
    "reported leaked by ",
];

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A token was created.
    Created,
    /// A token got a new secret.
    Rotated,
    /// A token was revoked ([`Event::cause`] says why).
    Revoked,
    /// A token was disabled.
    Disabled,
    /// A disabled token was enabled again.
    Enabled,
    /// A secret a rotation replaced was presented after its grace: it may
    /// have been stolen.
    Replayed,
    /// A token's latest deadline is within a notice threshold
    /// ([`Event::days`], [`Event::expires_at`]).
    Expiring,
    /// A token reached its latest deadline ([`Event::expires_at`]).
    Expired,
}

impl EventKind {
    /// Its name in a webhook's body: `token.created`, `token.revoked`...
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "token.created",
            EventKind::Rotated => "token.rotated",
            EventKind::Revoked => "token.revoked",
            EventKind::Disabled => "token.disabled",
            EventKind::Enabled => "token.enabled",
            EventKind::Replayed => "token.replayed",
            EventKind::Expiring => "token.expiring",
            EventKind::Expired => "token.expired",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a token was revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevokeCause {
    /// By an administrator: the CLI, the admin socket, the store's API,
    /// or a revocation of all of a user's tokens.
    Admin,
    /// Through the management API or self-service, by a user or a token
    /// ([`Event::actor`] says which).
    Api,
    /// Reported leaked (GitHub secret scanning, GitLab secret detection,
    /// the public leak route).
    LeakReport,
    /// Reuse detection: an old secret of its family was replayed.
    ReuseDetection,
    /// A token it was made with was revoked.
    ParentRevoked,
    /// Its last scope was taken out of the permission catalog.
    PermissionRemoved,
}

impl RevokeCause {
    /// Its name in a webhook's body: `admin`, `leak_report`...
    pub const fn as_str(self) -> &'static str {
        match self {
            RevokeCause::Admin => "admin",
            RevokeCause::Api => "api",
            RevokeCause::LeakReport => "leak_report",
            RevokeCause::ReuseDetection => "reuse_detection",
            RevokeCause::ParentRevoked => "parent_revoked",
            RevokeCause::PermissionRemoved => "permission_removed",
        }
    }

    /// The cause of the revocation `entry` records.
    fn of(entry: &AuditEntry) -> RevokeCause {
        if entry.outcome.starts_with(PARENT_REVOKED) {
            RevokeCause::ParentRevoked
        } else if entry.outcome == crate::backend::engine::LAST_SCOPE_OUTCOME {
            RevokeCause::PermissionRemoved
        } else if entry.actor == REUSE_ACTOR {
            RevokeCause::ReuseDetection
        } else if LEAK_ACTORS.iter().any(|a| entry.actor.starts_with(a)) {
            RevokeCause::LeakReport
        } else if entry.actor.starts_with("token ") || entry.actor.starts_with("user ") {
            RevokeCause::Api
        } else {
            RevokeCause::Admin
        }
    }
}

impl fmt::Display for RevokeCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event: a change to one token, as committed. Never a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Event {
    /// Its place in the store's log ([`AuditEntry::seq`]): increasing, and
    /// its id for a receiver that must not act twice (`evt_SEQ`).
    pub seq: u64,
    /// When.
    pub at: Timestamp,
    /// What.
    pub kind: EventKind,
    /// The token.
    pub token_id: TokenId,
    /// The token's user.
    pub user: String,
    /// Who did it, as the audit log names them.
    pub actor: String,
    /// Why, for [`EventKind::Revoked`].
    pub cause: Option<RevokeCause>,
    /// The threshold crossed, in days, for [`EventKind::Expiring`] (0: the
    /// last day).
    pub days: Option<u32>,
    /// The deadline, for [`EventKind::Expiring`] and [`EventKind::Expired`].
    pub expires_at: Option<Timestamp>,
}

impl Event {
    /// The event `entry` records, if it is one: the entries of a token's
    /// creation, rotation, revocation, disabling, enabling, replayed
    /// secret and expiry notices. A revocation of a user's tokens is one event per token.
    pub fn from_audit(entry: &AuditEntry) -> Option<Event> {
        let kind = match entry.action {
            AuditAction::Create => EventKind::Created,
            AuditAction::Rotate => EventKind::Rotated,
            AuditAction::Revoke => EventKind::Revoked,
            AuditAction::Disable => EventKind::Disabled,
            AuditAction::Enable => EventKind::Enabled,
            AuditAction::ReplayedSecret => EventKind::Replayed,
            AuditAction::Expiring => EventKind::Expiring,
            AuditAction::Expired => EventKind::Expired,
            _ => return None,
        };
        let (days, expires_at) = crate::model::notice::parse_outcome(entry.action, &entry.outcome);
        Some(Event {
            seq: entry.seq,
            at: entry.at,
            kind,
            token_id: entry.token_id?,
            user: entry.user.clone(),
            actor: entry.actor.clone(),
            cause: (kind == EventKind::Revoked).then(|| RevokeCause::of(entry)),
            days,
            expires_at,
        })
    }

    /// Its id: `evt_SEQ`, the same on every delivery of it.
    pub fn id(&self) -> String {
        format!("evt_{}", self.seq)
    }

    /// The JSON a webhook receives:
    /// `{"id","type","at","token_id","user","actor"}`, with `"cause"` for a
    /// revocation, `"days"` and `"expires_at"` for an expiry notice; times
    /// in RFC 3339.
    pub fn to_json(&self) -> String {
        let mut body = serde_json::json!({
            "id": self.id(),
            "type": self.kind.as_str(),
            "at": self.at.to_string(),
            "token_id": self.token_id.to_string(),
            "user": self.user,
            "actor": self.actor,
        });
        if let Some(cause) = self.cause {
            body["cause"] = cause.as_str().into();
        }
        if let Some(days) = self.days {
            body["days"] = days.into();
        }
        if let Some(at) = self.expires_at {
            body["expires_at"] = at.to_string().into();
        }
        body.to_string()
    }
}

/// The events among `entries` after place `after`, oldest first, at most
/// `limit`: what [`Admin::events`](crate::Admin::events) answers from an
/// audit log.
pub(crate) fn events_in(
    entries: impl IntoIterator<Item = AuditEntry>,
    after: u64,
    limit: usize,
) -> Result<Vec<Event>, crate::StoreError> {
    let mut out = Vec::new();
    for e in entries {
        // Places start at 1: a log without them would read as empty.
        if e.seq == 0 {
            return Err(crate::StoreError::Unnumbered);
        }
        if e.seq > after && out.len() < limit {
            out.extend(Event::from_audit(&e));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_without_places_is_an_error_not_an_empty_stream() {
        let unnumbered = entry(AuditAction::Create, "cli", "ok").at_seq(0);
        assert!(matches!(
            events_in([unnumbered.clone()], 0, 10),
            Err(crate::StoreError::Unnumbered)
        ));
        let numbered = events_in([unnumbered.at_seq(1)], 0, 10).unwrap();
        assert_eq!(numbered.len(), 1);
    }

    fn entry(action: AuditAction, actor: &str, outcome: &str) -> AuditEntry {
        AuditEntry::new(
            Timestamp::from_unix_secs(1_800_000_000).unwrap(),
            action,
            Some(TokenId::from_u64(7)),
            "alice",
            actor,
            outcome,
        )
        .at_seq(3)
    }

    #[test]
    fn each_revocation_names_its_cause() {
        let cause = |actor: &str, outcome: &str| {
            Event::from_audit(&entry(AuditAction::Revoke, actor, outcome))
                .unwrap()
                .cause
        };
        assert_eq!(cause("root", "ok"), Some(RevokeCause::Admin));
        assert_eq!(cause("uid 0", "ok"), Some(RevokeCause::Admin));
        assert_eq!(
            cause("token 00000000000000aa", "ok"),
            Some(RevokeCause::Api)
        );
        assert_eq!(cause("user alice", "ok"), Some(RevokeCause::Api));
        assert_eq!(
            cause("reported leaked by 192.0.2.1", "ok"),
            Some(RevokeCause::LeakReport)
        );
        assert_eq!(
            cause(r#"GitHub secret scanning ("content": "x")"#, "ok"),
            Some(RevokeCause::LeakReport)
        );
        assert_eq!(
            cause(REUSE_ACTOR, crate::backend::authority::REUSE_OUTCOME),
            Some(RevokeCause::ReuseDetection)
        );
        assert_eq!(
            cause("root", &format!("{PARENT_REVOKED}00000000000000aa)")),
            Some(RevokeCause::ParentRevoked)
        );
        assert_eq!(
            cause("root", crate::backend::engine::LAST_SCOPE_OUTCOME),
            Some(RevokeCause::PermissionRemoved)
        );
    }

    #[test]
    fn only_changes_to_one_token_are_events() {
        let created = Event::from_audit(&entry(AuditAction::Create, "root", "ok")).unwrap();
        assert_eq!(created.kind, EventKind::Created);
        assert_eq!(created.cause, None);
        assert_eq!(created.id(), "evt_3");
        for action in [
            AuditAction::Prune,
            AuditAction::SetPolicy,
            AuditAction::Shorten,
        ] {
            assert_eq!(Event::from_audit(&entry(action, "root", "ok")), None);
        }
        let mut user_wide = entry(AuditAction::RevokeUser, "root", "1 token");
        user_wide.token_id = None;
        assert_eq!(Event::from_audit(&user_wide), None);
    }

    #[test]
    fn the_body_is_json_whatever_the_names_hold() {
        let mut e = Event::from_audit(&entry(AuditAction::Revoke, "root", "ok")).unwrap();
        e.user = "a\"l\u{1b}[2Jice\n".into();
        let body: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(body["user"], "a\"l\u{1b}[2Jice\n");
        assert_eq!(body["type"], "token.revoked");
        assert_eq!(body["cause"], "admin");
        assert_eq!(body["id"], "evt_3");
        assert_eq!(body["token_id"], "0000000000000007");
        assert_eq!(body["at"], "2027-01-15T08:00:00Z");
    }
}
