//! The contract case of the address rule: a token used from its networks
//! only, a refused use recording nothing, and no child wider than its
//! parent.

use std::net::IpAddr;

use crate::{AuthError, Cidr, Rotation, StoreError};

use super::Backend;
use super::harness::{MIN, at, auth, auth_from, create, sliding};

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().expect("an address"))
}

fn net(s: &str) -> Cidr {
    s.parse().expect("a network")
}

pub(super) fn used_from_its_networks_only(b: &dyn Backend) {
    let ruled = sliding("alice", 10 * MIN, Some(60 * MIN))
        .allow_from([net("10.0.0.0/8"), net("2001:db8::/32")]);
    let t = create(b, &ruled, 1);
    assert_eq!(t.info.allow_from.len(), 2);
    let inside = auth_from(b, &t.secret, ip("10.1.2.3"), 2).expect("from its network");
    let deadline = inside.expires_at();
    auth_from(b, &t.secret, ip("2001:db8::7"), 2).expect("from its IPv6 network");
    auth_from(b, &t.secret, ip("::ffff:10.9.9.9"), 2).expect("IPv4-mapped counts as IPv4");
    // From elsewhere, or from nowhere known: refused, first read or cached,
    // and the refusal moves nothing.
    for client in [ip("192.0.2.1"), ip("2001:db9::1"), None] {
        assert!(
            matches!(
                auth_from(b, &t.secret, client, 200),
                Err(AuthError::AddressNotAllowed)
            ),
            "{client:?}"
        );
    }
    let held = b.get(t.info.id).expect("get");
    assert_eq!(
        held.expiry.expires_at(),
        deadline,
        "a refused use extended it"
    );
    assert_eq!(held.last_used_at, Some(at(2)));
    assert_eq!(held.allow_from, t.info.allow_from, "kept");
    // A token without a rule is used from anywhere, known or not.
    let open = create(b, &sliding("alice", 10 * MIN, None), 1);
    auth_from(b, &open.secret, ip("192.0.2.1"), 3).expect("no rule");
    auth(b, &open.secret, 3).expect("no rule, no address");
    // A rotation keeps the rule.
    let rotated = b
        .rotate(t.info.id, &Rotation::new(), at(4))
        .expect("rotate");
    assert!(matches!(
        auth_from(b, &rotated.secret, ip("192.0.2.1"), 5),
        Err(AuthError::AddressNotAllowed)
    ));
    let parent = auth_from(b, &rotated.secret, ip("10.1.2.3"), 5).expect("from inside");
    // A child gets its parent's rule when it gives none, may narrow it, and
    // may not widen it.
    let child = create(
        b,
        &sliding("alice", MIN, Some(5 * MIN)).child_of(&parent),
        5,
    );
    assert_eq!(child.info.allow_from, rotated.info.allow_from);
    let narrow = create(
        b,
        &sliding("alice", MIN, Some(5 * MIN))
            .child_of(&parent)
            .allow_from([net("10.1.0.0/16")]),
        5,
    );
    assert!(matches!(
        auth_from(b, &narrow.secret, ip("10.2.0.1"), 6),
        Err(AuthError::AddressNotAllowed)
    ));
    auth_from(b, &narrow.secret, ip("10.1.0.1"), 6).expect("within the narrower rule");
    for wider in ["0.0.0.0/0", "10.0.0.0/7", "192.0.2.0/24"] {
        let asked = sliding("alice", MIN, Some(5 * MIN))
            .child_of(&parent)
            .allow_from([net(wider)]);
        assert!(
            matches!(b.create(&asked, at(6)), Err(StoreError::Authority(_))),
            "{wider}"
        );
    }
}

/// The last five distinct client addresses, newest first, each at its
/// last use: kept with the buffered use, written by a flush, kept by a
/// rotation; a refused use or one from an unknown address records none.
pub(super) fn the_last_five_addresses_are_kept(b: &dyn Backend) {
    let t = create(b, &sliding("alice", 10 * MIN, None), 1);
    assert!(t.info.last_addresses.is_empty());
    auth(b, &t.secret, 2).expect("a use from nowhere known");
    assert!(b.get(t.info.id).expect("get").last_addresses.is_empty());
    for i in 1..=7u8 {
        let from = Some(IpAddr::from([192, 0, 2, i]));
        auth_from(b, &t.secret, from, 2 + u64::from(i)).expect("a use");
    }
    // Twice in one second from two addresses, and again from a listed one
    // (an IPv4-mapped address is its IPv4 one).
    auth_from(b, &t.secret, ip("192.0.2.3"), 20).expect("a use");
    auth_from(b, &t.secret, ip("::ffff:192.0.2.4"), 20).expect("a use");
    auth_from(b, &t.secret, ip("192.0.2.4"), 20).expect("the same second");
    // Refused (another user's name): not recorded.
    let digest = b.prefixes().digest(t.secret.expose_secret()).expect("ours");
    let refused = super::block_on(
        b.verify(crate::Lookup::new(digest, Some("mallory"), at(30)).from(ip("198.51.100.1"))),
    );
    assert!(matches!(refused, Err(AuthError::WrongUser)));
    let want: Vec<(IpAddr, u64)> = [
        ("192.0.2.3", 20),
        ("192.0.2.4", 20),
        ("192.0.2.7", 9),
        ("192.0.2.6", 8),
        ("192.0.2.5", 7),
    ]
    .into_iter()
    .map(|(a, s)| (a.parse().expect("an address"), s))
    .collect();
    let listed = |info: &crate::TokenInfo| -> Vec<(IpAddr, u64)> {
        info.last_addresses
            .iter()
            .map(|s| (s.addr, s.at.as_unix_secs()))
            .collect()
    };
    assert_eq!(listed(&b.get(t.info.id).expect("get")), want, "buffered");
    b.flush().expect("flush");
    assert_eq!(listed(&b.get(t.info.id).expect("get")), want, "written");
    let all = b.list(Some("alice"), true, at(30)).expect("list");
    assert_eq!(listed(&all[0]), want, "listed");
    let rotated = b
        .rotate(t.info.id, &Rotation::new(), at(31))
        .expect("rotate");
    assert_eq!(listed(&rotated.info), want, "a rotation keeps them");
    auth_from(b, &rotated.secret, ip("2001:db8::1"), 32).expect("a use");
    b.flush().expect("flush");
    let after = listed(&b.get(t.info.id).expect("get"));
    assert_eq!(after.len(), 5);
    assert_eq!(after[0], ("2001:db8::1".parse().expect("an address"), 32));
    assert_eq!(after[1..], want[..4], "the oldest went");
}
