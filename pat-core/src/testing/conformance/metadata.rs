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
    // A rotation keeps it, and so does a child's making (a child has its
    // own, none unless given).
    let rotated = b
        .rotate(t.info.id, &Rotation::new(), at(4))
        .expect("rotate");
    assert_eq!(rotated.info.meta, meta);
    assert_eq!(auth(b, &rotated.secret, 5).expect("live").meta(), &meta);
    let parent = auth(b, &rotated.secret, 5).expect("live");
    let child = create(b, &hard("alice", 10 * MIN).child_of(&parent), 5);
    assert!(child.info.meta.is_empty());
}
