//! The audit log: every management action, appended in the same store and
//! the same transaction as the action itself.

use std::fmt;
use std::time::Duration;

use crate::model::time::Timestamp;
use crate::model::token::TokenId;

/// How long `prune` keeps audit entries by default: 90 days.
pub const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(90 * 86_400);

/// The actor of an [`Admin`](crate::Admin) call made without
/// [`acting_as`](crate::Admin::acting_as): the program that holds the store
/// handle.
pub const DEFAULT_ACTOR: &str = "api";

/// What was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditAction {
    /// A token was created.
    Create,
    /// A token got a new secret.
    Rotate,
    /// A token was revoked.
    Revoke,
    /// Every token of a user was revoked.
    RevokeUser,
    /// Expired tokens were deleted.
    Prune,
    /// The store's policy was changed.
    SetPolicy,
    /// A secret retired by a rotation was presented after its grace (it
    /// may have been stolen); the request was refused.
    ReplayedSecret,
    /// A token's latest possible deadline was brought down to its parent's,
    /// after a rotation shortened the parent (see [`crate::backend::authority`]).
    Shorten,
    /// The store's token prefix was changed (the former ones keep working).
    SetPrefix,
    /// A named permission was added to the catalog, or its definition
    /// changed (the outcome names it).
    DefinePermission,
    /// A named permission was taken out of the catalog (the outcome names
    /// it).
    RemovePermission,
    /// A token lost a named permission taken out of the catalog by force.
    LosePermission,
    /// A token was disabled (suspended): refused until enabled. Its
    /// descendants are disabled with it, each with its own entry.
    Disable,
    /// A disabled token was enabled again, with the descendants its
    /// disabling had reached.
    Enable,
    /// A token's latest deadline came within a notice threshold (the
    /// outcome names it: `7 days before 2027-01-08T00:00:00Z`); once per
    /// token, threshold and deadline ([`Admin::notify_expiring`](crate::Admin::notify_expiring)).
    Expiring,
    /// A token reached its latest deadline (`at 2027-01-08T00:00:00Z`);
    /// once per token and deadline.
    Expired,
    /// An event a webhook gave up marked to be sent again
    /// ([`Admin::resend_event`](crate::Admin::resend_event); `evt_SEQ to
    /// WEBHOOK`), of the event's token.
    ResendEvent,
}

impl AuditAction {
    const ALL: [AuditAction; 17] = [
        AuditAction::Create,
        AuditAction::Rotate,
        AuditAction::Revoke,
        AuditAction::RevokeUser,
        AuditAction::Prune,
        AuditAction::SetPolicy,
        AuditAction::ReplayedSecret,
        AuditAction::Shorten,
        AuditAction::SetPrefix,
        AuditAction::DefinePermission,
        AuditAction::RemovePermission,
        AuditAction::LosePermission,
        AuditAction::Disable,
        AuditAction::Enable,
        AuditAction::Expiring,
        AuditAction::Expired,
        AuditAction::ResendEvent,
    ];

