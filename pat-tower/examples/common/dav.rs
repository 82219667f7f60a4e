//! The reference servers' WebDAV share, with scopes: included by both servers
//! with `#[path]`. The rules (what each method needs, chains, what a listing
//! shows) are pat-core's [`DavAccess`], [`dav_chain`], `Scopes::allow_dav` and
//! `Scopes::reveals`; this file gives the share's files and folders node ids
//! and plugs those rules into dav-server.
//!
//! Node ids live in an extended attribute of each file and folder
//! (`user.pat.node`, 16 bytes), given on first sight. An attribute stays
//! with its file: through restarts, through a DAV `MOVE` or an `mv` on the
//! host, and it goes when the file goes; a `COPY` is a new file, with a new
//! id. A sidecar index or a table in the token store would have to follow
//! every rename itself, and could not see renames made on the host. Finding a
//! node's path (for "does this folder lead to the scope?") uses an in-memory
//! index, checked against the attribute on each use and rebuilt by walking
//! the share when it is stale (at most once a second).
//!
//! The share refuses to follow symbolic links: its root must be a real
//! directory of this process's user that others cannot write, and a link
//! anywhere inside is neither listed nor opened.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavFileSystem, DavMetaData, DavProp, FsError, FsFuture, FsResult,
    FsStream, GuardedFileSystem, OpenOptions, ReadDirMeta,
};
use dav_server::localfs::LocalFs;
use futures_util::StreamExt as _;
use pat_core::{DavAccess, Identity, NodeId, Perm, dav_chain};

/// Where the share is served.
pub(crate) const PREFIX: &str = "/dav";
const XATTR: &str = "user.pat.node";
/// How often the node index may be rebuilt by walking the share.
const RESCAN_EVERY: Duration = Duration::from_secs(1);

/// The share: its root, its nodes and the dav-server handler.
#[derive(Clone)]
pub(crate) struct Share {
    nodes: Arc<Nodes>,
    handler: dav_server::DavHandler<Access>,
}

/// What each request carries into the filesystem: who is asking.
#[derive(Clone)]
pub(crate) struct Access {
    identity: Identity,
}

/// A request's answer when it is not handed to dav-server.
pub(crate) enum Refusal {
    /// 400: the path cannot be read.
    BadRequest,
    /// 403: the token's scopes do not allow it.
    Forbidden,
}

/// The answer to `GET /nodes/by-path`.
pub(crate) enum ByPath {
    /// 200 with this JSON.
    Found(serde_json::Value),
    /// 400 `invalid path`.
    BadRequest,
    /// 403 `forbidden`: scoped tokens may not look ids up.
    Forbidden,
    /// 404 `no such path`.
    NotFound,
}

