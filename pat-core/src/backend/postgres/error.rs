//! Why the database failed, inside the crate, and how that reaches callers.

use std::fmt;

use crate::error::{BackendError, StoreError};

/// Why the database failed, inside the crate; turned into [`OpenError`] or
/// [`StoreError`] at the edges.
#[derive(Debug)]
pub(crate) enum PgError {
    Db(tokio_postgres::Error),
    Timeout,
    Newer {
        found: i64,
    },
    Foreign(String),
    Data(String),
    Stopped,
    /// A test's failpoint.
    Injected(crate::testing::failpoints::Injected),
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The driver's messages name the server and the problem, never
            // the password.
            PgError::Db(e) => write!(f, "{}", crate::error::chain(e)),
            PgError::Timeout => f.write_str("the database did not answer in time"),
            PgError::Newer { found } => write!(f, "schema version {found}"),
            PgError::Foreign(why) => write!(f, "not a pat schema: {why}"),
            PgError::Data(why) => write!(f, "damaged row: {why}"),
            PgError::Stopped => f.write_str("the store is closing"),
            PgError::Injected(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PgError {}

pub(super) fn db_error(e: tokio_postgres::Error) -> PgError {
    PgError::Db(e)
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> PgError {
        PgError::Db(e)
    }
}

impl From<PgError> for StoreError {
    fn from(e: PgError) -> StoreError {
        match e {
            PgError::Data(why) => StoreError::Corrupt(why),
            e => StoreError::Storage(BackendError::new(e)),
        }
    }
}
