//! One SFTP session of the reference servers' SFTP share: its requests,
//! each checked against the token and its scopes (see the parent module for
//! the rules).

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pat_core::{DavAccess, Identity, LoginRefused};
use russh_sftp::protocol::{
    Attrs, Data, File as Entry, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode,
    Version,
};
use russh_sftp::server::StatusReply;

use super::{Shared, Slot};

/// Open files and folders per SFTP session.
const MAX_HANDLES: usize = 64;
/// The most bytes one `READ` answers.
const MAX_READ: u32 = 64 * 1024;
/// Entries per `READDIR` answer.
const DIR_BATCH: usize = 100;

/// An open file or folder of an SFTP session, with its place among the
/// server's handles.
enum Open {
    File {
        file: File,
        write: bool,
        rel: PathBuf,
        _slot: Slot,
    },
    Dir {
        entries: VecDeque<Entry>,
        _slot: Slot,
    },
}

/// One SFTP session: who logged in, and what they have open.
pub(super) struct SftpSession {
    shared: Arc<Shared>,
    identity: Identity,
    session: russh::server::Handle,
    handles: HashMap<String, Open>,
    next_handle: u64,
    /// Its place among the connection's sessions.
    _slot: Slot,
}

fn refuse(code: StatusCode, why: &str) -> StatusReply {
    StatusReply::new(code).with_message(why)
}

fn denied() -> StatusReply {
    refuse(
        StatusCode::PermissionDenied,
        "the token's scopes do not allow it",
    )
}

fn no_such_handle() -> StatusReply {
    refuse(StatusCode::Failure, "no such handle")
}

fn no_links() -> StatusReply {
    refuse(
        StatusCode::PermissionDenied,
        "symbolic links are not followed",
    )
}

/// An I/O error as the client sees it.
fn failed(e: &io::Error) -> StatusReply {
    match e.kind() {
        io::ErrorKind::NotFound => StatusCode::NoSuchFile.into(),
        io::ErrorKind::PermissionDenied => StatusCode::PermissionDenied.into(),
        _ => refuse(StatusCode::Failure, &e.to_string()),
    }
}

fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".into(),
        language_tag: "en-US".into(),
    }
}

