//! The decisions of the routes pat mounts (self-service, management,
//! introspection, leak reports, the panel, WebDAV access), answered alike by
//! both adapters, and the rules they share (the cross-site rule, request
//! hygiene, trusted proxies).

pub mod answer;
pub mod calendar;
pub mod csrf;
pub mod gitlab_revocation;
pub mod hygiene;
pub mod introspection;
pub mod leaks;
pub mod management;
pub mod panel;
pub(crate) mod proxy;
pub mod secret_scanning;
pub mod self_service;
pub(crate) mod webdav;
