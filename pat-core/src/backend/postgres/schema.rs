//! The schema pat owns in a PostgreSQL database: created on first use,
//! versioned, upgraded in a transaction, refused when newer.

use tokio_postgres::Client;

use super::{PgError, db_error};
use crate::model::permission::{Catalog, Permission, PermissionDef};
use crate::model::prefix::Prefix;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = 8;

/// The lock every replica takes while it creates or checks the schema, so
/// that two starting at once do not both create it.
const SCHEMA_LOCK: i64 = 0x7061_745f_7363_6865; // "pat_sche"

/// The channel writes notify and replicas listen on.
pub(super) const CHANNEL: &str = "pat_tokens";

/// Version 1, as first released. A new database gets it, then every
/// upgrade in turn, so the upgrade path is the path every store takes.
const CREATE_V1: &str = "
    CREATE TABLE pat_meta (
        key text PRIMARY KEY,
        value bigint NOT NULL
    );
    CREATE TABLE pat_tokens (
        digest bytea PRIMARY KEY CHECK (octet_length(digest) = 32),
        id bigint NOT NULL UNIQUE,
        username text NOT NULL,
        label text NOT NULL,
        created_at bigint NOT NULL,
        created_by text NOT NULL,
        sliding boolean NOT NULL,
        expires_at bigint NOT NULL,
        window_secs bigint,
        max_lifetime_secs bigint,
        last_used_at bigint,
        scopes text[] NOT NULL
    );
    CREATE INDEX pat_tokens_by_user ON pat_tokens (username);
";

/// Version 1 to 2: rotation. The time of the last rotation, and the
/// secrets rotations retired (refused after `retires_at`, kept until their
/// token is gone so that a replay is recognised).
const UPGRADE_V2: &str = "
    ALTER TABLE pat_tokens ADD COLUMN rotated_at bigint;
    CREATE TABLE pat_retired (
        digest bytea PRIMARY KEY CHECK (octet_length(digest) = 32),
        id bigint NOT NULL,
        retires_at bigint NOT NULL
    );
    CREATE INDEX pat_retired_by_id ON pat_retired (id);
";

/// Version 2 to 3: the audit log, appended in the transaction of each
/// management action.
const UPGRADE_V3: &str = "
    CREATE TABLE pat_audit (
        seq bigserial PRIMARY KEY,
        at bigint NOT NULL,
        action text NOT NULL,
        token_id bigint,
        username text NOT NULL,
        actor text NOT NULL,
        outcome text NOT NULL
    );
    CREATE INDEX pat_audit_by_time ON pat_audit (at);
";

/// Version 3 to 4: the authority rule. A token's parent (tokens made
/// before had none), when its lifetime began (for those rotated before, at
/// their last rotation, as rotations then restarted it), its family's
/// limit, and the end of its replaced secret's grace (the old graces
/// bounded as the rule bounds new ones).
const UPGRADE_V4: &str = "
    ALTER TABLE pat_tokens ADD COLUMN parent_id bigint;
    ALTER TABLE pat_tokens ADD COLUMN lifetime_from bigint;
    UPDATE pat_tokens SET lifetime_from = COALESCE(rotated_at, created_at);
    ALTER TABLE pat_tokens ALTER COLUMN lifetime_from SET NOT NULL;
    ALTER TABLE pat_tokens ADD COLUMN not_after bigint;
    ALTER TABLE pat_tokens ADD COLUMN previous_until bigint;
    CREATE INDEX pat_tokens_by_parent ON pat_tokens (parent_id) WHERE parent_id IS NOT NULL;
    -- The old graces under the rule, as authority::bound_old_graces does
    -- for redb: of a token's secrets in their grace, the one ending last
    -- keeps it, at most a day from now; the others end now.
    WITH now AS (SELECT floor(extract(epoch FROM now()))::bigint AS t),
    live AS (
        SELECT digest, retires_at, row_number() OVER (
            PARTITION BY id ORDER BY retires_at DESC, digest
        ) AS n
        FROM pat_retired, now WHERE retires_at > now.t
    )
    UPDATE pat_retired r
    SET retires_at = CASE WHEN live.n = 1 THEN LEAST(live.retires_at, now.t + 86400) ELSE now.t END
    FROM live, now WHERE r.digest = live.digest;
    UPDATE pat_tokens t SET previous_until = r.retires_at
    FROM pat_retired r WHERE r.id = t.id AND r.retires_at > floor(extract(epoch FROM now()))::bigint;
