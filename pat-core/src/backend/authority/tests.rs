//! The authority rule on records alone; the stores' side is in the
//! conformance cases every backend passes.

use std::time::Duration;

use super::*;
use crate::{ExpiryPolicy, NewToken, Scope};

const MIN: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

fn at(secs: u64) -> Timestamp {
    Timestamp::from_unix_secs(secs).unwrap()
}

fn token(expiry: ExpiryPolicy, now: u64) -> TokenInfo {
    NewToken::new("alice", expiry)
        .to_info(TokenId::generate(), at(now))
        .unwrap()
}

fn scopes(list: &[&str]) -> Scopes {
    list.iter().map(|s| s.parse::<Scope>().unwrap()).collect()
}

const NODE: &str = "0b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a";

#[test]
fn a_child_lives_no_longer_and_reaches_no_further_than_its_parent() {
    let mut parent = token(ExpiryPolicy::hard(30 * MIN), 0);
    parent.scopes = scopes(&[&format!("node:{NODE}:rw")]);
    let mut child = token(ExpiryPolicy::hard(30 * MIN), 0);
    child.scopes = scopes(&[&format!("node:{NODE}:r")]);
    adopt(&parent, &mut child, at(0)).unwrap();
    assert_eq!(child.not_after, Some(at(1800)), "inherits the parent's end");
    // A second past the parent: refused, naming its deadline.
    let mut late = token(ExpiryPolicy::hard(30 * MIN), 1);
    late.scopes = child.scopes.clone();
    let e = adopt(&parent, &mut late, at(1)).unwrap_err();
    assert_eq!(
        e,
        AuthorityViolation::OutlivesParent {
            limit: at(1800),
            asked: Some(at(1801))
        }
    );
    // A sliding child without a cap could live forever.
    let mut forever = token(ExpiryPolicy::sliding(MIN, None), 0);
    forever.scopes = child.scopes.clone();
    let e = adopt(&parent, &mut forever, at(0)).unwrap_err();
    assert!(e.to_string().contains("max lifetime"), "{e}");
    // Wider scopes, or none at all.
    for wide in [
        scopes(&[]),
        scopes(&[
            &format!("node:{NODE}:rw"),
            "node:1b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a:r",
        ]),
    ] {
        let mut c = token(ExpiryPolicy::hard(MIN), 0);
        c.scopes = wide;
        assert!(matches!(
            adopt(&parent, &mut c, at(0)),
            Err(AuthorityViolation::Wider(_))
        ));
    }
    // An expired parent makes nothing.
    let mut c = token(ExpiryPolicy::hard(MIN), 1800);
    assert_eq!(
        adopt(&parent, &mut c, at(1800)),
        Err(AuthorityViolation::NoParent(parent.id))
    );
}

// Issue 21, finding 2: a child minted for 10 minutes rotated itself to a
// century, and a sliding token capped at 10 minutes dropped its cap with
// `auto=1m`; every rotation restarted the clock.
#[test]
fn a_rotation_stays_inside_the_envelope() {
    let none = Policy::NONE;
    let ten = token(ExpiryPolicy::hard(10 * MIN), 0);
    // Renewing itself for its own duration: fine, for a root.
    let renewed = rotate(&ten, &Rotation::new(), None, &none, at(300)).unwrap();
    assert_eq!(renewed.expiry.expires_at(), at(900));
    // A century: refused.
    let century = Rotation::new().expiry(ExpiryPolicy::hard(36_500 * DAY));
    assert!(matches!(
        rotate(&ten, &century, None, &none, at(300)),
        Err(StoreError::Authority(AuthorityViolation::Longer { .. }))
    ));
    // The cap counts from the first issue, whatever the rotation asks.
    let capped = token(ExpiryPolicy::sliding(MIN, Some(10 * MIN)), 0);
    let r = Rotation::new().expiry(ExpiryPolicy::sliding(MIN, None));
    let rotated = rotate(&capped, &r, None, &none, at(300)).unwrap();
    assert_eq!(rotated.latest_possible(), Some(at(600)), "the cap stays");
    let again = rotate(&rotated, &Rotation::new(), None, &none, at(590)).unwrap();
    assert_eq!(again.expiry.expires_at(), at(600));
    assert!(
        rotate(&again, &Rotation::new(), None, &none, at(600)).is_err(),
        "past its end"
    );
    // The policy's maximum counts from the first issue too.
    let policy = Policy::NONE.max_lifetime(Some(30 * DAY));
    let daily = token(ExpiryPolicy::hard(DAY), 0);
    let day29 = rotate(&daily, &Rotation::new(), None, &policy, at(29 * 86_400)).unwrap();
    assert_eq!(day29.expiry.expires_at(), at(30 * 86_400));
    let e = rotate(&day29, &Rotation::new(), None, &policy, at(29 * 86_400 + 1)).unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Policy(crate::PolicyViolation::Lifetime { .. })
        ),
        "{e}"
    );
    assert!(e.to_string().contains("30d"), "{e}");
    // A parent bounds it.
    let parent = token(ExpiryPolicy::hard(30 * MIN), 0);
    let mut child = token(ExpiryPolicy::hard(10 * MIN), 0);
    child.parent = Some(parent.id);
    let ok = rotate(&child, &Rotation::new(), Some(&parent), &none, at(1200)).unwrap();
    assert_eq!(ok.expiry.expires_at(), at(1800));
    assert!(matches!(
        rotate(&child, &Rotation::new(), Some(&parent), &none, at(1201)),
        Err(StoreError::Authority(
            AuthorityViolation::OutlivesParent { .. }
        ))
    ));
}

