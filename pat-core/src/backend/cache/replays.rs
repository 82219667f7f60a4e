//! Old secrets presented after their grace: refused from memory after the
//! first read, logged each time, and written to the audit log by the next
//! flush, once per token per flush however often they are presented.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::{Cache, Unknown, lock};
use crate::error::AuthError;
use crate::model::audit::AuditEntry;
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId};

/// Whose old secret a remembered digest is.
pub(super) struct Replay {
    id: TokenId,
    user: String,
}

/// The audit entries waiting for the next flush, one per token, and the
/// revocations reuse detection asked for.
#[derive(Default)]
pub(super) struct PendingAudit {
    entries: HashMap<TokenId, AuditEntry>,
    /// Entries not kept because the bound was reached, since the last
    /// report of it.
    dropped: u64,
    /// Tokens whose family the next flush revokes.
    revoke: std::collections::BTreeSet<TokenId>,
}

/// The least number of audit entries kept for the next flush, whatever the
/// cache capacity.
const MIN_PENDING_AUDIT: usize = 64;

impl Cache {
    /// An old secret of token `id` (of `user`), presented after its grace
    /// ended: remembered, so presenting it again costs no read, and noted
    /// for the audit log. The answer is [`AuthError::Unknown`], as for any
    /// unknown token.
    pub(crate) fn replayed(
        &self,
        digest: TokenDigest,
        id: TokenId,
        user: &str,
        now: Timestamp,
    ) -> AuthError {
        let replay = Arc::new(Replay {
            id,
            user: user.to_owned(),
        });
        self.note_replay(&replay, now);
        self.remember_unknown(
            digest,
            Unknown {
                at: Instant::now(),
                replay: Some(replay),
            },
        );
        AuthError::Unknown
    }

    /// Notes a replay for the audit log, unless this token's is noted
    /// already, and logs it (every replay is logged: the log is where an
    /// operator sees a theft as it happens).
    pub(super) fn note_replay(&self, replay: &Replay, now: Timestamp) {
        crate::backend::warn_replay(replay.id);
        let bound = self.capacity.max(MIN_PENDING_AUDIT);
        let mut pending = lock(&self.audit);
        if pending.entries.contains_key(&replay.id) {
            return;
        }
        if pending.entries.len() >= bound {
            pending.dropped += 1;
            return;
        }
        pending.entries.insert(
            replay.id,
            AuditEntry::replayed(replay.id, &replay.user, now),
        );
    }

    /// The audit entries to write with the next flush.
    pub(crate) fn take_audit(&self) -> Vec<AuditEntry> {
        let mut pending = lock(&self.audit);
        if pending.dropped > 0 {
            tracing::warn!(
                dropped = pending.dropped,
                "audit entries of replayed secrets were dropped: too many waited for a \
                 write (is the store writable?)"
            );
            pending.dropped = 0;
        }
        let mut entries: Vec<AuditEntry> = pending.entries.drain().map(|(_, e)| e).collect();
        entries.sort_by_key(|e| e.at);
        entries
    }

    /// Audit entries a failed flush could not write: kept for the next one,
    /// within the same bound.
    pub(crate) fn unwritten_audit(&self, entries: Vec<AuditEntry>) {
        let bound = self.capacity.max(MIN_PENDING_AUDIT);
        let mut pending = lock(&self.audit);
        for e in entries {
            let Some(id) = e.token_id else { continue };
            if pending.entries.len() >= bound {
                pending.dropped += 1;
            } else {
                pending.entries.entry(id).or_insert(e);
            }
        }
    }

    /// Reuse detection: an old secret of token `root` was presented after
    /// its grace. Its family (`digests`, the token's current one and its
    /// descendants') is refused from now on, in memory, and revoked by the
    /// next flush (the request path never writes). Under the lock inserts
    /// take, so a lookup that read a record before cannot cache it after.
    pub(crate) fn reused(&self, root: TokenId, digests: &[TokenDigest]) {
        {
            let _clock = lock(&self.clock);
            let guard = self.records.guard();
            let mut buffer = lock(&self.buffer);
            for d in digests {
                buffer.refused.insert(*d);
                if let Some(e) = self.records.get(d, &guard) {
                    e.mark_refused();
                }
            }
        }
        lock(&self.audit).revoke.insert(root);
    }

    /// Whether reuse detection refuses `digest` until the next flush
    /// revokes its token: a change to that token is refused as if it were
    /// gone.
    pub(crate) fn refused(&self, digest: &TokenDigest) -> bool {
        lock(&self.buffer).refused.contains(digest)
    }

    /// The tokens whose families the next flush revokes.
    pub(crate) fn take_revocations(&self) -> Vec<TokenId> {
        std::mem::take(&mut lock(&self.audit).revoke)
            .into_iter()
            .collect()
    }

    /// Revocations a failed flush could not write: kept for the next one
    /// (their tokens stay refused meanwhile).
    pub(crate) fn unrevoked(&self, roots: Vec<TokenId>) {
        lock(&self.audit).revoke.extend(roots);
    }

    /// How many audit entries wait for a flush.
    #[cfg(any(test, feature = "failpoints"))]
    pub(super) fn audit_len(&self) -> usize {
        lock(&self.audit).entries.len()
    }
}