/// `path` as a path relative to the share's root: the session starts at
/// `/`, the root, and `..` never leaves it. `None` for a NUL.
fn share_path(path: &str) -> Option<PathBuf> {
    if path.contains('\0') {
        return None;
    }
    let mut rel = PathBuf::new();
    for part in Path::new(path).components() {
        match part {
            Component::Normal(p) => rel.push(p),
            Component::ParentDir => {
                rel.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(rel)
}

/// How the client names `rel`.
fn shown(rel: &Path) -> String {
    format!("/{}", rel.to_string_lossy())
}

/// The attributes of a file, built here: russh-sftp's own conversion
/// panics on a time its calendar cannot show (a host can set one). Times
/// are clamped to the protocol's `u32` seconds.
fn attributes(meta: &std::fs::Metadata) -> FileAttributes {
    use std::os::unix::fs::MetadataExt as _;
    let secs = |t: i64| u32::try_from(t.max(0)).unwrap_or(u32::MAX);
    FileAttributes {
        size: Some(meta.size()),
        uid: Some(meta.uid()),
        user: None,
        gid: Some(meta.gid()),
        group: None,
        permissions: Some(meta.mode()),
        atime: Some(secs(meta.atime())),
        mtime: Some(secs(meta.mtime())),
    }
}

impl SftpSession {
    /// The session of `identity`, logged in on the connection `session`,
    /// in the place `slot` among the connection's sessions.
    pub(super) fn new(
        shared: Arc<Shared>,
        identity: Identity,
        session: russh::server::Handle,
        slot: Slot,
    ) -> SftpSession {
        SftpSession {
            shared,
            identity,
            session,
            handles: HashMap::new(),
            next_handle: 0,
            _slot: slot,
        }
    }

    /// Every request first: the token is checked again, and once refused
    /// the connection is closed.
    async fn authorize(&mut self) -> Result<(), StatusReply> {
        match self.shared.logins.recheck(&self.identity).await {
            Ok(identity) => {
                self.identity = identity;
                Ok(())
            }
            Err(refused) => {
                let handle = self.session.clone();
                tokio::spawn(async move {
                    let _ = handle
                        .disconnect(
                            russh::Disconnect::ByApplication,
                            "the token was refused".into(),
                            "en".into(),
                        )
                        .await;
                });
                let code = match refused {
                    LoginRefused::Unavailable => StatusCode::Failure,
                    _ => StatusCode::PermissionDenied,
                };
                Err(refuse(code, "the token was refused"))
            }
        }
    }

    /// The share path of `path`, after the token's check. Nothing is
    /// looked up yet: [`allow`](Self::allow) comes first, so that a token
    /// learns nothing (not even that a link is there) outside its scopes.
    async fn path(&mut self, path: &str) -> Result<PathBuf, StatusReply> {
        self.authorize().await?;
        share_path(path).ok_or_else(|| refuse(StatusCode::BadMessage, "invalid path"))
    }

    /// [`path`](Self::path), but not the root (which is not removed,
    /// renamed or opened as a file).
    async fn below_root(&mut self, path: &str) -> Result<PathBuf, StatusReply> {
        let rel = self.path(path).await?;
        if rel.as_os_str().is_empty() {
            return Err(refuse(StatusCode::PermissionDenied, "the share's root"));
        }
        Ok(rel)
    }

    /// [`below_root`](Self::below_root), allowed to be written (made,
    /// removed, its attributes set): what every change of one path asks.
    async fn changeable(&mut self, path: &str) -> Result<PathBuf, StatusReply> {
        let rel = self.below_root(path).await?;
        self.allow(DavAccess::Write, &rel, None)?;
        Ok(rel)
    }

    /// Whether the token may do `access` to `rel` (see `Share::allows`),
    /// then whether `rel` is free of links: every operation on a path asks
    /// this before it touches the path.
    fn allow(&self, access: DavAccess, rel: &Path, to: Option<&Path>) -> Result<(), StatusReply> {
        if !self.shared.share.allows(&self.identity, access, rel, to) {
            return Err(denied());
        }
        if self.shared.share.has_link(rel) {
            return Err(no_links());
        }
        Ok(())
    }

    fn full(&self, rel: &Path) -> PathBuf {
        self.shared.share.root().join(rel)
    }

    /// A place for one more open file or folder.
    fn slot(&self) -> Result<Slot, StatusReply> {
        let too_many = || refuse(StatusCode::Failure, "too many open files");
        if self.handles.len() >= MAX_HANDLES {
            return Err(too_many());
        }
        self.shared.handles.take().ok_or_else(too_many)
    }

    /// The open file `handle` names, and the share path it was opened at.
    fn file(&self, handle: &str) -> Result<(&File, &Path), StatusReply> {
        match self.handles.get(handle) {
            Some(Open::File { file, rel, .. }) => Ok((file, rel)),
            _ => Err(no_such_handle()),
        }
    }

    /// The open file `handle` names, if it was opened for writing.
    fn writable(&self, handle: &str) -> Result<&File, StatusReply> {
        match self.handles.get(handle) {
            Some(Open::File {
                file, write: true, ..
            }) => Ok(file),
            Some(Open::File { .. }) => Err(refuse(
                StatusCode::PermissionDenied,
                "the file was not opened for writing",
            )),
            _ => Err(no_such_handle()),
        }
    }

    fn add(&mut self, open: Open) -> String {
        self.next_handle += 1;
        let handle = self.next_handle.to_string();
        self.handles.insert(handle.clone(), open);
        handle
    }

    fn stat(&self, rel: &Path) -> Result<FileAttributes, StatusReply> {
        self.allow(DavAccess::List, rel, None)?;
        let meta = std::fs::symlink_metadata(self.full(rel)).map_err(|e| failed(&e))?;
        Ok(attributes(&meta))
    }

    /// Sets what `attrs` asks of the file at `full`, or of the open `file`.
    fn set(
        &self,
        full: &Path,
        file: Option<&File>,
        attrs: &FileAttributes,
    ) -> Result<(), StatusReply> {
        if attrs.permissions.is_some() || attrs.uid.is_some() || attrs.gid.is_some() {
            return Err(refuse(
                StatusCode::PermissionDenied,
                "changing a file's mode or owner is refused",
            ));
        }
        let opened;
        let file = match file {
            Some(file) => file,
            None => {
                let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
                let write = attrs.size.is_some();
                opened = OpenOptions::new()
                    .read(!write)
                    .write(write)
                    .custom_flags(nofollow)
                    .open(full)
                    .map_err(|e| failed(&e))?;
                &opened
            }
        };
        if let Some(size) = attrs.size {
            file.set_len(size).map_err(|e| failed(&e))?;
        }
        let mut times = std::fs::FileTimes::new();
        let at = |secs: u32| std::time::UNIX_EPOCH + Duration::from_secs(secs.into());
        if let Some(atime) = attrs.atime {
            times = times.set_accessed(at(atime));
        }
        if let Some(mtime) = attrs.mtime {
            times = times.set_modified(at(mtime));
        }
        if attrs.atime.is_some() || attrs.mtime.is_some() {
            file.set_times(times).map_err(|e| failed(&e))?;
        }
        Ok(())
    }

    /// The visible entries of the folder `rel`.
    fn list(&self, rel: &Path) -> Result<VecDeque<Entry>, StatusReply> {
        let mut entries = VecDeque::new();
        for entry in std::fs::read_dir(self.full(rel)).map_err(|e| failed(&e))? {
            let entry = entry.map_err(|e| failed(&e))?;
            // A name the protocol's strings cannot carry could not be
            // named back: left out.
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let child = rel.join(&name);
            if !self.shared.share.shows(&self.identity, &child) {
                continue;
            }
            if let Ok(meta) = std::fs::symlink_metadata(entry.path()) {
                entries.push_back(Entry::new(name, attributes(&meta)));
            }
        }
        Ok(entries)
    }
}

impl russh_sftp::server::Handler for SftpSession {
    type Error = StatusReply;

    fn unimplemented(&self) -> StatusReply {
        StatusCode::OpUnsupported.into()
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<Version, StatusReply> {
        self.authorize().await?;
        Ok(Version::new())
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, StatusReply> {
        let rel = self.path(&path).await?;
        Ok(Name {
            id,
            files: vec![Entry::dummy(shown(&rel))],
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, StatusReply> {
        let rel = self.path(&path).await?;
        Ok(Attrs {
            id,
            attrs: SftpSession::stat(self, &rel)?,
        })
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, StatusReply> {
        let rel = self.path(&path).await?;
        Ok(Attrs {
            id,
            attrs: SftpSession::stat(self, &rel)?,
        })
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, StatusReply> {
        self.authorize().await?;
        let (file, rel) = self.file(&handle)?;
        // As `stat` would: a write-only token does not learn a file's size
        // or times from a handle it writes with.
        self.allow(DavAccess::List, rel, None)?;
        let meta = file.metadata().map_err(|e| failed(&e))?;
        Ok(Attrs {
            id,
            attrs: attributes(&meta),
        })
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        _attrs: FileAttributes,
    ) -> Result<Handle, StatusReply> {
        let rel = self.below_root(&filename).await?;
        let changes =
            OpenFlags::WRITE | OpenFlags::APPEND | OpenFlags::CREATE | OpenFlags::TRUNCATE;
        let write = pflags.intersects(changes);
        let read = pflags.contains(OpenFlags::READ) || !write;
        if read {
            self.allow(DavAccess::Read, &rel, None)?;
        }
        if write {
            self.allow(DavAccess::Write, &rel, None)?;
        }
        // Before the file is opened: a descriptor is not taken past the
        // limits.
        let slot = self.slot()?;
        let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
        let file = OpenOptions::new()
            .read(read)
            .write(pflags.contains(OpenFlags::WRITE))
            .append(pflags.contains(OpenFlags::APPEND))
            .create(pflags.contains(OpenFlags::CREATE) && !pflags.contains(OpenFlags::EXCLUDE))
            .create_new(pflags.contains(OpenFlags::CREATE) && pflags.contains(OpenFlags::EXCLUDE))
            .truncate(pflags.contains(OpenFlags::TRUNCATE))
            .custom_flags(nofollow)
            .open(self.full(&rel))
            .map_err(|e| failed(&e))?;
        if file.metadata().is_ok_and(|m| !m.is_file()) {
            return Err(refuse(StatusCode::Failure, "not a regular file"));
        }
        let handle = self.add(Open::File {
            file,
            write,
            rel,
            _slot: slot,
        });
        Ok(Handle { id, handle })
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, StatusReply> {
        self.authorize().await?;
        let (file, _) = self.file(&handle)?;
        let mut data = vec![0; len.min(MAX_READ) as usize];
        let n = file.read_at(&mut data, offset).map_err(|e| failed(&e))?;
        if n == 0 && !data.is_empty() {
            return Err(StatusCode::Eof.into());
        }
        data.truncate(n);
        Ok(Data { id, data })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, StatusReply> {
        self.authorize().await?;
        let file = self.writable(&handle)?;
        file.write_all_at(&data, offset).map_err(|e| failed(&e))?;
        Ok(ok(id))
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, StatusReply> {
        // Released whatever the token's fate.
        let closed = self.handles.remove(&handle);
        self.authorize().await?;
        match closed {
            Some(_) => Ok(ok(id)),
            None => Err(no_such_handle()),
        }
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, StatusReply> {
        let rel = self.path(&path).await?;
        self.allow(DavAccess::List, &rel, None)?;
        let slot = self.slot()?;
        let entries = self.list(&rel)?;
        let handle = self.add(Open::Dir {
            entries,
            _slot: slot,
        });
        Ok(Handle { id, handle })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, StatusReply> {
        self.authorize().await?;
        let Some(Open::Dir { entries, .. }) = self.handles.get_mut(&handle) else {
            return Err(no_such_handle());
        };
        if entries.is_empty() {
            return Err(StatusCode::Eof.into());
        }
        let n = entries.len().min(DIR_BATCH);
        Ok(Name {
            id,
            files: entries.drain(..n).collect(),
        })
    }

    async fn mkdir(
        &mut self,
        id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, StatusReply> {
        let rel = self.changeable(&path).await?;
        std::fs::create_dir(self.full(&rel)).map_err(|e| failed(&e))?;
        Ok(ok(id))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> Result<Status, StatusReply> {
        let rel = self.changeable(&path).await?;
        std::fs::remove_dir(self.full(&rel)).map_err(|e| failed(&e))?;
        Ok(ok(id))
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, StatusReply> {
        let rel = self.changeable(&filename).await?;
        let full = self.full(&rel);
        let meta = std::fs::symlink_metadata(&full).map_err(|e| failed(&e))?;
        if meta.is_dir() {
            return Err(refuse(StatusCode::Failure, "a folder: use rmdir"));
        }
        std::fs::remove_file(full).map_err(|e| failed(&e))?;
        Ok(ok(id))
    }

    async fn rename(
        &mut self,
        id: u32,
        oldpath: String,
        newpath: String,
    ) -> Result<Status, StatusReply> {
        let from = self.below_root(&oldpath).await?;
        let to = self.below_root(&newpath).await?;
        let parent = to.parent().unwrap_or(Path::new(""));
        self.allow(DavAccess::Move, &from, Some(parent))?;
        if self.shared.share.has_link(&to) {
            return Err(no_links());
        }
        let (from_full, to_full) = (self.full(&from), self.full(&to));
        std::fs::symlink_metadata(&from_full).map_err(|e| failed(&e))?;
        // SFTP's rename does not replace (OpenSSH's server alike).
        if std::fs::symlink_metadata(&to_full).is_ok() {
            return Err(refuse(StatusCode::Failure, "the destination exists"));
        }
        std::fs::rename(&from_full, &to_full).map_err(|e| failed(&e))?;
        self.shared.share.moved(&from, &to);
        Ok(ok(id))
    }

    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> Result<Status, StatusReply> {
        let rel = self.changeable(&path).await?;
        self.set(&self.full(&rel), None, &attrs)?;
        Ok(ok(id))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: String,
        attrs: FileAttributes,
    ) -> Result<Status, StatusReply> {
        self.authorize().await?;
        let file = self.writable(&handle)?;
        self.set(Path::new(""), Some(file), &attrs)?;
        Ok(ok(id))
    }

    async fn readlink(&mut self, _id: u32, _path: String) -> Result<Name, StatusReply> {
        self.authorize().await?;
        Err(no_links())
    }

    async fn symlink(
        &mut self,
        _id: u32,
        _linkpath: String,
        _targetpath: String,
    ) -> Result<Status, StatusReply> {
        self.authorize().await?;
        Err(refuse(
            StatusCode::PermissionDenied,
            "symbolic links are not part of the share",
        ))
    }

    async fn extended(
        &mut self,
        _id: u32,
        request: String,
        _data: Vec<u8>,
    ) -> Result<russh_sftp::protocol::Packet, StatusReply> {
        self.authorize().await?;
        if request == "hardlink@openssh.com" {
            return Err(refuse(
                StatusCode::PermissionDenied,
                "hard links are refused",
            ));
        }
        Err(StatusCode::OpUnsupported.into())
    }
}
