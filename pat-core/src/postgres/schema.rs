//! The schema pat owns in a PostgreSQL database: created on first use,
//! versioned, upgraded in a transaction, refused when newer.

use tokio_postgres::Client;

use super::{PgError, db_error};

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = 1;

/// The lock every replica takes while it creates or checks the schema, so
/// that two starting at once do not both create it.
const SCHEMA_LOCK: i64 = 0x7061_745f_7363_6865; // "pat_sche"

/// The channel writes notify and replicas listen on.
pub(super) const CHANNEL: &str = "pat_tokens";

const CREATE: &str = "
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

/// Creates the schema if the database has none, checks its version
/// otherwise; all in one transaction under an advisory lock.
pub(super) async fn ensure(client: &mut Client) -> Result<(), PgError> {
    let txn = client.transaction().await.map_err(db_error)?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await
        .map_err(db_error)?;
    let exists: bool = txn
        .query_one("SELECT to_regclass('pat_meta') IS NOT NULL", &[])
        .await
        .map_err(db_error)?
        .get(0);
    if !exists {
        txn.batch_execute(CREATE).await.map_err(db_error)?;
        txn.execute(
            "INSERT INTO pat_meta (key, value) VALUES ('schema_version', $1)",
            &[&SCHEMA_VERSION],
        )
        .await
        .map_err(db_error)?;
    } else {
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
            Some(v) if v > SCHEMA_VERSION => {
                return Err(PgError::Newer { found: v });
            }
            // Version 1 is the only one so far: nothing to upgrade. An
            // upgrade would run here, in this transaction.
            Some(_) => {}
        }
    }
    txn.commit().await.map_err(db_error)
}
