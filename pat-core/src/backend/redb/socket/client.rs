//! The admin socket's client: the [`Admin`] operations of a store held by
//! another process.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::{self, Failure, Reply, Request};
use crate::backend::admin::Admin;
use crate::backend::redb::socket::server::peer_allowed;
use crate::backend::trust;
use crate::error::{StoreError, Untrusted};
use crate::model::audit::AuditEntry;
use crate::model::permission::{Catalog, Permission, PermissionDef, PermissionRemoval};
use crate::model::policy::Policy;
use crate::model::prefix::Prefix;
use crate::model::record::{CreatedToken, NewToken, Rotation, TokenInfo};
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId};

enum Opening {
    Io(std::io::Error),
    Untrusted(Untrusted),
}

/// How long the client waits for the service.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Admin operations through the admin socket of the process that holds a
/// store (see [`StoreBuilder::admin_socket`](crate::StoreBuilder::admin_socket)).
///
/// Every write goes through that process, so its view stays exact: a token
/// revoked here is refused on the service's very next request.
#[derive(Debug)]
pub struct AdminClient {
    path: PathBuf,
    pid: u32,
}

impl AdminClient {
    /// Connects to the socket at `path` and checks that a service answers.
    pub fn connect(path: impl AsRef<Path>) -> Result<AdminClient, StoreError> {
        let mut client = AdminClient {
            path: path.as_ref().to_path_buf(),
            pid: 0,
        };
        match client.call(&Request::Hello)? {
            Reply::Hello { pid } => client.pid = pid,
            other => return Err(client.unexpected(&other)),
        }
        Ok(client)
    }

    /// The process id of the service behind the socket.
    pub fn server_pid(&self) -> u32 {
        self.pid
    }

    fn call(&self, req: &Request) -> Result<Reply, StoreError> {
        let socket_err = |e: std::io::Error| StoreError::Socket {
            path: self.path.clone(),
            source: match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer within {} s", TIMEOUT.as_secs()),
                    )
                }
                _ => e,
            },
        };
        let mut stream = self.open().map_err(|e| match e {
            Opening::Io(e) => socket_err(e),
            Opening::Untrusted(reason) => StoreError::Untrusted {
                path: self.path.clone(),
                reason,
            },
        })?;
        stream.set_read_timeout(Some(TIMEOUT)).map_err(socket_err)?;
        stream
            .set_write_timeout(Some(TIMEOUT))
            .map_err(socket_err)?;
        // A server that refuses the connection answers and closes without
        // reading; its answer is still there to read after a failed write.
        let written = protocol::write_frame(&mut stream, &req.encode());
        let body = match protocol::read_frame(&mut stream, protocol::MAX_REPLY) {
            Ok(Some(body)) => body,
            Ok(None) => {
                written.map_err(socket_err)?;
                return Err(StoreError::Remote(
                    "the service closed the admin connection".into(),
                ));
            }
            Err(e) => return Err(socket_err(written.err().unwrap_or(e))),
        };
        match protocol::decode_reply(&body).map_err(StoreError::Remote)? {
            Ok(reply) => Ok(reply),
            Err(Failure::NotFound(id)) => Err(StoreError::NotFound(id)),
            Err(Failure::Message(m)) => Err(StoreError::Remote(m)),
        }
    }

    /// Connects, after checking that the socket file is a socket of ours or
    /// root's that others cannot write to, and that the process answering
    /// runs as us or as root: nothing is sent to anyone else.
    fn open(&self) -> Result<UnixStream, Opening> {
        let meta = std::fs::symlink_metadata(&self.path).map_err(Opening::Io)?;
        trust::check_socket_file(&meta).map_err(Opening::Untrusted)?;
        let stream = UnixStream::connect(&self.path).map_err(Opening::Io)?;
        let (peer, euid) = (
            crate::backend::redb::sys::peer_uid(&stream).map_err(Opening::Io)?,
            trust::euid(),
        );
        if !peer_allowed(peer, euid) {
            return Err(Opening::Untrusted(Untrusted::Peer { peer, euid }));
        }
        Ok(stream)
    }

    fn unexpected(&self, reply: &Reply) -> StoreError {
        StoreError::Remote(format!("unexpected reply from the service: {reply:?}"))
    }
}

impl Admin for AdminClient {
    fn create(&self, new: &NewToken, now: Timestamp) -> Result<CreatedToken, StoreError> {
        match self.call(&Request::Create {
            new: new.clone(),
            now,
        })? {
            Reply::Created(created) => Ok(created),
            other => Err(self.unexpected(&other)),
        }
    }

    fn list(
        &self,
        user: Option<&str>,
        include_expired: bool,
        now: Timestamp,
    ) -> Result<Vec<TokenInfo>, StoreError> {
        match self.call(&Request::List {
            user: user.map(str::to_owned),
            include_expired,
            now,
        })? {
            Reply::Tokens(list) => Ok(list),
            other => Err(self.unexpected(&other)),
        }
    }

    fn get(&self, id: TokenId) -> Result<TokenInfo, StoreError> {
        match self.call(&Request::Get(id))? {
            Reply::Token(info) => Ok(info),
            other => Err(self.unexpected(&other)),
        }
    }

