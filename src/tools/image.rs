//! The image `fdlab dump` writes and `fdlab restore` reads: a process tree
//! and its descriptors, as versioned JSON.
//!
//! What is in it: the processes (parents before children), the descriptor
//! tables (a table several processes share is there once), every open file
//! with its kind and state (path, access mode and status flags, offset; a
//! pipe end and the pipe; a socket end and its pair; an epoll's
//! registrations, each with the number it was made under and the file it
//! was made for; an eventfd's counter), the bytes queued in each pipe, the
//! messages queued in each socket pair with the files in flight in them,
//! and what could not be dumped, with the reason.
//!
//! Open files are numbered by the image (`files[i].id == i`); a file in
//! flight, or one only an epoll still watches, has an id and no
//! descriptor.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use fdlab_model::limits::NR_OPEN;
use fdlab_model::pipe::PipeEnd;
use fdlab_model::SockType;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::lang::text::{escape, unescape};

/// What the `format` field of an image says.
pub const FORMAT: &str = "fdlab-image";
/// The version this fdlab writes and reads.
pub const VERSION: u32 = 1;

/// Bytes, in JSON as the language's string escapes (`"ab\n\x00"`), so an
/// image stays readable.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&escape(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let text = String::deserialize(d)?;
        unescape(&text)
            .map(Bytes)
            .map_err(|(at, why)| serde::de::Error::custom(format!("at {at}: {why}")))
    }
}

/// A dumped tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// Parents before children.
    pub processes: Vec<ProcImage>,
    pub tables: Vec<TableImage>,
    pub files: Vec<FileImage>,
    #[serde(default)]
    pub pipes: Vec<PipeImage>,
    #[serde(default)]
    pub pairs: Vec<PairImage>,
    /// What could not be dumped, and why. Restore refuses an image with
    /// any, unless told to skip them.
    #[serde(default)]
    pub unrestorable: Vec<Unrestorable>,
}

/// A process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcImage {
    pub id: usize,
    /// Its name: a scenario's name, or `command[pid]` for a live process.
    pub name: String,
    /// Its parent among the dumped processes.
    #[serde(default)]
    pub parent: Option<usize>,
    /// The table it uses.
    pub table: usize,
    /// Its soft `RLIMIT_NOFILE`, when known.
    #[serde(default)]
    pub rlimit: Option<u64>,
}

/// A descriptor table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableImage {
    pub id: usize,
    pub fds: Vec<FdImage>,
}

/// A descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdImage {
    pub fd: u32,
    pub file: usize,
    #[serde(default)]
    pub cloexec: bool,
}

/// An open file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileImage {
    pub id: usize,
    /// Access mode and status flags, as `F_GETFL` prints them.
    pub flags: String,
    #[serde(flatten)]
    pub object: Object,
}

/// An epoll registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The number it was made under (it may be closed now, or name another
    /// file).
    pub fd: u32,
    /// The file it was made for.
    pub file: usize,
    pub events: String,
}

/// What an open file is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Object {
    Regular {
        path: String,
        offset: u64,
    },
    Directory {
        path: String,
        offset: u64,
    },
    /// A character device; `/dev/ptmx` makes a new pseudo-terminal.
    Chardev {
        path: String,
    },
    Pipe {
        pipe: usize,
        end: PipeEnd,
    },
    Socket {
        pair: usize,
        /// 0 or 1.
        end: usize,
    },
    Epoll {
        registrations: Vec<Registration>,
    },
    Eventfd {
        count: u64,
    },
    /// Something restore cannot make (a network socket, an inotify...),
    /// as `/proc` names it; listed in the image's `unrestorable`.
    Other {
        what: String,
    },
}

/// A pipe and what is queued in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipeImage {
    pub id: usize,
    pub data: Bytes,
    /// Its capacity in bytes, when it is not the default 16 pages
    /// (`F_SETPIPE_SZ` changed it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u64>,
}

/// A message queued on a socket, with the files in flight in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub data: Bytes,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<usize>,
}

/// A connected pair of unix sockets and what is queued for each end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairImage {
    pub id: usize,
    #[serde(rename = "type")]
    pub ty: SockType,
    /// Messages waiting to be read at end 0 and at end 1.
    pub queued: [Vec<Message>; 2],
}