#[test]
fn only_a_new_lifetime_starts_the_clock_again() {
    let capped = token(ExpiryPolicy::sliding(MIN, Some(10 * MIN)), 0);
    let r = Rotation::new().new_lifetime(ExpiryPolicy::hard(DAY));
    let renewed = rotate(&capped, &r, None, &Policy::NONE, at(500)).unwrap();
    assert_eq!(renewed.lifetime_from, at(500));
    assert_eq!(renewed.expiry.expires_at(), at(500 + 86_400));
    // Within the policy, counted from now.
    let policy = Policy::NONE.max_lifetime(Some(DAY / 2));
    assert!(matches!(
        rotate(&capped, &r, None, &policy, at(500)),
        Err(StoreError::Policy(_))
    ));
}

// Finding 1: `grace` had no upper bound (36500 days were accepted).
#[test]
fn a_grace_is_capped_by_the_policy_and_the_old_deadline() {
    let t = token(ExpiryPolicy::hard(7 * DAY), 0);
    let century = Rotation::new().grace(36_500 * DAY);
    assert_eq!(
        grace_end(&t, &century, &Policy::NONE, at(10)),
        at(10 + 86_400)
    );
    let hour = Policy::NONE.max_grace(Some(Duration::from_secs(3600)));
    assert_eq!(grace_end(&t, &century, &hour, at(10)), at(3610));
    let brief = token(ExpiryPolicy::hard(MIN), 0);
    assert_eq!(grace_end(&brief, &century, &Policy::NONE, at(10)), at(60));
    assert_eq!(
        grace_end(&t, &Rotation::new(), &Policy::NONE, at(10)),
        at(10)
    );
}

#[test]
fn shortening_a_token_brings_its_family_within_it() {
    let mut root = token(ExpiryPolicy::hard(DAY), 0);
    let mut child = token(ExpiryPolicy::hard(DAY / 2), 0);
    child.parent = Some(root.id);
    let mut grandchild = token(ExpiryPolicy::sliding(MIN, Some(DAY / 2)), 0);
    grandchild.parent = Some(child.id);
    let mut short = token(ExpiryPolicy::hard(MIN), 0);
    short.parent = Some(root.id);
    let all = [child.clone(), grandchild.clone(), short.clone()];
    let children = |p: TokenId| -> Result<Vec<TokenInfo>, std::convert::Infallible> {
        Ok(all
            .iter()
            .filter(|t| t.parent == Some(p))
            .cloned()
            .collect())
    };
    // The root now ends in an hour.
    root.expiry = root.expiry.limited_to(at(3600));
    let clamped = clamp_family(&root, children).unwrap();
    let ids: Vec<TokenId> = clamped.iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), 2, "the short one is within already");
    assert!(ids.contains(&child.id) && ids.contains(&grandchild.id));
    for t in &clamped {
        assert_eq!(t.latest_possible(), Some(at(3600)));
    }
    assert_eq!(descendants_in(&all, root.id).len(), 3);
}

#[test]
fn a_change_of_model_keeps_the_envelope() {
    let policy = Policy::default();
    // Capped sliding → uncapped sliding: the cap stays, said by the record.
    let capped = token(ExpiryPolicy::sliding(10 * MIN, Some(DAY)), 0);
    let r = Rotation::new().expiry(ExpiryPolicy::sliding(MIN, None));
    let next = rotate(&capped, &r, None, &policy, at(600)).unwrap();
    assert_eq!(next.expiry.max_lifetime(), Some(DAY));
    assert_eq!(next.latest_possible(), Some(at(86_400)));
    // A larger cap asked for is not given.
    let r = Rotation::new().expiry(ExpiryPolicy::sliding(MIN, Some(2 * DAY)));
    let next = rotate(&capped, &r, None, &policy, at(600)).unwrap();
    assert_eq!(next.expiry.max_lifetime(), Some(DAY));
    // Hard → sliding: ends by now + the hard lifetime, however used.
    let hard = token(ExpiryPolicy::hard(DAY), 0);
    let r = Rotation::new().expiry(ExpiryPolicy::sliding(MIN, None));
    let next = rotate(&hard, &r, None, &policy, at(100)).unwrap();
    assert_eq!(next.latest_possible(), Some(at(100 + 86_400)));
    let used = next.check_use(None, at(150)).unwrap();
    assert_eq!(used, at(210));
    // Capped sliding → hard: ends by the cap.
    let r = Rotation::new().expiry(ExpiryPolicy::hard(10 * MIN));
    let next = rotate(&capped, &r, None, &policy, at(86_000)).unwrap();
    assert_eq!(next.expiry.expires_at(), at(86_400));
}

