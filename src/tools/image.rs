//! The image `fdlab dump` writes and `fdlab restore` reads: a process tree
//! and its descriptors, as versioned JSON.
//!
//! What is in it: the processes (parents before children), the descriptor
//! tables (a table several processes share is there once), every open file
//! with its kind and state (path, access mode and status flags, offset; a
//! pipe end and the pipe; a socket end and its pair; an epoll's
//! registrations, each with the number it was made under and the file it
//! was made for; an eventfd's counter; a unix socket's name, and a
//! listener's backlog and waiting connections), the bytes queued in each
//! pipe, the messages queued in each socket pair with the files in flight
//! in them, and what could not be dumped, with the reason.
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
    /// The session it is in, by the process that leads it (itself, when it
    /// leads one); none for the session the tree was started in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<usize>,
    /// Its controlling terminal: the slave of the image's pty of this
    /// number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctty: Option<usize>,
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

impl FileImage {
    /// File `id`: an end of pipe `pipe` as `pipe(2)` opens it (the read
    /// end `O_RDONLY`, the write end `O_WRONLY`).
    pub fn pipe_end(id: usize, pipe: usize, end: PipeEnd) -> FileImage {
        let flags = match end {
            PipeEnd::Read => "O_RDONLY",
            PipeEnd::Write => "O_WRONLY",
        };
        FileImage {
            id,
            flags: flags.into(),
            object: Object::Pipe { pipe, end },
        }
    }
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
    /// A character device; `/dev/ptmx` makes a new pseudo-terminal, which
    /// `pty` numbers (an image may leave the number out: a pty of its own
    /// with no slave).
    Chardev {
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pty: Option<usize>,
    },
    /// A slave of pseudo-terminal `pty`, whose master is a `/dev/ptmx` file
    /// of the image.
    #[serde(rename = "pty-slave")]
    PtySlave {
        pty: usize,
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
    /// A unix socket as `socket(2)` made it, not one of a pair: bound to
    /// `name` if it has one; a stream or seqpacket socket listening if it
    /// has `listen`; a datagram socket sending to `peer` if it connected
    /// to one (which does not send back), with the messages waiting to be
    /// read at it.
    Unix {
        #[serde(rename = "type")]
        ty: SockType,
        /// A path relative to the tree's root, or `@name` in the abstract
        /// namespace.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        listen: Option<Listen>,
        /// The file of the socket it sends to (datagram only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<usize>,
        /// Messages waiting to be read at it (datagram only), oldest
        /// first.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        queued: Vec<Message>,
        /// What `shutdown(2)` stopped (datagram only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shutdown: Option<Shut>,
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

/// What a listening socket keeps: its backlog, and the connections that
/// wait in its queue to be accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listen {
    /// As `listen(2)` left it (capped at `net.core.somaxconn`); one more
    /// than this many connections may wait.
    pub backlog: u32,
    /// The waiting connections, oldest first: socket pairs whose listener
    /// side is in the queue (no file yet) and whose client is a file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<usize>,
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
    /// Ends with a pending `ECONNRESET` (stream: the peer was closed with
    /// unread data; the next read of an empty queue reports it, once).
    /// Only an end whose peer is closed can have one.
    #[serde(default, skip_serializing_if = "no_reset")]
    pub reset: [bool; 2],
    /// Each end's `shutdown(2)` state while both ends are open:
    /// `SHUT_RD`, `SHUT_WR`, `SHUT_RDWR`, or nothing. (An end whose peer
    /// closed shows as shut both ways; closing the peer again makes that.)
    #[serde(default, skip_serializing_if = "no_shutdown")]
    pub shutdown: [Option<Shut>; 2],
    /// Each end's name: bound (a path relative to the tree's root, or
    /// `@name`), or its listener's, which a connection accepted from it
    /// carries.
    #[serde(default, skip_serializing_if = "no_names")]
    pub names: [Option<String>; 2],
    /// The listening socket (a file of the image) an end was accepted
    /// from, or waits in the queue of: restore makes that connection with
    /// `connect` and `accept` through it, which gives the end its name.
    #[serde(default, skip_serializing_if = "no_listener")]
    pub listener: [Option<usize>; 2],
}

impl PairImage {
    /// Pair `id` of type `ty`, nothing queued, no names.
    pub fn new(id: usize, ty: SockType) -> PairImage {
        PairImage {
            id,
            ty,
            queued: [Vec::new(), Vec::new()],
            reset: [false, false],
            shutdown: [None, None],
            names: [None, None],
            listener: [None, None],
        }
    }
}

fn no_names(n: &[Option<String>; 2]) -> bool {
    n[0].is_none() && n[1].is_none()
}

fn no_listener(l: &[Option<usize>; 2]) -> bool {
    l[0].is_none() && l[1].is_none()
}

/// What `shutdown(2)` stopped at one end of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shut {
    #[serde(rename = "SHUT_RD")]
    Rd,
    #[serde(rename = "SHUT_WR")]
    Wr,
    #[serde(rename = "SHUT_RDWR")]
    RdWr,
}

impl Shut {
    /// From the kernel's `sk_shutdown` bits (`RCV_SHUTDOWN` 1,
    /// `SEND_SHUTDOWN` 2).
    pub fn from_bits(bits: u8) -> Option<Shut> {
        match bits & 3 {
            1 => Some(Shut::Rd),
            2 => Some(Shut::Wr),
            3 => Some(Shut::RdWr),
            _ => None,
        }
    }