/// Something the dump met and cannot restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unrestorable {
    /// The process and descriptor, or what else it was.
    pub what: String,
    pub why: String,
}

/// An image that cannot be restored as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidImage(pub String);

fn bad<T>(msg: impl fmt::Display) -> Result<T, InvalidImage> {
    Err(InvalidImage(msg.to_string()))
}

impl Image {
    /// An empty image.
    pub fn new() -> Image {
        Image {
            format: FORMAT.into(),
            version: VERSION,
            processes: Vec::new(),
            tables: Vec::new(),
            files: Vec::new(),
            pipes: Vec::new(),
            pairs: Vec::new(),
            unrestorable: Vec::new(),
        }
    }

    /// Checks everything restore relies on, before anything is made:
    /// the format and version, ids in order, parents before children, every
    /// reference resolvable, every descriptor below Linux's `NR_OPEN` and
    /// none twice in one table, at most one file per socket end, flags and
    /// events that parse.
    ///
    /// Errors: the first problem, naming what it is about.
    pub fn validate(&self) -> Result<(), InvalidImage> {
        if self.format != FORMAT {
            return bad(format!("not an fdlab image (format `{}`)", self.format));
        }
        if self.version != VERSION {
            return bad(format!(
                "image version {} (this fdlab reads version {VERSION})",
                self.version
            ));
        }
        let ids_in_order = |what: &str, ids: &mut dyn Iterator<Item = usize>| {
            for (i, id) in ids.enumerate() {
                if id != i {
                    return bad(format!("{what} {i} has id {id}: ids must count from 0"));
                }
            }
            Ok(())
        };
        ids_in_order("process", &mut self.processes.iter().map(|p| p.id))?;
        ids_in_order("table", &mut self.tables.iter().map(|t| t.id))?;
        ids_in_order("file", &mut self.files.iter().map(|f| f.id))?;
        ids_in_order("pipe", &mut self.pipes.iter().map(|p| p.id))?;
        ids_in_order("socket pair", &mut self.pairs.iter().map(|p| p.id))?;
        let mut names = BTreeSet::new();
        let mut used_tables = BTreeSet::new();
        for p in &self.processes {
            if p.name.is_empty() || !names.insert(&p.name) {
                return bad(format!(
                    "process {}: name `{}` is empty or used twice",
                    p.id, p.name
                ));
            }
            if let Some(parent) = p.parent {
                if parent >= p.id {
                    return bad(format!(
                        "process {} (`{}`): its parent {parent} does not come before it",
                        p.id, p.name
                    ));
                }
            }
            if p.table >= self.tables.len() {
                return bad(format!(
                    "process {} (`{}`): no table {}",
                    p.id, p.name, p.table
                ));
            }
            used_tables.insert(p.table);
        }
        let nfiles = self.files.len();
        for t in &self.tables {
            if !used_tables.contains(&t.id) {
                return bad(format!("table {}: no process uses it", t.id));
            }
            let mut seen = BTreeSet::new();
            for d in &t.fds {
                if d.fd >= NR_OPEN {
                    return bad(format!(
                        "table {}: descriptor {} (Linux allows numbers below {NR_OPEN})",
                        t.id, d.fd
                    ));
                }
                if !seen.insert(d.fd) {
                    return bad(format!("table {}: descriptor {} twice", t.id, d.fd));
                }
                if d.file >= nfiles {
                    return bad(format!("table {} fd {}: no file {}", t.id, d.fd, d.file));
                }
            }
        }
        let mut pair_ends: BTreeMap<(usize, usize), usize> = BTreeMap::new();
        for f in &self.files {
            status_flags(&f.flags).map_err(|e| InvalidImage(format!("file {}: {e}", f.id)))?;
            match &f.object {
                Object::Regular { path, .. }
                | Object::Directory { path, .. }
                | Object::Chardev { path } => {
                    if path.is_empty() || path.contains('\0') {
                        return bad(format!("file {}: path `{path}`", f.id));
                    }
                }
                Object::Pipe { pipe, .. } => {
                    if *pipe >= self.pipes.len() {
                        return bad(format!("file {}: no pipe {pipe}", f.id));
                    }
                    // Several files may be one end: opened again through
                    // `/proc/PID/fd/N`, each is an open file of its own.
                }
                Object::Socket { pair, end } => {
                    if *pair >= self.pairs.len() || *end > 1 {
                        return bad(format!("file {}: no end {end} of socket pair {pair}", f.id));
                    }
                    if let Some(o) = pair_ends.insert((*pair, *end), f.id) {
                        return bad(format!(
                            "files {o} and {}: both end {end} of socket pair {pair}",
                            f.id
                        ));
                    }
                }
                Object::Epoll { registrations } => {
                    let mut seen = BTreeSet::new();
                    for r in registrations {
                        if r.file >= nfiles || r.file == f.id {
                            return bad(format!(
                                "epoll file {}: registration under {} names file {}",
                                f.id, r.fd, r.file
                            ));
                        }
                        if !seen.insert((r.fd, r.file)) {
                            return bad(format!(
                                "epoll file {}: file {} registered under {} twice",
                                f.id, r.file, r.fd
                            ));
                        }
                        events(&r.events)
                            .map_err(|e| InvalidImage(format!("epoll file {}: {e}", f.id)))?;
                    }
                }
                Object::Eventfd { .. } | Object::Other { .. } => {}
            }
        }
        for p in &self.pairs {
            for q in &p.queued {
                for m in q {
                    if let Some(&f) = m.files.iter().find(|&&f| f >= nfiles) {
                        return bad(format!(
                            "socket pair {}: a message carries no file {f}",
                            p.id
                        ));
                    }
                }
            }
        }
        // Every file is reachable: named by a descriptor, in flight, or
        // watched.
        let mut reached = vec![false; nfiles];
        for t in &self.tables {
            for d in &t.fds {
                reached[d.file] = true;
            }
        }
        for p in &self.pairs {
            for m in p.queued.iter().flatten() {
                for &f in &m.files {
                    reached[f] = true;
                }
            }
        }
        for f in &self.files {
            if let Object::Epoll { registrations } = &f.object {
                for r in registrations {
                    reached[r.file] = true;
                }
            }
        }
        if let Some(f) = reached.iter().position(|r| !r) {
            return bad(format!(
                "file {f}: no descriptor names it, no message carries it, no epoll watches it"
            ));
        }
        Ok(())
    }

