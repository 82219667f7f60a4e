//! The contract case of metadata: what a token was made with comes back
//! with every authentication, cached or read, through rotations and
//! listings, and an empty one costs nothing.

use crate::{Metadata, Rotation};

use super::Backend;
use super::harness::{MIN, at, auth, create, hard};

pub(super) fn metadata_comes_back(b: &dyn Backend) {
    let meta = Metadata::new([("team", "payments"), ("ticket", "OPS-12")]).expect("metadata");
    let t = create(b, &hard("alice", 60 * MIN).meta(meta.clone()), 1);
    let plain = create(b, &hard("alice", 60 * MIN), 1);
    assert_eq!(t.info.meta, meta, "the created record");
    // The first lookup reads the record, the second may be a cache hit.
    for secs in [2, 3] {
        let id = auth(b, &t.secret, secs).expect("a live token");
        assert_eq!(id.meta(), &meta, "the identity at {secs}");
        assert_eq!(id.meta().get("team"), Some("payments"));
    }
    assert!(auth(b, &plain.secret, 3).expect("live").meta().is_empty());
    assert_eq!(b.get(t.info.id).expect("get").meta, meta);
    let listed = b.list(Some("alice"), false, at(3)).expect("list");
    assert!(listed.iter().any(|i| i.id == t.info.id && i.meta == meta));
    // A rotation keeps it.
    let rotated = b
        .rotate(t.info.id, &Rotation::new(), at(4))
        .expect("rotate");
    assert_eq!(rotated.info.meta, meta);
    assert_eq!(auth(b, &rotated.secret, 5).expect("live").meta(), &meta);
    // A token made with it keeps its entries (review of issue 26: a child
    // could say `team=other` under a parent of `team=payments`), and may
    // add keys.
    let parent = auth(b, &rotated.secret, 5).expect("live");
    let child = create(b, &hard("alice", 10 * MIN).child_of(&parent), 5);
    assert_eq!(child.info.meta, meta);
    let more = Metadata::new([("ci", "yes")]).expect("metadata");
    let added = create(b, &hard("alice", 10 * MIN).child_of(&parent).meta(more), 5);
    assert_eq!(added.info.meta.get("team"), Some("payments"));
    assert_eq!(added.info.meta.get("ci"), Some("yes"));
    assert_eq!(
        auth(b, &added.secret, 6).expect("live").meta(),
        &added.info.meta
    );
    let other = Metadata::new([("team", "other")]).expect("metadata");
    let changed = b.create(
        &hard("alice", 10 * MIN).child_of(&parent).meta(other),
        at(5),
    );
    assert!(
        matches!(changed, Err(crate::StoreError::Authority(ref e)) if e.to_string().contains("`team`")),
        "{changed:?}"
    );
}
