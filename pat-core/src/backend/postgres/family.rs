//! A token's family in PostgreSQL: the rows of its descendants, locked so
//! that nothing is made under them while a change runs. The rules are
//! [`crate::backend::authority`]'s; this only stores.

use std::collections::BTreeSet;

use tokio_postgres::{Row, Transaction};

use super::{COLUMNS, DIGEST, PgError, digest_of, record};
use crate::model::record::TokenInfo;
use crate::model::token::{TokenDigest, TokenId};

/// A token row: its record (as stored) and its digest.
pub(super) struct Member {
    pub(super) info: TokenInfo,
    pub(super) digest: TokenDigest,
}

fn members(rows: &[Row]) -> Result<Vec<Member>, PgError> {
    rows.iter()
        .map(|r| {
            Ok(Member {
                info: record(r)?,
                digest: digest_of(r, DIGEST)?,
            })
        })
        .collect()
}

/// `roots` and every descendant of them, locked `FOR UPDATE` in id order
/// in `txn`. A token is made under its parent's `FOR SHARE` lock, so once
/// the whole family is locked nothing new can join it: the query is run
/// again until the family it finds is the one it locked.
pub(super) async fn lock(txn: &Transaction<'_>, roots: &[i64]) -> Result<Vec<Member>, PgError> {
    let sql = format!(
        "WITH RECURSIVE fam(id) AS (
             SELECT unnest($1::bigint[])
             UNION SELECT t.id FROM pat_tokens t JOIN fam ON t.parent_id = fam.id
         )
         SELECT {COLUMNS}, digest FROM pat_tokens WHERE id IN (SELECT id FROM fam)
         ORDER BY id FOR UPDATE"
    );
    let mut locked = BTreeSet::new();
    loop {
        let rows = txn.query(&sql, &[&roots]).await?;
        let found: BTreeSet<i64> = rows.iter().map(|r| r.get::<_, i64>(0)).collect();
        if found == locked {
            return members(&rows);
        }
        locked = found;
    }
}

/// Every descendant of `id`, without locks (a listing).
pub(super) async fn descendants(
    client: &tokio_postgres::Client,
    id: TokenId,
) -> Result<Vec<Member>, PgError> {
    let sql = format!(
        "WITH RECURSIVE fam(id) AS (
             SELECT id FROM pat_tokens WHERE parent_id = $1
             UNION SELECT t.id FROM pat_tokens t JOIN fam ON t.parent_id = fam.id
         )
         SELECT {COLUMNS}, digest FROM pat_tokens WHERE id IN (SELECT id FROM fam)
         ORDER BY created_at, id"
    );
    let rows = client.query(&sql, &[&(id.as_u64() as i64)]).await?;
    members(&rows)
}

/// The children of `parent` among `family`, for the authority rule's walks.
pub(super) fn children_in(family: &[Member], parent: TokenId) -> Vec<TokenInfo> {
    family
        .iter()
        .filter(|m| m.info.parent == Some(parent))
        .map(|m| m.info.clone())
        .collect()
}