impl Share {
    /// The share of `root`; with `default`, a folder this process creates
    /// (mode 0700) if it is missing. Either way it must be a real directory
    /// (not a link) of this process's user that others cannot write, on a
    /// filesystem with extended attributes.
    pub(crate) fn open(root: &Path, default: bool) -> io::Result<Share> {
        let problem = |what: String| {
            io::Error::other(format!(
                "the WebDAV root `{}` {what}",
                pat_core::printable(&root.to_string_lossy())
            ))
        };
        match std::fs::symlink_metadata(root) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && default => {
                std::fs::DirBuilder::new().mode(0o700).create(root)?;
            }
            Err(e) => return Err(problem(format!("cannot be used: {e}"))),
            Ok(m) if m.file_type().is_symlink() => {
                return Err(problem(
                    "is a symbolic link, which is not followed: pass the real directory with \
                     --dav-root"
                        .into(),
                ));
            }
            Ok(m) if !m.is_dir() => return Err(problem("is not a directory".into())),
            Ok(m) if m.uid() != rustix::process::geteuid().as_raw() => {
                return Err(problem(format!(
                    "belongs to uid {}, not to this process's user: use a directory of your own",
                    m.uid()
                )));
            }
            Ok(m) if m.mode() & 0o022 != 0 => {
                return Err(problem(format!(
                    "(mode {:04o}) is writable by other users: `chmod go-w` it",
                    m.mode() & 0o7777
                )));
            }
            Ok(_) => {}
        }
        let nodes = Arc::new(Nodes {
            root: root.to_path_buf(),
            index: Mutex::new(Index::default()),
        });
        nodes.id_of(Path::new("")).map_err(|e| {
            problem(format!(
                "cannot keep node ids: its filesystem needs extended attributes ({e})"
            ))
        })?;
        let fs = SafeFs {
            local: LocalFs::new(root, false, false, false),
            nodes: nodes.clone(),
        };
        let handler = dav_server::DavHandler::builder()
            .filesystem(Box::new(fs))
            .locksystem(dav_server::fakels::FakeLs::new())
            .strip_prefix(PREFIX)
            .build_handler();
        Ok(Share { nodes, handler })
    }

    /// Serves one WebDAV request of `identity`, after checking its scopes.
    pub(crate) async fn handle<B, D, E>(
        &self,
        req: http::Request<B>,
        identity: Identity,
    ) -> http::Response<dav_server::body::Body>
    where
        B: http_body::Body<Data = D, Error = E>,
        D: bytes::Buf + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let destination = req.headers().get("destination").map(|v| v.as_bytes());
        let (status, body) = match self.check(
            &identity,
            req.method().as_str(),
            req.uri().path(),
            destination,
        ) {
            Ok(()) => {
                let principal = identity.user().to_owned();
                return self
                    .handler
                    .handle_guarded(req, principal, Access { identity })
                    .await;
            }
            Err(Refusal::BadRequest) => (http::StatusCode::BAD_REQUEST, "invalid path"),
            Err(Refusal::Forbidden) => (http::StatusCode::FORBIDDEN, "forbidden"),
        };
        let mut res = http::Response::new(dav_server::body::Body::from(body));
        *res.status_mut() = status;
        res
    }

    /// Whether `identity` may make this request: see [`DavAccess`]. The path
    /// is read the way dav-server reads it (`DavPath`), so what is checked
    /// is what is served.
    pub(crate) fn check(
        &self,
        identity: &Identity,
        method: &str,
        uri_path: &str,
        destination: Option<&[u8]>,
    ) -> Result<(), Refusal> {
        if identity.scopes().is_unrestricted() {
            return Ok(());
        }
        let access = DavAccess::of(method);
        let target = share_path(uri_path).ok_or(Refusal::BadRequest)?;
        let destination_parent = match access {
            DavAccess::Move | DavAccess::Copy => {
                let uri = destination
                    .and_then(|d| http::Uri::try_from(d).ok())
                    .ok_or(Refusal::BadRequest)?;
                let dest = share_path(uri.path()).ok_or(Refusal::BadRequest)?;
                Some(dest.parent().ok_or(Refusal::Forbidden)?.to_path_buf())
            }
            _ => None,
        };
        if self.allows(identity, access, &target, destination_parent.as_deref()) {
            Ok(())
        } else {
            Err(Refusal::Forbidden)
        }
    }

    /// Whether `identity` may do `access` to `target` (relative to the
    /// root), with `destination_parent` the folder a `Move` or `Copy` puts
    /// it in: pat-core's `Scopes::allow_dav`, for WebDAV and SFTP alike.
    pub(crate) fn allows(
        &self,
        identity: &Identity,
        access: DavAccess,
        target: &Path,
        destination_parent: Option<&Path>,
    ) -> bool {
        let scopes = identity.scopes();
        if scopes.is_unrestricted() {
            return true;
        }
        let destination_parent = destination_parent.map(|p| self.nodes.chain(p));
        scopes.allow_dav(
            access,
            &self.nodes.chain(target),
            destination_parent.as_deref(),
            || self.nodes.leads_to_readable(identity, target),
        )
    }

    /// The share's root folder.
    pub(crate) fn root(&self) -> &Path {
        &self.nodes.root
    }

    /// Whether a listing of its folder shows `rel` to `identity` (links
    /// never).
    pub(crate) fn shows(&self, identity: &Identity, rel: &Path) -> bool {
        self.nodes.shows(identity, rel)
    }

    /// Whether `rel` (relative to the root) has a link in it: such a path
    /// is neither listed nor opened.
    pub(crate) fn has_link(&self, rel: &Path) -> bool {
        self.nodes.has_link(rel)
    }

    /// After a rename from `from` to `to`: the node index follows.
    pub(crate) fn moved(&self, from: &Path, to: &Path) {
        self.nodes.moved(from, to);
    }

    /// `GET /nodes/by-path?path=…`: the node id of a file or folder, for an
    /// unscoped token (an admin scoping a token to a folder).
    pub(crate) fn by_path(&self, identity: &Identity, path: Option<&str>) -> ByPath {
        if !identity.scopes().is_unrestricted() {
            return ByPath::Forbidden;
        }
        let Some(rel) = path.and_then(query_path) else {
            return ByPath::BadRequest;
        };
        match self.nodes.id_of(&rel) {
            Ok(Some(node)) => {
                let shown = format!("/{}", rel.to_string_lossy());
                ByPath::Found(serde_json::json!({ "node": node.to_string(), "path": shown }))
            }
            Ok(None) | Err(_) => ByPath::NotFound,
        }
    }
}

