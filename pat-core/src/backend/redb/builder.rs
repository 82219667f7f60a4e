//! [`StoreBuilder`]: the options of a redb store, and opening it.

use std::path::Path;
use std::sync::Arc;

use super::{Flusher, Inner, Running, Store};
use crate::backend::DEFAULT_CACHE_CAPACITY;
use crate::backend::admin::Actor;
use crate::backend::options::{StoreOptions, store_options};
use crate::backend::redb::socket::{AdminServer, StartError, admin_socket_path};
use crate::error::OpenError;

/// Options for opening a [`Store`].
///
/// Its cache of records is exact: every write goes through this process
/// (the CLI's through the admin socket), which updates it.
///
/// ```
/// use std::time::Duration;
/// # let dir = tempfile::tempdir()?;
/// let store = pat_core::Store::builder()
///     .flush_interval(Duration::from_millis(250))
///     .open(dir.path().join("pat.redb"))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct StoreBuilder {
    options: StoreOptions,
    admin_socket: bool,
}

impl Default for StoreBuilder {
    fn default() -> StoreBuilder {
        StoreBuilder {
            options: StoreOptions::default(),
            admin_socket: true,
        }
    }
}

impl StoreBuilder {
    store_options!(StoreBuilder, Store);

    /// Whether to serve the admin socket `<db>.sock` (default: yes), so that
    /// `pat-cli` can create, list and revoke tokens while this process holds
    /// the store. Turn it off for short-lived tools, or when the service
    /// offers its own admin channel.
    pub fn admin_socket(mut self, serve: bool) -> StoreBuilder {
        self.admin_socket = serve;
        self
    }

    /// Whether to keep the records of tokens that authenticated in memory
    /// (default: yes, up to [`DEFAULT_CACHE_CAPACITY`]), so that later
    /// requests with them read no file. Off is the same as a capacity of 0.
    pub fn cache(mut self, enabled: bool) -> StoreBuilder {
        self.options.cache_capacity = if enabled { DEFAULT_CACHE_CAPACITY } else { 0 };
        self
    }

    /// Opens the store at `path`, creating it (mode 0600) if it does not exist.
    /// See [`Store::open`].
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Store, OpenError> {
        let mut inner = Inner::open(
            path.as_ref(),
            self.options.cache_capacity,
            self.options.prefix,
        )?;
        inner.audit_retention = self.options.audit_retention;
        let inner = Arc::new(inner);
        let admin = if self.admin_socket {
            let socket = admin_socket_path(path.as_ref());
            let server =
                AdminServer::start(&socket, Arc::downgrade(&inner)).map_err(|e| match e {
                    StartError::Untrusted(reason) => OpenError::Untrusted {
                        path: socket,
                        reason,
                    },
                    StartError::Io(source) => OpenError::AdminSocket {
                        path: socket,
                        source,
                    },
                })?;
            Some(server)
        } else {
            None
        };
        let flusher = self
            .options
            .flush_interval
            .map(|every| Flusher::spawn(&inner, every))
            .transpose()
            .map_err(|source| OpenError::Io {
                path: path.as_ref().to_path_buf(),
                source,
            })?;
        let store = Store {
            inner,
            actor: Actor::default(),
            running: Some(Running { flusher, admin }),
        };
        if !self.options.permissions.is_empty() {
            crate::Admin::define_permissions(&store, &self.options.permissions)
                .map_err(|e| OpenError::Permissions(Box::new(e)))?;
        }
        Ok(store)
    }
}
