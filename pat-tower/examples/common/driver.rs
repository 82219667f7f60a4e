//! What the callgrind drivers share (`hot_path_layer` here, pat-actix's
//! `hot_path_middleware` by `#[path]`): the arguments `KIND N`, a store with
//! one token of that kind, and the `Authorization` header presenting it.

use std::sync::Arc;
use std::time::Duration;

use pat_core::{Admin as _, ExpiryPolicy, NewToken, Store, Timestamp};

/// A driver's store and request: the token of `kind` (`hard`, `sliding` or
/// `basic`; `named`, a hard token holding the named permission
/// `repo:read`, and `guarded`, the same for a route behind a scope guard;
/// `peer`, a hard token presented from 127.0.0.1, and `limited`, the same
/// with an address rule and a rate limit it never reaches; or a peer's, `bare`,
/// `static` or `digest`, all with a hard token) and how many more requests
/// to send.
pub(crate) struct Driver {
    /// The kind asked for.
    pub(crate) kind: String,
    /// The token, for a peer's own check.
    pub(crate) secret: String,
    /// Holds the store's file.
    pub(crate) _dir: tempfile::TempDir,
    /// The store, no admin socket, flushed by hand.
    pub(crate) store: Arc<Store>,
    /// `Bearer …`, or `Basic …` for `basic`.
    pub(crate) header: String,
    /// The requests to send after the first.
    pub(crate) n: u64,
}

/// Reads `KIND N` from the command line of the driver `name`.
pub(crate) fn driver(name: &str) -> Result<Driver, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(kind), Some(n)) = (args.next(), args.next()) else {
        return Err(format!(
            "usage: {name} hard|sliding|basic|named|guarded|peer|limited|bare|static|digest|digest_expiry N"
        )
        .into());
    };
    let n: u64 = n.parse()?;
    // `PAT_METRICS=prometheus`: counted into a Prometheus recorder (issue
    // 27's "metrics on"), installed before the store and the gate take
    // their handles; without it, no recorder ("off").
    if std::env::var("PAT_METRICS").as_deref() == Ok("prometheus") {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
        std::mem::forget(handle);
    }
    let dir = tempfile::tempdir()?;
    let store = Arc::new(
        Store::builder()
            .admin_socket(false)
            .manual_flush()
            .open(dir.path().join("pat.redb"))?,
    );
    let day = Duration::from_secs(86_400);
    let expiry = match kind.as_str() {
        "hard" | "basic" | "named" | "guarded" | "peer" | "limited" | "bare" | "static"
        | "digest" | "digest_expiry" => ExpiryPolicy::hard(day),
        "sliding" => ExpiryPolicy::sliding(day, None),
        other => return Err(format!("unknown kind {other:?}").into()),
    };
    let mut new = NewToken::new("alice", expiry);
    if kind == "guarded" || kind == "named" {
        store.define_permissions(&[
            pat_core::PermissionDef::new("repo:read".parse()?),
            pat_core::PermissionDef::new("repo:write".parse()?),
        ])?;
        new = new.scopes(
            ["repo:read".parse::<pat_core::TokenScope>()?]
                .into_iter()
                .collect(),
        );
    }
    if kind == "limited" {
        new = new.allow_from(["127.0.0.0/8".parse()?]);
        new.rate = Some("1000000/s".parse()?);
    }
    let created = store.create(&new, Timestamp::now())?;
    let secret = created.secret.expose_secret().to_owned();
    let header = if kind == "basic" {
        let pair = format!("alice:{secret}");
        format!(
            "Basic {}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pair)
        )
    } else {
        format!("Bearer {secret}")
    };
    Ok(Driver {
        kind,
        secret,
        _dir: dir,
        store,
        header,
        n,
    })
}