    /// The image as a restore that skips what it cannot make leaves it:
    /// without the files listed as unrestorable (`Object::Other`), their
    /// descriptors, registrations and places in messages. Files keep
    /// their ids until [`crate::tools::dump::canonical`] numbers them
    /// again, so the result is only for comparing.
    pub fn without_unrestorable(&self) -> Image {
        let gone: BTreeSet<usize> = self
            .files
            .iter()
            .filter(|f| matches!(f.object, Object::Other { .. }))
            .map(|f| f.id)
            .collect();
        let mut img = self.clone();
        img.unrestorable.clear();
        if gone.is_empty() {
            return img;
        }
        for t in &mut img.tables {
            t.fds.retain(|d| !gone.contains(&d.file));
        }
        for f in &mut img.files {
            if let Object::Epoll { registrations } = &mut f.object {
                registrations.retain(|r| !gone.contains(&r.file));
            }
        }
        for p in &mut img.pairs {
            for m in p.queued.iter_mut().flatten() {
                m.files.retain(|f| !gone.contains(f));
            }
        }
        img
    }

    /// The processes that use table `t`.
    pub fn users(&self, t: usize) -> impl Iterator<Item = &ProcImage> {
        self.processes.iter().filter(move |p| p.table == t)
    }
}

impl Default for Image {
    fn default() -> Image {
        Image::new()
    }
}

/// Status flags as `F_GETFL` prints them, parsed.
///
/// Errors: a name that is not a flag.
pub fn status_flags(text: &str) -> Result<fdlab_model::OFlags, String> {
    let mut f = fdlab_model::OFlags::RDONLY;
    for part in text.split('|') {
        f |=
            fdlab_model::OFlags::from_name(part).ok_or_else(|| format!("unknown flag `{part}`"))?;
    }
    Ok(f)
}

/// Events as the language writes them, parsed.
///
/// Errors: a name that is not an event.
pub fn events(text: &str) -> Result<fdlab_model::Events, String> {
    if text == "0" {
        return Ok(fdlab_model::Events::default());
    }
    let mut e = fdlab_model::Events::default();
    for part in text.split('|') {
        e = e | fdlab_model::Events::from_name(part)
            .ok_or_else(|| format!("unknown event `{part}`"))?;
    }
    Ok(e)
}