    /// Its name in listings and storage (`revoke_user`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            AuditAction::Create => "create",
            AuditAction::Rotate => "rotate",
            AuditAction::Revoke => "revoke",
            AuditAction::RevokeUser => "revoke_user",
            AuditAction::Prune => "prune",
            AuditAction::SetPolicy => "set_policy",
            AuditAction::ReplayedSecret => "replayed_secret",
            AuditAction::Shorten => "shorten",
            AuditAction::SetPrefix => "set_prefix",
            AuditAction::DefinePermission => "define_permission",
            AuditAction::RemovePermission => "remove_permission",
            AuditAction::LosePermission => "lose_permission",
            AuditAction::Disable => "disable",
            AuditAction::Enable => "enable",
            AuditAction::Expiring => "expiring",
            AuditAction::Expired => "expired",
            AuditAction::ResendEvent => "resend_event",
        }
    }

    /// The action named `name` (see [`as_str`](AuditAction::as_str)).
    pub fn from_name(name: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// Its code in the redb store's encoding (Unix only).
    #[cfg_attr(not(all(unix, feature = "redb")), allow(dead_code))]
    pub(crate) const fn code(self) -> u8 {
        self as u8
    }

    /// The action of a code (see [`code`](AuditAction::code)).
    #[cfg_attr(not(all(unix, feature = "redb")), allow(dead_code))]
    pub(crate) fn from_code(code: u8) -> Option<AuditAction> {
        AuditAction::ALL.get(usize::from(code)).copied()
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the audit log. Never a secret: tokens appear by id.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditEntry {
    /// Its place in the store's log, from 1: every entry a store commits
    /// after another has a greater one, on every replica (the order of
    /// [`Admin::events`](crate::Admin::events)); 0 for an entry not read
    /// from a store.
    pub seq: u64,
    /// When.
    pub at: Timestamp,
    /// What.
    pub action: AuditAction,
    /// The token concerned, if one.
    pub token_id: Option<TokenId>,
    /// The user concerned (the token's, or the one whose tokens were
    /// revoked); empty for store-wide actions.
    pub user: String,
    /// Who: the OS user behind the CLI, `uid N` for an admin socket peer
    /// (checked by the kernel), `token ID` for self-service, or
    /// [`DEFAULT_ACTOR`].
    pub actor: String,
    /// What came of it (`ok`, `refused`, `3 tokens`, the new policy...).
    pub outcome: String,
}

impl AuditEntry {
    /// An entry at `at`, for backends.
    pub fn new(
        at: Timestamp,
        action: AuditAction,
        token_id: Option<TokenId>,
        user: impl Into<String>,
        actor: impl Into<String>,
        outcome: impl Into<String>,
    ) -> AuditEntry {
        AuditEntry {
            seq: 0,
            at,
            action,
            token_id,
            user: user.into(),
            actor: actor.into(),
            outcome: outcome.into(),
        }
    }

    /// The outcome of an action on `n` tokens (`1 token`, `3 tokens`), as
    /// every backend writes it for revoke-user and prune.
    pub fn count_outcome(n: usize) -> String {
        format!("{n} token{}", if n == 1 { "" } else { "s" })
    }

    /// The entry of a policy change to `policy` by `actor` at `at`, as
    /// every backend writes it.
    pub(crate) fn policy_set(
        policy: &crate::model::policy::Policy,
        actor: &str,
        at: Timestamp,
    ) -> AuditEntry {
        AuditEntry::new(
            at,
            AuditAction::SetPolicy,
            None,
            "",
            actor,
            policy.summary(),
        )
    }

    /// The entry of `actor` making `prefix` the store's at `at`.
    /// The entry of failed event `failed` of webhook `sink` marked to be
    /// sent again by `actor`: of the event's token and user.
    pub(crate) fn resend(
        sink: &str,
        failed: &crate::FailedEvent,
        actor: &str,
        at: Timestamp,
    ) -> AuditEntry {
        let body: serde_json::Value = serde_json::from_str(&failed.body).unwrap_or_default();
        let token = body["token_id"].as_str().and_then(|id| id.parse().ok());
        AuditEntry::new(
            at,
            AuditAction::ResendEvent,
            token,
            body["user"].as_str().unwrap_or_default(),
            actor,
            format!("evt_{} to {sink}", failed.seq),
        )
    }

    pub(crate) fn prefix_set(
        prefix: crate::model::prefix::Prefix,
        actor: &str,
        at: Timestamp,
    ) -> AuditEntry {
        AuditEntry::new(
            at,
            AuditAction::SetPrefix,
            None,
            "",
            actor,
            format!("prefix {prefix}"),
        )
    }

    /// The entry of a prune by `actor` at `at` that deleted `n` tokens.
    pub(crate) fn pruned(n: usize, actor: &str, at: Timestamp) -> AuditEntry {
        AuditEntry::new(
            at,
            AuditAction::Prune,
            None,
            "",
            actor,
            AuditEntry::count_outcome(n),
        )
    }

    /// The entry of token `id`'s (of `user`) replaced secret presented
    /// after its grace, at `at`: refused, by no one the store knows.
    pub(crate) fn replayed(id: TokenId, user: &str, at: Timestamp) -> AuditEntry {
        AuditEntry::new(
            at,
            AuditAction::ReplayedSecret,
            Some(id),
            user,
            "-",
            "refused",
        )
    }

    /// This entry at place `seq` of a store's log.
    pub(crate) fn at_seq(mut self, seq: u64) -> AuditEntry {
        self.seq = seq;
        self
    }

    /// Whether it belongs in a listing from `since`, of `user` or all.
    pub fn matches(&self, since: Timestamp, user: Option<&str>) -> bool {
        self.at >= since && user.is_none_or(|u| self.user == u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_and_codes_round_trip() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::from_name(a.as_str()), Some(a));
            assert_eq!(AuditAction::from_code(a.code()), Some(a));
        }
        assert_eq!(AuditAction::from_code(200), None);
        assert_eq!(AuditAction::from_name("drop"), None);
    }
}