    fn rotate(
        &self,
        id: TokenId,
        rotation: &Rotation,
        now: Timestamp,
    ) -> Result<CreatedToken, StoreError> {
        match self.call(&Request::Rotate {
            id,
            rotation: *rotation,
            now,
        })? {
            Reply::Created(created) => Ok(created),
            other => Err(self.unexpected(&other)),
        }
    }

    fn find(&self, digest: &TokenDigest, now: Timestamp) -> Result<Option<TokenInfo>, StoreError> {
        match self.call(&Request::Find {
            digest: *digest,
            now,
        })? {
            Reply::Found(found) => Ok(found),
            other => Err(self.unexpected(&other)),
        }
    }

    fn descendants(&self, id: TokenId) -> Result<Vec<TokenInfo>, StoreError> {
        match self.call(&Request::Descendants(id))? {
            Reply::Tokens(list) => Ok(list),
            other => Err(self.unexpected(&other)),
        }
    }

    fn revoke(&self, id: TokenId) -> Result<TokenInfo, StoreError> {
        match self.call(&Request::Revoke(id))? {
            Reply::Token(info) => Ok(info),
            other => Err(self.unexpected(&other)),
        }
    }

    fn disable(&self, id: TokenId) -> Result<usize, StoreError> {
        match self.call(&Request::Disable(id))? {
            Reply::Count(n) => Ok(n as usize),
            other => Err(self.unexpected(&other)),
        }
    }

    fn enable(&self, id: TokenId) -> Result<usize, StoreError> {
        match self.call(&Request::Enable(id))? {
            Reply::Count(n) => Ok(n as usize),
            other => Err(self.unexpected(&other)),
        }
    }

    fn revoke_user(&self, user: &str) -> Result<usize, StoreError> {
        match self.call(&Request::RevokeUser(user.to_owned()))? {
            Reply::Count(n) => Ok(n as usize),
            other => Err(self.unexpected(&other)),
        }
    }

    fn prune(&self, now: Timestamp) -> Result<usize, StoreError> {
        match self.call(&Request::Prune(now))? {
            Reply::Count(n) => Ok(n as usize),
            other => Err(self.unexpected(&other)),
        }
    }

    fn token_prefixes(&self) -> Result<Vec<Prefix>, StoreError> {
        match self.call(&Request::GetPrefixes)? {
            Reply::Prefixes(prefixes) => Ok(prefixes),
            other => Err(self.unexpected(&other)),
        }
    }

    fn set_prefix(&self, prefix: Prefix) -> Result<(), StoreError> {
        match self.call(&Request::SetPrefix(prefix))? {
            Reply::Prefixes(_) => Ok(()),
            other => Err(self.unexpected(&other)),
        }
    }

    fn permissions(&self) -> Result<Catalog, StoreError> {
        match self.call(&Request::GetPermissions)? {
            Reply::Permissions(defs) => Catalog::of(defs).map_err(|e| {
                StoreError::Remote(format!(
                    "the service sent a catalog that does not hold: {e}"
                ))
            }),
            other => Err(self.unexpected(&other)),
        }
    }

    fn define_permissions(&self, defs: &[PermissionDef]) -> Result<bool, StoreError> {
        match self.call(&Request::DefinePermissions(defs.to_vec()))? {
            Reply::Count(n) => Ok(n > 0),
            other => Err(self.unexpected(&other)),
        }
    }

    fn remove_permission(
        &self,
        name: &Permission,
        force: bool,
    ) -> Result<PermissionRemoval, StoreError> {
        match self.call(&Request::RemovePermission {
            name: name.clone(),
            force,
        })? {
            Reply::Removal(removal) => Ok(removal),
            other => Err(self.unexpected(&other)),
        }
    }

    fn policy(&self) -> Result<Policy, StoreError> {
        match self.call(&Request::GetPolicy)? {
            Reply::Policy(policy) => Ok(policy),
            other => Err(self.unexpected(&other)),
        }
    }

    fn set_policy(&self, policy: Policy) -> Result<(), StoreError> {
        match self.call(&Request::SetPolicy(policy))? {
            Reply::Policy(_) => Ok(()),
            other => Err(self.unexpected(&other)),
        }
    }

    fn audit(&self, since: Timestamp, user: Option<&str>) -> Result<Vec<AuditEntry>, StoreError> {
        match self.call(&Request::Audit {
            since,
            user: user.map(str::to_owned),
        })? {
            Reply::Audit(entries) => Ok(entries),
            other => Err(self.unexpected(&other)),
        }
    }

    fn deliveries(&self) -> Result<Vec<(String, crate::Delivery)>, StoreError> {
        match self.call(&Request::Deliveries)? {
            Reply::Deliveries(all) => Ok(all),
            other => Err(self.unexpected(&other)),
        }
    }

    fn resend_event(&self, sink: &str, seq: u64) -> Result<bool, StoreError> {
        match self.call(&Request::Resend {
            sink: sink.to_owned(),
            seq,
        })? {
            Reply::Count(found) => Ok(found == 1),
            other => Err(self.unexpected(&other)),
        }
    }

    /// The service records the changes made through its socket as done by
    /// the peer's uid, which the kernel vouches for; a name claimed here
    /// would prove nothing, so `actor` is not sent.
    fn acting_as<'a>(&'a self, _actor: &str) -> Box<dyn Admin + 'a> {
        Box::new(self)
    }
}
