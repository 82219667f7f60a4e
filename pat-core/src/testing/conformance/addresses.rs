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