/// A request path under [`PREFIX`], decoded and normalized by dav-server, as
/// a path relative to the share's root (`""` for the root).
fn share_path(uri_path: &str) -> Option<PathBuf> {
    let mut path = DavPath::new(uri_path).ok()?;
    path.set_prefix(PREFIX).ok()?;
    Some(path.as_rel_ospath().to_path_buf())
}

/// The `path` query parameter (already percent-decoded): absolute, without
/// `..`, NUL or empty names; as a path relative to the share's root.
fn query_path(path: &str) -> Option<PathBuf> {
    let rest = path.strip_prefix('/')?;
    let mut rel = PathBuf::new();
    for part in rest.split('/') {
        match part {
            "" | "." => continue,
            ".." => return None,
            p if p.contains('\0') => return None,
            p => rel.push(p),
        }
    }
    Some(rel)
}

/// Node ids of the share's files and folders.
struct Nodes {
    root: PathBuf,
    index: Mutex<Index>,
}

/// Where each node was last seen, and when the share was last walked.
#[derive(Default)]
struct Index {
    paths: HashMap<NodeId, PathBuf>,
    walked: Option<Instant>,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
const NO_ATTRIBUTE: rustix::io::Errno = rustix::io::Errno::NODATA;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const NO_ATTRIBUTE: rustix::io::Errno = rustix::io::Errno::NOATTR;

impl Nodes {
    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The id stored on `full`, if any. Links have none: they are not part
    /// of the share.
    fn stored(full: &Path) -> io::Result<Option<NodeId>> {
        if std::fs::symlink_metadata(full)?.file_type().is_symlink() {
            return Ok(None);
        }
        let mut buf = [0u8; 16];
        match rustix::fs::lgetxattr(full, XATTR, &mut buf[..]) {
            Ok(16) => Ok(Some(NodeId::from_bytes(buf))),
            Ok(_) => Ok(None),
            Err(e) if e == NO_ATTRIBUTE => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The id of the file or folder at `rel`, given now if it has none;
    /// `None` if nothing (or a link) is there.
    fn id_of(&self, rel: &Path) -> io::Result<Option<NodeId>> {
        let full = self.root.join(rel);
        let meta = match std::fs::symlink_metadata(&full) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if meta.file_type().is_symlink() {
            return Ok(None);
        }
        let id = match Self::stored(&full)? {
            Some(id) => id,
            None => {
                let fresh = NodeId::generate();
                match rustix::fs::lsetxattr(
                    &full,
                    XATTR,
                    fresh.as_bytes(),
                    rustix::fs::XattrFlags::CREATE,
                ) {
                    Ok(()) => fresh,
                    // Someone else gave it one meanwhile: theirs counts.
                    Err(rustix::io::Errno::EXIST) => Self::stored(&full)?.unwrap_or(fresh),
                    Err(e) => return Err(e.into()),
                }
            }
        };
        self.index().paths.insert(id, rel.to_path_buf());
        Ok(Some(id))
    }

    /// The chain of `rel`: its node, then its ancestors' (see [`dav_chain`]).
    fn chain(&self, rel: &Path) -> Vec<NodeId> {
        dav_chain(rel, |p| self.id_of(p).ok().flatten())
    }

    /// Where `node` is now: the indexed path if the attribute there still
    /// says so, else a fresh walk of the share (at most once a second).
    fn path_of(&self, node: NodeId) -> Option<PathBuf> {
        let cached = self.index().paths.get(&node).cloned();
        if let Some(rel) = cached
            && Self::stored(&self.root.join(&rel)).ok().flatten() == Some(node)
        {
            return Some(rel);
        }
        let due = self
            .index()
            .walked
            .is_none_or(|t| t.elapsed() >= RESCAN_EVERY);
        if !due {
            return None;
        }
        let mut paths = HashMap::new();
        self.walk(Path::new(""), &mut paths);
        let mut index = self.index();
        index.paths = paths;
        index.walked = Some(Instant::now());
        index.paths.get(&node).cloned()
    }

    fn walk(&self, rel: &Path, out: &mut HashMap<NodeId, PathBuf>) {
        let full = self.root.join(rel);
        if let Ok(Some(id)) = Self::stored(&full) {
            out.insert(id, rel.to_path_buf());
        }
        let Ok(entries) = std::fs::read_dir(&full) else {
            return;
        };
        for entry in entries.flatten() {
            if entry
                .file_type()
                .is_ok_and(|t| t.is_dir() && !t.is_symlink())
            {
                self.walk(&rel.join(entry.file_name()), out);
            } else if let Ok(Some(id)) = Self::stored(&entry.path()) {
                out.insert(id, rel.join(entry.file_name()));
            }
        }
    }

    /// Whether `rel` contains a node `identity` may read (listing it shows
    /// the way there).
    fn leads_to_readable(&self, identity: &Identity, rel: &Path) -> bool {
        identity
            .scopes()
            .iter()
            .filter(|s| s.perm.contains(Perm::READ))
            .any(|s| self.path_of(s.node).is_some_and(|p| p.starts_with(rel)))
    }

    /// Whether a listing shows `rel` to `identity`: never a link.
    fn shows(&self, identity: &Identity, rel: &Path) -> bool {
        let is_link = std::fs::symlink_metadata(self.root.join(rel))
            .is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            return false;
        }
        let scopes = identity.scopes();
        scopes.is_unrestricted()
            || scopes.reveals(&self.chain(rel), |node| {
                self.path_of(*node).is_some_and(|p| p.starts_with(rel))
            })
    }

    /// Refuses a path with a link in it, below the root.
    fn no_links(&self, path: &DavPath) -> FsResult<()> {
        if self.has_link(path.as_rel_ospath()) {
            Err(FsError::Forbidden)
        } else {
            Ok(())
        }
    }

    /// Whether a part of `rel` (below the root) is a link; the parts
    /// after a missing one are not looked at.
    fn has_link(&self, rel: &Path) -> bool {
        let mut full = self.root.clone();
        for part in rel.components() {
            full.push(part);
            match std::fs::symlink_metadata(&full) {
                Ok(m) if m.file_type().is_symlink() => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }

    /// After a `MOVE`: the index follows (the attributes moved with the files).
    fn moved(&self, from: &Path, to: &Path) {
        for rel in self.index().paths.values_mut() {
            if let Ok(rest) = rel.strip_prefix(from) {
                *rel = to.join(rest);
            }
        }
    }
}

/// The local filesystem behind the share, refusing links and filtering
/// listings by the asking token's scopes. The scope checks on the request
/// itself are done before (see [`Share::check`]).
#[derive(Clone)]
struct SafeFs {
    local: Box<LocalFs>,
    nodes: Arc<Nodes>,
}

impl SafeFs {
    fn guard<'a, T: Send + 'a>(
        &'a self,
        paths: &[&DavPath],
        op: impl std::future::Future<Output = FsResult<T>> + Send + 'a,
    ) -> FsFuture<'a, T> {
        let checked = paths.iter().try_for_each(|p| self.nodes.no_links(p));
        Box::pin(async move {
            checked?;
            op.await
        })
    }
}

impl GuardedFileSystem<Access> for SafeFs {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
        _: &'a Access,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        self.guard(&[path], DavFileSystem::open(&*self.local, path, options))
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        meta: ReadDirMeta,
        access: &'a Access,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        let listed = async move {
            let mut stream = DavFileSystem::read_dir(&*self.local, path, meta).await?;
            let dir = path.as_rel_ospath().to_path_buf();
            let mut shown: Vec<FsResult<Box<dyn DavDirEntry>>> = Vec::new();
            while let Some(entry) = stream.next().await {
                let entry = entry?;
                let rel = dir.join(OsStr::from_bytes(&entry.name()));
                if self.nodes.shows(&access.identity, &rel) {
                    shown.push(Ok(entry));
                }
            }
            let stream: FsStream<Box<dyn DavDirEntry>> =
                Box::pin(futures_util::stream::iter(shown));
            Ok(stream)
        };
        self.guard(&[path], listed)
    }

