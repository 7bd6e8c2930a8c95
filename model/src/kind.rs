//! The kinds of open file a topology shows, named as every backend names
//! them. A leaf: the model's vnodes and the Linux backend's `/proc` reader
//! both map what they see onto it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of object an open file refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    Regular,
    Directory,
    /// A character device: `/dev/null`, `/dev/zero`, a terminal.
    Chardev,
    Pipe,
    Socket,
    Epoll,
    Eventfd,
    /// Something a backend saw and could not name.
    Unknown,
}

impl FileType {
    pub fn name(self) -> &'static str {
        match self {
            FileType::Regular => "regular",
            FileType::Directory => "directory",
            FileType::Chardev => "chardev",
            FileType::Pipe => "pipe",
            FileType::Socket => "socket",
            FileType::Epoll => "epoll",
            FileType::Eventfd => "eventfd",
            FileType::Unknown => "unknown",
        }
    }
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