    /// `shutdown(2)`'s `how`.
    pub fn how(self) -> i32 {
        match self {
            Shut::Rd => 0,
            Shut::Wr => 1,
            Shut::RdWr => 2,
        }
    }
}

fn no_shutdown(s: &[Option<Shut>; 2]) -> bool {
    s[0].is_none() && s[1].is_none()
}

fn no_reset(r: &[bool; 2]) -> bool {
    !r[0] && !r[1]
}

/// Something the dump met and cannot restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unrestorable {
    /// The process and descriptor, or what else it was.
    pub what: String,
    pub why: String,
}

/// An image that cannot be restored as it is, and where in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct InvalidImage {
    pub at: At,
    pub msg: String,
}

/// Where in an image a problem is: a top-level field, or an element of
/// one of its lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    Field(&'static str),
    Item(&'static str, usize),
}

fn bad<T>(at: At, msg: impl fmt::Display) -> Result<T, InvalidImage> {
    Err(InvalidImage {
        at,
        msg: msg.to_string(),
    })
}

fn invalid(at: At, msg: String) -> InvalidImage {
    InvalidImage { at, msg }
}

/// Why an image file could not be read, placed in it.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{col}: {msg}")]
pub struct ImageError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

/// Reads the image in `text` (from `file`, for messages) and validates it.
///
/// Errors: not JSON, not an image, or invalid, at the line and column of
/// the part that is wrong.
pub fn parse(file: &str, text: &str) -> Result<Image, ImageError> {
    let img: Image = serde_json::from_str(text).map_err(|e| ImageError {
        file: file.to_string(),
        line: e.line().max(1),
        col: e.column().max(1),
        msg: format!("not a valid image: {e}")
            .split(" at line ")
            .next()
            .unwrap_or_default()
            .to_string(),
    })?;
    img.validate().map_err(|e| {
        let (line, col) = locate(text, e.at);
        ImageError {
            file: file.to_string(),
            line,
            col,
            msg: e.msg,
        }
    })?;
    Ok(img)
}