";

/// Version 4 to 5: a token prefix per store. Every prefix the store has
/// had, numbered in the order it took them, and the current one's number;
/// the tokens of a store from before all carry `pat`, the only prefix
/// there was.
const UPGRADE_V5: &str = "
    CREATE TABLE pat_prefixes (
        seq bigint PRIMARY KEY,
        prefix text NOT NULL UNIQUE CHECK (prefix ~ '^[A-Za-z0-9]{2,16}$')
    );
    INSERT INTO pat_prefixes (seq, prefix) VALUES (0, 'pat');
    INSERT INTO pat_meta (key, value) VALUES ('prefix_current', 0);
";

/// Version 5 to 6: named permissions. The catalog (empty: a store from
/// before had none); tokens carry their names in `scopes` beside node
/// scopes, as `-s` writes them.
const UPGRADE_V6: &str = "
    CREATE TABLE pat_permissions (
        name text PRIMARY KEY
            CHECK (name ~ '^[a-z0-9_.:-]{1,64}$' AND name <> 'node' AND left(name, 5) <> 'node:'),
        description text NOT NULL,
        implies text[] NOT NULL CHECK (array_position(implies, NULL) IS NULL)
    );
";

/// Version 6 to 7: a token's state and limits. The token whose disabling
/// reached a token (itself or an ancestor), NULL while it is enabled; its
/// metadata, a JSON object of strings; the networks it may be used from
/// (`192.0.2.0/24`); its rate limit (`100/m`); its use quota; NULL for
/// none (as for every token from before); how many uses of the quota
/// are spent (0); and the client addresses it was last used from, each
/// `ADDR@SECONDS`, newest first (NULL until a use from a known address).
const UPGRADE_V7: &str = "
    ALTER TABLE pat_tokens ADD COLUMN disabled_by bigint;
    ALTER TABLE pat_tokens ADD COLUMN meta text;
    ALTER TABLE pat_tokens ADD COLUMN allow_from text[]
        CHECK (array_position(allow_from, NULL) IS NULL AND cardinality(allow_from) > 0);
    ALTER TABLE pat_tokens ADD COLUMN rate text CHECK (rate ~ '^[1-9][0-9]{0,6}/[smh]$');
    ALTER TABLE pat_tokens ADD COLUMN max_uses integer CHECK (max_uses BETWEEN 1 AND 1000000000);
    ALTER TABLE pat_tokens ADD COLUMN uses integer NOT NULL DEFAULT 0
        CHECK (uses >= 0 AND uses <= coalesce(max_uses, 0));
    ALTER TABLE pat_tokens ADD COLUMN last_addresses text[]
        CHECK (array_position(last_addresses, NULL) IS NULL
               AND cardinality(last_addresses) BETWEEN 1 AND 5);
";

/// Version 7 to 8: events. Each webhook's delivery state (`Delivery`'s
/// stored form), changed only by a compare-and-swap under its row lock;
/// the key of each expiry notice written (`Notice::key`), so that each is
/// written once on every replica.
const UPGRADE_V8: &str = "
    CREATE TABLE pat_deliveries (
        sink text PRIMARY KEY,
        state bytea NOT NULL
    );
    CREATE TABLE pat_notices (
        key text PRIMARY KEY,
        token_id bigint NOT NULL
    );
";

/// The upgrade from version `n - 1` to `n`, for `n` in `2..=SCHEMA_VERSION`.
const UPGRADES: [&str; 7] = [
    UPGRADE_V2, UPGRADE_V3, UPGRADE_V4, UPGRADE_V5, UPGRADE_V6, UPGRADE_V7, UPGRADE_V8,
];