#[test]
fn old_graces_are_bounded_to_one_a_day_long() {
    let (a, b) = (TokenId::from_u64(1), TokenId::from_u64(2));
    let century = at(100).saturating_add(DAY * 36_500);
    let mut graces = vec![
        ("a1", a, at(50)),    // ended already
        ("a2", a, century),   // the last: kept, a day at most
        ("a3", a, at(5_000)), // ends now
        ("b1", b, at(1_000)), // kept as it is
    ];
    let kept = bound_old_graces(&mut graces, at(100));
    assert_eq!(kept, [(a, at(100 + 86_400)), (b, at(1_000))]);
    let ends: Vec<_> = graces.iter().map(|g| (g.0, g.2)).collect();
    assert_eq!(
        ends,
        [
            ("a1", at(50)),
            ("a2", at(100 + 86_400)),
            ("a3", at(100)),
            ("b1", at(1_000))
        ]
    );
}

#[test]
fn a_sliding_parent_rotated_to_a_shorter_window_takes_its_family_down() {
    let policy = Policy::default();
    let parent = token(ExpiryPolicy::sliding(30 * DAY, Some(90 * DAY)), 0);
    let mut child = token(ExpiryPolicy::hard(29 * DAY), 0);
    child.parent = Some(parent.id);
    let r = Rotation::new().expiry(ExpiryPolicy::sliding(MIN, None));
    let next = rotate(&parent, &r, None, &policy, at(100)).unwrap();
    assert_eq!(
        next.latest_possible(),
        Some(at(90 * 86_400)),
        "its cap stays"
    );
    let all = [child.clone()];
    let clamped = clamp_family(&next, |p| {
        Ok::<_, std::convert::Infallible>(
            all.iter()
                .filter(|t| t.parent == Some(p))
                .cloned()
                .collect(),
        )
    })
    .unwrap();
    assert_eq!(clamped.len(), 1);
    assert_eq!(
        clamped[0].latest_possible(),
        Some(at(160)),
        "the parent's new deadline"
    );
}

#[test]
fn descendants_are_counted_in_one_pass_even_down_a_long_chain() {
    // A chain of 5,000 tokens, each made with the one before, and a cycle a
    // damaged store could hold.
    let mut chain: Vec<TokenInfo> = (0..5_000)
        .map(|_| token(ExpiryPolicy::hard(DAY), 0))
        .collect();
    for i in 1..chain.len() {
        chain[i].parent = Some(chain[i - 1].id);
    }
    let counts = descendant_counts(&chain);
    assert_eq!(counts[&chain[0].id], 4_999);
    assert_eq!(counts[&chain[4_000].id], 999);
    assert_eq!(counts[&chain[4_999].id], 0);
    assert_eq!(descendants_in(&chain, chain[0].id).len(), 4_999);
    let (mut a, mut b) = (
        token(ExpiryPolicy::hard(DAY), 0),
        token(ExpiryPolicy::hard(DAY), 0),
    );
    a.parent = Some(b.id);
    b.parent = Some(a.id);
    let cycle = [a.clone(), b];
    let _ = descendant_counts(&cycle);
    assert_eq!(descendants_in(&cycle, a.id).len(), 1);
}

#[test]
fn a_mark_of_a_token_gone_is_the_marked_tokens_to_lift() {
    let gone = TokenId::generate();
    let mut t = token(ExpiryPolicy::hard(30 * MIN), 0);
    t.disabled_by = Some(gone);
    // Still stored: the ancestor must be enabled instead.
    assert!(matches!(
        suspension(&t, None, true, &[], false),
        Err(crate::SuspensionError::Inherited { by, .. }) if by == gone
    ));
    // Pruned: nothing could ever enable it otherwise.
    let lifted = suspension(&t, None, false, &[], false).unwrap();
    assert_eq!(lifted.len(), 1);
    assert_eq!(lifted[0].disabled_by, None);
    // Nothing to do is nothing written.
    assert!(
        suspension(&lifted[0], None, false, &[], false)
            .unwrap()
            .is_empty()
    );
}