    fn metadata<'a>(
        &'a self,
        path: &'a DavPath,
        _: &'a Access,
    ) -> FsFuture<'a, Box<dyn DavMetaData>> {
        self.guard(&[path], DavFileSystem::metadata(&*self.local, path))
    }

    fn symlink_metadata<'a>(
        &'a self,
        path: &'a DavPath,
        _: &'a Access,
    ) -> FsFuture<'a, Box<dyn DavMetaData>> {
        self.guard(&[path], DavFileSystem::symlink_metadata(&*self.local, path))
    }

    fn create_dir<'a>(&'a self, path: &'a DavPath, _: &'a Access) -> FsFuture<'a, ()> {
        self.guard(&[path], DavFileSystem::create_dir(&*self.local, path))
    }

    fn remove_dir<'a>(&'a self, path: &'a DavPath, _: &'a Access) -> FsFuture<'a, ()> {
        self.guard(&[path], DavFileSystem::remove_dir(&*self.local, path))
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath, _: &'a Access) -> FsFuture<'a, ()> {
        self.guard(&[path], DavFileSystem::remove_file(&*self.local, path))
    }

    fn rename<'a>(&'a self, from: &'a DavPath, to: &'a DavPath, _: &'a Access) -> FsFuture<'a, ()> {
        let moved = async move {
            DavFileSystem::rename(&*self.local, from, to).await?;
            self.nodes.moved(from.as_rel_ospath(), to.as_rel_ospath());
            Ok(())
        };
        self.guard(&[from, to], moved)
    }

    fn copy<'a>(&'a self, from: &'a DavPath, to: &'a DavPath, _: &'a Access) -> FsFuture<'a, ()> {
        self.guard(&[from, to], DavFileSystem::copy(&*self.local, from, to))
    }

    fn set_accessed<'a>(
        &'a self,
        path: &'a DavPath,
        tm: SystemTime,
        _: &Access,
    ) -> FsFuture<'a, ()> {
        self.guard(&[path], DavFileSystem::set_accessed(&*self.local, path, tm))
    }

    fn set_modified<'a>(
        &'a self,
        path: &'a DavPath,
        tm: SystemTime,
        _: &'a Access,
    ) -> FsFuture<'a, ()> {
        self.guard(&[path], DavFileSystem::set_modified(&*self.local, path, tm))
    }

    fn have_props<'a>(
        &'a self,
        path: &'a DavPath,
        _: &'a Access,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        DavFileSystem::have_props(&*self.local, path)
    }

    fn patch_props<'a>(
        &'a self,
        path: &'a DavPath,
        patch: Vec<(bool, DavProp)>,
        _: &'a Access,
    ) -> FsFuture<'a, Vec<(http::StatusCode, DavProp)>> {
        self.guard(
            &[path],
            DavFileSystem::patch_props(&*self.local, path, patch),
        )
    }

    fn get_props<'a>(
        &'a self,
        path: &'a DavPath,
        do_content: bool,
        _: &'a Access,
    ) -> FsFuture<'a, Vec<DavProp>> {
        self.guard(
            &[path],
            DavFileSystem::get_props(&*self.local, path, do_content),
        )
    }

    fn get_prop<'a>(
        &'a self,
        path: &'a DavPath,
        prop: DavProp,
        _: &'a Access,
    ) -> FsFuture<'a, Vec<u8>> {
        self.guard(&[path], DavFileSystem::get_prop(&*self.local, path, prop))
    }

    fn get_quota<'a>(&'a self, _: &'a Access) -> FsFuture<'a, (u64, Option<u64>)> {
        DavFileSystem::get_quota(&*self.local)
    }
}