/// Creates the schema if the database has none (its tokens to carry
/// `prefix`), checks and upgrades its version otherwise; all in one
/// transaction under an advisory lock. Returns the store's prefixes, the
/// current one first, and its catalog.
pub(super) async fn ensure(
    client: &mut Client,
    prefix: Prefix,
) -> Result<(Vec<Prefix>, Catalog), PgError> {
    let txn = super::begin(client).await.map_err(db_error)?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await
        .map_err(db_error)?;
    let exists: bool = txn
        .query_one("SELECT to_regclass('pat_meta') IS NOT NULL", &[])
        .await
        .map_err(db_error)?
        .get(0);
    let mut created = false;
    let found = if exists {
        let found: Option<i64> = txn
            .query_opt(
                "SELECT value FROM pat_meta WHERE key = 'schema_version'",
                &[],
            )
            .await
            .map_err(db_error)?
            .map(|row| row.get(0));
        match found {
            None => return Err(PgError::Foreign("pat_meta has no schema_version".into())),
            Some(v) if v > SCHEMA_VERSION => return Err(PgError::Newer { found: v }),
            Some(v) if v < 1 => {
                return Err(PgError::Foreign(format!(
                    "pat_meta says schema version {v}"
                )));
            }
            Some(v) => v,
        }
    } else {
        created = true;
        txn.batch_execute(CREATE_V1).await.map_err(db_error)?;
        txn.execute(
            "INSERT INTO pat_meta (key, value) VALUES ('schema_version', 1)",
            &[],
        )
        .await
        .map_err(db_error)?;
        1
    };
    // Each upgrade in turn, all in this transaction: a failure leaves the
    // schema as it was.
    for (to, upgrade) in (found + 1..=SCHEMA_VERSION).zip(&UPGRADES[(found - 1) as usize..]) {
        txn.batch_execute(upgrade).await.map_err(db_error)?;
        txn.execute(
            "UPDATE pat_meta SET value = $1 WHERE key = 'schema_version'",
            &[&to],
        )
        .await
        .map_err(db_error)?;
    }
    if created {
        txn.execute(
            "UPDATE pat_prefixes SET prefix = $1 WHERE seq = 0",
            &[&prefix.as_str()],
        )
        .await
        .map_err(db_error)?;
    }
    let prefixes = stored_prefixes(&txn).await?;
    let catalog = stored_catalog(&txn, "").await?;
    txn.commit().await.map_err(db_error)?;
    Ok((prefixes, catalog))
}

/// The catalog stored, checked as a whole; `lock` is appended to the
/// query (`FOR SHARE`, or nothing).
pub(super) async fn stored_catalog(
    client: &impl tokio_postgres::GenericClient,
    lock: &str,
) -> Result<Catalog, PgError> {
    let rows = client
        .query(
            &format!("SELECT name, description, implies FROM pat_permissions {lock}"),
            &[],
        )
        .await
        .map_err(db_error)?;
    let mut defs = Vec::with_capacity(rows.len());
    for row in &rows {
        let bad = |e: &dyn std::fmt::Display| PgError::Data(format!("stored permission: {e}"));
        let name = Permission::new(row.get(0)).map_err(|e| bad(&e))?;
        let implies: Vec<Option<String>> = row.try_get(2).map_err(|e| bad(&e))?;
        let mut def =
            PermissionDef::new(name).description(row.try_get::<_, String>(1).map_err(|e| bad(&e))?);
        for implied in implies {
            let implied = implied.ok_or_else(|| bad(&"an implication is NULL"))?;
            def = def.implies(Permission::new(&implied).map_err(|e| bad(&e))?);
        }
        defs.push(def);
    }
    Catalog::of(defs).map_err(|e| PgError::Data(format!("the catalog: {e}")))
}

/// The prefixes stored, the current one first.
pub(super) async fn stored_prefixes(
    client: &impl tokio_postgres::GenericClient,
) -> Result<Vec<Prefix>, PgError> {
    let rows = client
        .query(
            "SELECT p.prefix, p.seq = m.value FROM pat_prefixes p
             LEFT JOIN pat_meta m ON m.key = 'prefix_current' ORDER BY p.seq",
            &[],
        )
        .await
        .map_err(db_error)?;
    let mut all = Vec::with_capacity(rows.len());
    for row in &rows {
        let prefix = Prefix::new(row.get(0))
            .map_err(|e| PgError::Data(format!("stored token prefix: {e}")))?;
        if row.get::<_, Option<bool>>(1) == Some(true) {
            all.insert(0, prefix);
        } else {
            all.push(prefix);
        }
    }
    if !rows
        .iter()
        .any(|r| r.get::<_, Option<bool>>(1) == Some(true))
    {
        return Err(PgError::Data("no current token prefix".into()));
    }
    Ok(all)
}