/// The line and column (from 1) where `at` starts in the JSON `text` (the
/// start of the document when it is not found).
pub fn locate(text: &str, at: At) -> (usize, usize) {
    let (key, item) = match at {
        At::Field(k) => (k, None),
        At::Item(k, i) => (k, Some(i)),
    };
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    // Inside the wanted top-level value: which element comes next.
    let mut inside: Option<usize> = None;
    let mut last_key: Option<&str> = None;
    let mut expect_value = false;
    let pos = |at: usize| {
        let before = &text[..at];
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map_or(0, |n| n + 1) + 1;
        (line, col)
    };
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if expect_value && depth == 1 {
            expect_value = false;
            if last_key == Some(key) {
                match item {
                    None => return pos(i),
                    Some(_) if c == b'[' => inside = Some(0),
                    Some(_) => return pos(i),
                }
            }
        } else if let (Some(n), Some(want)) = (inside, item) {
            if depth == 2 && c != b']' && c != b',' {
                if n == want {
                    return pos(i);
                }
                inside = Some(n + 1);
                // Skip this element.
                let mut d = 0usize;
                while i < b.len() {
                    match b[i] {
                        b'"' => {
                            i += 1;
                            while i < b.len() && b[i] != b'"' {
                                i += if b[i] == b'\\' { 2 } else { 1 };
                            }
                        }
                        b'{' | b'[' => d += 1,
                        b'}' | b']' if d == 0 => break,
                        b'}' | b']' => {
                            d -= 1;
                            if d == 0 {
                                i += 1;
                                break;
                            }
                        }
                        b',' if d == 0 => break,
                        _ => {}
                    }
                    i += 1;
                }
                continue;
            }
        }
        match c {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                if depth == 1 {
                    last_key = text.get(start..i.min(b.len()));
                }
            }
            b':' if depth == 1 => expect_value = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                if depth == 2 && inside.is_some() {
                    inside = None;
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
        i += 1;
    }
    (1, 1)
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

    /// An image of processes (name, parent's id, table id) whose tables
    /// are all empty: the shape of a tree, for tests and benchmarks.
    pub fn of_tree(procs: &[(&str, Option<usize>, usize)]) -> Image {
        let mut img = Image::new();
        let tables = procs.iter().map(|p| p.2).max().map_or(0, |t| t + 1);
        img.tables = (0..tables)
            .map(|id| TableImage {
                id,
                fds: Vec::new(),
            })
            .collect();
        img.processes = procs
            .iter()
            .enumerate()
            .map(|(id, &(name, parent, table))| ProcImage {
                id,
                name: name.into(),
                parent,
                table,
                rlimit: None,
                session: None,
                ctty: None,
            })
            .collect();
        img
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
            return bad(
                At::Field("format"),
                format!("not an fdlab image (format `{}`)", self.format),
            );
        }
        if self.version != VERSION {
            return bad(
                At::Field("version"),
                format!(
                    "image version {} (this fdlab reads version {VERSION})",
                    self.version
                ),
            );
        }
        let ids_in_order =
            |what: &str, section: &'static str, ids: &mut dyn Iterator<Item = usize>| {
                for (i, id) in ids.enumerate() {
                    if id != i {
                        return bad(
                            At::Item(section, i),
                            format!("{what} {i} has id {id}: ids must count from 0"),
                        );
                    }
                }
                Ok(())
            };
        ids_in_order(
            "process",
            "processes",
            &mut self.processes.iter().map(|p| p.id),
        )?;
        ids_in_order("table", "tables", &mut self.tables.iter().map(|t| t.id))?;
        ids_in_order("file", "files", &mut self.files.iter().map(|f| f.id))?;
        ids_in_order("pipe", "pipes", &mut self.pipes.iter().map(|p| p.id))?;
        ids_in_order("socket pair", "pairs", &mut self.pairs.iter().map(|p| p.id))?;
        let mut names = BTreeSet::new();
        let mut used_tables = BTreeSet::new();
        for p in &self.processes {
            if p.name.is_empty() || !names.insert(&p.name) {
                return bad(
                    At::Item("processes", p.id),
                    format!("process {}: name `{}` is empty or used twice", p.id, p.name),
                );
            }
            if let Some(parent) = p.parent {
                if parent >= p.id {
                    return bad(
                        At::Item("processes", p.id),
                        format!(
                            "process {} (`{}`): its parent {parent} does not come before it",
                            p.id, p.name
                        ),
                    );
                }
            }
            if p.table >= self.tables.len() {
                return bad(
                    At::Item("processes", p.id),
                    format!("process {} (`{}`): no table {}", p.id, p.name, p.table),
                );
            }
            used_tables.insert(p.table);
            self.validate_session(p)?;
        }
        let nfiles = self.files.len();
        for t in &self.tables {
            if !used_tables.contains(&t.id) {
                return bad(
                    At::Item("tables", t.id),
                    format!("table {}: no process uses it", t.id),
                );
            }
            let mut seen = BTreeSet::new();
            for d in &t.fds {
                if d.fd >= NR_OPEN {
                    return bad(
                        At::Item("tables", t.id),
                        format!(
                            "table {}: descriptor {} (Linux allows numbers below {NR_OPEN})",
                            t.id, d.fd
                        ),
                    );
                }
                if !seen.insert(d.fd) {
                    return bad(
                        At::Item("tables", t.id),
                        format!("table {}: descriptor {} twice", t.id, d.fd),
                    );
                }
                if d.file >= nfiles {
                    return bad(
                        At::Item("tables", t.id),
                        format!("table {} fd {}: no file {}", t.id, d.fd, d.file),
                    );
                }
            }
        }
        let mut pair_ends: BTreeMap<(usize, usize), usize> = BTreeMap::new();
        let mut pty_masters: BTreeMap<usize, usize> = BTreeMap::new();
        let mut pty_slaves: Vec<(usize, usize)> = Vec::new();
        // Pairs waiting in a listener's queue: pair to listener.
        let mut pending_in: BTreeMap<usize, usize> = BTreeMap::new();
        for f in &self.files {
            status_flags(&f.flags)
                .map_err(|e| invalid(At::Item("files", f.id), format!("file {}: {e}", f.id)))?;
            match &f.object {
                Object::Regular { path, .. }
                | Object::Directory { path, .. }
                | Object::Chardev { path, .. } => {
                    if path.is_empty() || path.contains('\0') {
                        return bad(
                            At::Item("files", f.id),
                            format!("file {}: path `{path}`", f.id),
                        );
                    }
                    if let Object::Chardev { pty: Some(n), .. } = f.object {
                        if path != "/dev/ptmx" {
                            return bad(
                                At::Item("files", f.id),
                                format!("file {}: `{path}` is no pty master (pty {n})", f.id),
                            );
                        }
                        if let Some(o) = pty_masters.insert(n, f.id) {
                            return bad(
                                At::Item("files", f.id),
                                format!("files {o} and {}: both the master of pty {n}", f.id),
                            );
                        }
                    }
                }
                Object::PtySlave { pty } => pty_slaves.push((f.id, *pty)),
                Object::Pipe { pipe, .. } => {
                    if *pipe >= self.pipes.len() {
                        return bad(
                            At::Item("files", f.id),
                            format!("file {}: no pipe {pipe}", f.id),
                        );
                    }
                    // Several files may be one end: opened again through
                    // `/proc/PID/fd/N`, each is an open file of its own.
                }
                Object::Socket { pair, end } => {
                    if *pair >= self.pairs.len() || *end > 1 {
                        return bad(
                            At::Item("files", f.id),
                            format!("file {}: no end {end} of socket pair {pair}", f.id),
                        );
                    }
                    if let Some(o) = pair_ends.insert((*pair, *end), f.id) {
                        return bad(
                            At::Item("files", f.id),
                            format!(
                                "files {o} and {}: both end {end} of socket pair {pair}",
                                f.id
                            ),
                        );
                    }
                }
                Object::Epoll { registrations } => {
                    let mut seen = BTreeSet::new();
                    for r in registrations {
                        if r.file >= nfiles || r.file == f.id {
                            return bad(
                                At::Item("files", f.id),
                                format!(
                                    "epoll file {}: registration under {} names file {}",
                                    f.id, r.fd, r.file
                                ),
                            );
                        }
                        if !seen.insert((r.fd, r.file)) {
                            return bad(
                                At::Item("files", f.id),
                                format!(
                                    "epoll file {}: file {} registered under {} twice",
                                    f.id, r.file, r.fd
                                ),
                            );
                        }
                        events(&r.events).map_err(|e| {
                            invalid(At::Item("files", f.id), format!("epoll file {}: {e}", f.id))
                        })?;
                    }
                }
                Object::Unix {
                    ty,
                    name,
                    listen,
                    peer,
                    queued,
                    shutdown,
                } => {
                    let at = At::Item("files", f.id);
                    let dgram = *ty == SockType::Dgram;
                    if dgram && listen.is_some() {
                        return bad(
                            at,
                            format!("file {}: a datagram socket does not listen", f.id),
                        );
                    }
                    if !dgram && (peer.is_some() || !queued.is_empty() || shutdown.is_some()) {
                        return bad(at, format!("file {}: only a datagram socket sends to a peer or has messages without one", f.id));
                    }
                    if !queued.is_empty() && name.is_none() {
                        return bad(at, format!("file {}: messages wait at a socket that has no name to send them to", f.id));
                    }
                    if let Some(&m) = queued.iter().flat_map(|m| &m.files).find(|&&g| g >= nfiles) {
                        return bad(at, format!("file {}: a message carries no file {m}", f.id));
                    }
                    if let Some(p) = *peer {
                        // (Itself, if it connected to its own name.)
                        if !self.named_dgram(p) {
                            return bad(at, format!("file {}: its peer, file {p}, is no unpaired datagram socket with a name", f.id));
                        }
                    }
                    if let Some(n) = name {
                        socket_name(n).map_err(|e| invalid(at, format!("file {}: {e}", f.id)))?;
                    }
                    if let Some(l) = listen {
                        if name.is_none() {
                            return bad(
                                at,
                                format!("file {}: a listening socket has a name", f.id),
                            );
                        }
                        for &p in &l.pending {
                            if p >= self.pairs.len() {
                                return bad(
                                    at,
                                    format!("file {}: no socket pair {p} waits in its queue", f.id),
                                );
                            }
                            if let Some(o) = pending_in.insert(p, f.id) {
                                return bad(
                                    at,
                                    format!(
                                        "files {o} and {}: socket pair {p} waits in both queues",
                                        f.id
                                    ),
                                );
                            }
                        }
                    }
                }
                Object::Eventfd { .. } | Object::Other { .. } => {}
            }
        }
        if let Some((f, pty)) = pty_slaves
            .iter()
            .find(|(_, pty)| !pty_masters.contains_key(pty))
        {
            return bad(
                At::Item("files", *f),
                format!("pty slave file {f}: no file is the master of pty {pty}"),
            );
        }
        for p in &self.pairs {
            for (e, _) in p.reset.iter().enumerate().filter(|r| *r.1) {
                if let Some(f) = pair_ends.get(&(p.id, 1 - e)) {
                    return bad(
                        At::Item("pairs", p.id),
                        format!(
                            "socket pair {}: end {e} has a pending reset, but its peer (file {f}) is open",
                            p.id
                        ),
                    );
                }
            }
            self.validate_connection(p, &pair_ends, &pending_in)?;
            for q in &p.queued {
                for m in q {
                    if let Some(&f) = m.files.iter().find(|&&f| f >= nfiles) {
                        return bad(
                            At::Item("pairs", p.id),
                            format!("socket pair {}: a message carries no file {f}", p.id),
                        );
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
            match &f.object {
                Object::Epoll { registrations } => {
                    for r in registrations {
                        reached[r.file] = true;
                    }
                }
                Object::Unix { queued, .. } => {
                    for m in queued {
                        for &g in &m.files {
                            reached[g] = true;
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(f) = reached.iter().position(|r| !r) {
            return bad(
                At::Item("files", f),
                format!(
                    "file {f}: no descriptor names it, no message carries it, no epoll watches it"
                ),
            );
        }
        Ok(())
    }

    /// The name of socket file `f`, if it is a socket with one.
    pub fn socket_name(&self, f: usize) -> Option<String> {
        match self.files.get(f).map(|x| &x.object) {
            Some(Object::Unix { name, .. }) => name.clone(),
            Some(&Object::Socket { pair, end }) => {
                self.pairs.get(pair).and_then(|p| p.names[end].clone())
            }
            _ => None,
        }
    }

    /// Whether file `f` is a datagram socket with a name and no pair
    /// (which a socket can connect to).
    fn named_dgram(&self, f: usize) -> bool {
        matches!(
            self.files.get(f).map(|x| &x.object),
            Some(Object::Unix {
                ty: SockType::Dgram,
                name: Some(_),
                ..
            })
        )
    }

    /// Pair `p`'s names and listeners agree with the listening sockets:
    /// an end accepted from a listener is a file named as it is; a pair
    /// waiting in a listener's queue has its client as a file, and its
    /// listener side, with nothing queued for it, not yet.
    /// The numbers of the ptys whose master is a file of the image.
    pub fn pty_masters(&self) -> BTreeSet<usize> {
        self.files
            .iter()
            .filter_map(|f| match f.object {
                Object::Chardev { pty, .. } => pty,
                _ => None,
            })
            .collect()
    }

    /// A process's session is led by a process of the image that leads
    /// it; a controlling terminal is a pty of the image whose master is a
    /// file, and the one its session's leader has (a member gets it only
    /// from the leader, by fork, and loses it with the whole session).
    fn validate_session(&self, p: &ProcImage) -> Result<(), InvalidImage> {
        let at = At::Item("processes", p.id);
        let who = format!("process {} (`{}`)", p.id, p.name);
        if let Some(l) = p.session {
            if self.processes.get(l).and_then(|l| l.session) != Some(l) {
                return bad(
                    at,
                    format!("{who}: its session's leader {l} is no process that leads a session"),
                );
            }
        }
        let Some(n) = p.ctty else { return Ok(()) };
        let leader = p.session.and_then(|l| self.processes.get(l));
        if leader.and_then(|l| l.ctty) != Some(n) {
            return bad(
                at,
                format!("{who}: its controlling terminal, pty {n}, is not its session leader's"),
            );
        }
        if !self.pty_masters().contains(&n) {
            return bad(at, format!("{who}: no pty {n} has a master file"));
        }
        // Members have their leader's: leaders are enough to compare.
        let other = self
            .processes
            .iter()
            .find(|q| q.ctty == Some(n) && q.session == Some(q.id) && q.session != p.session);
        if let Some(q) = other {
            return bad(
                at,
                format!(
                    "{who}: pty {n} is also the controlling terminal of session leader {}",
                    q.id
                ),
            );
        }
        Ok(())
    }

    fn validate_connection(
        &self,
        p: &PairImage,
        pair_ends: &BTreeMap<(usize, usize), usize>,
        pending_in: &BTreeMap<usize, usize>,
    ) -> Result<(), InvalidImage> {
        let at = At::Item("pairs", p.id);
        for n in p.names.iter().flatten() {
            socket_name(n).map_err(|e| invalid(at, format!("socket pair {}: {e}", p.id)))?;
        }
        let waiting = pending_in.get(&p.id).copied();
        for e in 0..2 {
            let Some(l) = p.listener[e] else { continue };
            let listens_as = match self.files.get(l).map(|f| &f.object) {
                Some(Object::Unix {
                    ty,
                    name: Some(n),
                    listen: Some(_),
                    ..
                }) if *ty == p.ty => Some(n),
                _ => None,
            };
            if listens_as.is_none() || listens_as != p.names[e].as_ref() {
                return bad(at, format!("socket pair {}: end {e} was accepted from file {l}, which is no listening socket of its type and name", p.id));
            }
            let is_file = pair_ends.contains_key(&(p.id, e));
            if waiting == Some(l) {
                if is_file || !pair_ends.contains_key(&(p.id, 1 - e)) || !p.queued[e].is_empty() {
                    return bad(at, format!("socket pair {}: waiting in file {l}'s queue, end {e} is no file and has nothing queued, and end {} is a file", p.id, 1 - e));
                }
            } else if !is_file {
                return bad(
                    at,
                    format!(
                        "socket pair {}: end {e}, accepted from file {l}, is no file",
                        p.id
                    ),
                );
            }
        }
        if let Some(l) = waiting {
            if !p.listener.contains(&Some(l)) {
                return bad(at, format!("socket pair {}: it waits in file {l}'s queue, but no end names that listener", p.id));
            }
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
            match &mut f.object {
                Object::Epoll { registrations } => {
                    registrations.retain(|r| !gone.contains(&r.file));
                }
                Object::Unix { queued, peer, .. } => {
                    for m in queued {
                        m.files.retain(|f| !gone.contains(f));
                    }
                    if peer.is_some_and(|p| gone.contains(&p)) {
                        *peer = None;
                    }
                }
                _ => {}
            }
        }
        for p in &mut img.pairs {
            for m in p.queued.iter_mut().flatten() {
                m.files.retain(|f| !gone.contains(f));
            }
        }
        img
    }

    /// A path of the image relative to the tree's root (a file's, or a
    /// socket's name), if it has one: then it is restored under a root.
    pub fn relative_path(&self) -> Option<&str> {
        let relative = |p: &str| !p.starts_with('/') && !p.starts_with('@');
        let files = self.files.iter().find_map(|f| {
            match &f.object {
                Object::Regular { path, .. } | Object::Directory { path, .. } => {
                    Some(path.as_str())
                }
                Object::Unix { name, .. } => name.as_deref(),
                _ => None,
            }
            .filter(|p| relative(p))
        });
        files.or_else(|| {
            self.pairs
                .iter()
                .flat_map(|p| p.names.iter().flatten())
                .map(String::as_str)
                .find(|p| relative(p))
        })
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

/// `sun_path`'s size: a name, with its NUL or the abstract namespace's
/// leading one, fits in it.
const SUN_PATH: usize = 108;

/// Checks a unix socket's name as an image writes it: a path, or `@name`.
///
/// Errors: empty, with a NUL, or too long for `sun_path`.
pub fn socket_name(n: &str) -> Result<(), String> {
    if n.is_empty() || n == "@" || n.contains('\0') {
        return Err(format!(
            "socket name `{}` is empty or holds a NUL",
            escape(n.as_bytes())
        ));
    }
    if n.len() >= SUN_PATH {
        return Err(format!(
            "socket name `{n}` is longer than a socket address holds ({} bytes)",
            SUN_PATH - 1
        ));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
  "format": "fdlab-image",
  "version": 1,
  "processes": [
    {"id": 0, "name": "p", "table": 0},
    {"id": 1, "name": "c", "parent": 0, "table": 1}
  ],
  "tables": [
    {"id": 0, "fds": [{"fd": 0, "file": 0}]},
    {"id": 1, "fds": [{"fd": 0, "file": 0}, {"fd": 1, "file": 1}]}
  ],
  "files": [
    {"id": 0, "flags": "O_RDONLY", "kind": "pipe", "pipe": 0, "end": "read"},
    {"id": 1, "flags": "O_WRONLY", "kind": "pipe", "pipe": 0, "end": "write"}
  ],
  "pipes": [{"id": 0, "data": "hi\n"}]
}"#;

    #[test]
    fn a_good_image_parses() {
        let img = parse("x.json", GOOD).unwrap();
        assert_eq!(img.processes[1].parent, Some(0));
        assert_eq!(img.pipes[0].data.0, b"hi\n");
    }

    #[test]
    fn errors_point_at_what_is_wrong() {
        let e = parse("x.json", &GOOD.replace("\"version\": 1", "\"version\": 7")).unwrap_err();
        assert_eq!((e.line, e.col), (3, 14), "{e}");
        assert!(
            e.to_string().starts_with("x.json:3:14: image version 7"),
            "{e}"
        );
        // The second table names a file that is not there.
        let e = parse(
            "x.json",
            &GOOD.replace("\"fd\": 1, \"file\": 1", "\"fd\": 1, \"file\": 9"),
        )
        .unwrap_err();
        assert_eq!((e.line, e.col), (10, 5), "{e}");
        assert!(e.msg.contains("no file 9"), "{e}");
        // The second process's parent comes after it.
        let e = parse("x.json", &GOOD.replace("\"parent\": 0", "\"parent\": 1")).unwrap_err();
        assert_eq!((e.line, e.col), (6, 5), "{e}");
        // Not JSON at all: serde's position.
        let e = parse("x.json", "{\n  \"format\": oops\n}").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(!e.msg.contains(" at line "), "{e}");
    }

    #[test]
    fn locate_skips_strings_and_nested_lists() {
        let text = r#"{"a": "[,]", "files": [ [1, [2]], {"x": "]"}, 3 ]}"#;
        assert_eq!(locate(text, At::Item("files", 0)), (1, 25));
        assert_eq!(locate(text, At::Item("files", 1)), (1, 35));
        assert_eq!(locate(text, At::Item("files", 2)), (1, 47));
        assert_eq!(locate(text, At::Field("a")), (1, 7));
        assert_eq!(locate(text, At::Item("files", 9)), (1, 1));
    }
}
