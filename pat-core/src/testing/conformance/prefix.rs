//! The contract case of a store's token prefix: chosen, changed, kept.

use crate::{
    AuditAction, MAX_PREFIXES, ParseTokenError, Prefix, PrefixError, Rotation, StoreError,
    Timestamp, TokenSecret,
};

use super::Backend;
use super::harness::{MIN, at, auth, create, hard};

fn prefix(s: &str) -> Prefix {
    s.parse().expect("a prefix")
}

fn prefix_changes(b: &dyn Backend) -> usize {
    b.audit(Timestamp::UNIX_EPOCH, None)
        .expect("audit")
        .iter()
        .filter(|e| e.action == AuditAction::SetPrefix)
        .count()
}

/// A new token carries the current prefix; a changed prefix keeps the
/// tokens of the former ones working (the store lists them, the request
/// path takes them), a prefix the store never had is not its own, setting
/// the current one changes nothing, a former one comes back, and a store
/// takes at most [`MAX_PREFIXES`]. A backend that keeps no prefix of its
/// own says so ([`PrefixError::Fixed`]) and keeps `pat`.
pub(super) fn prefix_change(b: &dyn Backend) {
    let current = b.token_prefixes().expect("prefixes")[0];
    assert_eq!(b.prefixes().current(), current);
    let old = create(b, &hard("alice", MIN), 0);
    assert_eq!(old.secret.prefix(), current);
    let acme = prefix(if current.as_str() == "acme" {
        "acme2"
    } else {
        "acme"
    });
    match b.set_prefix(acme) {
        Err(StoreError::Prefix(PrefixError::Fixed)) => {
            assert_eq!(b.token_prefixes().expect("prefixes"), [Prefix::DEFAULT]);
            return;
        }
        r => r.expect("set the prefix"),
    }
    assert_eq!(b.token_prefixes().expect("prefixes"), [acme, current]);
    assert_eq!(
        b.prefixes().all(),
        [acme, current],
        "the request path's set"
    );
    assert_eq!(prefix_changes(b), 1, "audited");

    let new = create(b, &hard("bob", MIN), 0);
    assert_eq!(new.secret.prefix(), acme);
    auth(b, &old.secret, 1).expect("a token of the former prefix works");
    auth(b, &new.secret, 1).expect("a token of the new prefix works");
    let rotated = b
        .rotate(old.info.id, &Rotation::new(), at(2))
        .expect("rotate");
    assert_eq!(
        rotated.secret.prefix(),
        acme,
        "a rotation makes the current"
    );
    auth(b, &rotated.secret, 3).expect("the rotated secret works");

    let never = TokenSecret::generate_with(prefix("never"));
    assert_eq!(
        b.prefixes().digest(never.expose_secret()),
        Err(ParseTokenError::Foreign),
        "a prefix the store never had is not its own"
    );

    b.set_prefix(acme).expect("the current again");
    assert_eq!(prefix_changes(b), 1, "setting the current changes nothing");
    b.set_prefix(current).expect("a former one again");
    assert_eq!(b.token_prefixes().expect("prefixes"), [current, acme]);
    assert_eq!(b.prefixes().current(), current);
    assert_eq!(create(b, &hard("carol", MIN), 4).secret.prefix(), current);
    auth(b, &new.secret, 5).expect("the tokens of every former prefix work");

    for i in 2..MAX_PREFIXES {
        b.set_prefix(prefix(&format!("p{i}"))).expect("room for it");
    }
    assert_eq!(b.token_prefixes().expect("prefixes").len(), MAX_PREFIXES);
    assert!(matches!(
        b.set_prefix(prefix("onemore")),
        Err(StoreError::Prefix(PrefixError::TooMany))
    ));
    b.set_prefix(acme).expect("a former one, even when full");
    assert_eq!(b.prefixes().all().len(), MAX_PREFIXES);
    auth(b, &new.secret, 6).expect("still working");
}
