//! What one process does to restore its part of a tree: a [`Program`],
//! computed for every process from the image (`tools::restore` plans it),
//! and run by the [`super::exec::Executor`] in that process.
//!
//! Files are named by their ids in the image; ends of pipes and socket
//! pairs that no file of the image is (a closed end) get ids past the
//! image's, made and closed by the process that makes the pair.

use serde::{Deserialize, Serialize};

/// A file id: the image's, or a closed end's past them.
pub type FileId = u32;

/// Making one object (one open step): its file or files are made here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Make {
    /// `open(paths[path], flags)`; then `lseek` to `offset`.
    Open {
        file: FileId,
        /// Its index in [`Program::paths`] (many files share a path).
        path: u32,
        /// Access mode and status flags as `open` takes them (never
        /// `O_CREAT` or `O_TRUNC`).
        flags: u32,
        offset: Option<u64>,
    },
    /// `pipe2`; its capacity set if the image gives one; `data` written
    /// into it; each end's status flags set; then every other open file
    /// of either end opened again through `/proc/self/fd`.
    Pipe {
        read: FileId,
        write: FileId,
        data: Vec<u8>,
        capacity: Option<u64>,
        read_flags: u32,
        write_flags: u32,
        /// Further open files of an end: (file, the end's file, flags).
        reopen: Vec<(FileId, FileId, u32)>,
    },
    /// `socketpair(AF_UNIX, ty)`, each end bound to its name if it has
    /// one; the messages queued on it are [`Work`] (they may carry files
    /// made elsewhere).
    Pair {
        /// `SOCK_STREAM`, `SOCK_DGRAM` or `SOCK_SEQPACKET`.
        ty: i32,
        ends: [FileId; 2],
        flags: [u32; 2],
        /// Each end's name, an index in [`Program::paths`].
        #[serde(default)]
        names: [Option<u32>; 2],
    },
    /// `socket(AF_UNIX, ty)`, bound to `paths[name]` if it has one, and
    /// listening with `backlog` if it has one; then each connection
    /// through it, oldest first: those accepted, then those that wait.
    Unix {
        file: FileId,
        ty: i32,
        flags: u32,
        name: Option<u32>,
        backlog: Option<u32>,
        connections: Vec<Connection>,
    },
    /// `open(paths[path], flags)` of `/dev/ptmx`, then each slave opened
    /// from the master (`TIOCSPTLCK 0`, `TIOCGPTPEER` with `O_NOCTTY`)
    /// and given its status flags.
    Pty {
        master: FileId,
        path: u32,
        flags: u32,
        slaves: Vec<(FileId, u32)>,
        /// The master was opened already, at this descriptor, while the
        /// tree was made: it is a session's controlling terminal, which
        /// the session's leader takes before it forks the processes that
        /// have it too.
        #[serde(default)]
        premade: Option<u32>,
    },
    Epoll {
        file: FileId,
        flags: u32,
    },
    /// `eventfd(0)`; then `count` written to it.
    Eventfd {
        file: FileId,
        count: u64,
        flags: u32,
    },
}

/// A connection through a listening socket: a client socket (bound to its
/// own name, if it has one) connects to the listener; unless the
/// connection waits in the queue, the listener accepts it as `server`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub client: FileId,
    pub client_flags: u32,
    /// An index in [`Program::paths`].
    pub client_name: Option<u32>,
    /// The accepted end and its status flags.
    pub server: Option<(FileId, u32)>,
}

impl Make {
    /// The names the step binds sockets to (indices in
    /// [`Program::paths`]).
    pub fn bound_names(&self) -> Vec<u32> {
        match self {
            Make::Pair { names, .. } => names.iter().flatten().copied().collect(),
            Make::Unix {
                name, connections, ..
            } => name
                .iter()
                .chain(connections.iter().filter_map(|c| c.client_name.as_ref()))
                .copied()
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The files the step makes.
    pub fn files(&self) -> Vec<FileId> {
        match self {
            Make::Open { file, .. } | Make::Epoll { file, .. } | Make::Eventfd { file, .. } => {
                vec![*file]
            }
            Make::Pipe {
                read,
                write,
                reopen,
                ..
            } => {
                let mut v = vec![*read, *write];
                v.extend(reopen.iter().map(|r| r.0));
                v
            }
            Make::Pair { ends, .. } => ends.to_vec(),
            Make::Unix {
                file, connections, ..
            } => {
                let mut v = vec![*file];
                for c in connections {
                    v.push(c.client);
                    v.extend(c.server.map(|s| s.0));
                }
                v
            }
            Make::Pty { master, slaves, .. } => {
                let mut v = vec![*master];
                v.extend(slaves.iter().map(|s| s.0));
                v
            }
        }
    }
}

/// Work that needs files that may come from elsewhere: it waits (the
/// open step answers Again) until they are here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Work {
    /// A message queued on a socket, sent from its peer end `from`.
    Queue {
        from: FileId,
        data: Vec<u8>,
        files: Vec<FileId>,
    },
    /// `shutdown(file, how)`, after the messages queued on its pair.
    Shutdown { file: FileId, how: i32 },
    /// A datagram message for `to`, sent to its name, `paths[name]`, from
    /// a socket made for it and closed after (before `to` connects to a
    /// peer of its own, which would refuse other senders).
    SendTo {
        to: FileId,
        name: u32,
        data: Vec<u8>,
        files: Vec<FileId>,
    },
    /// `connect(sock, paths[name])`, the name of datagram socket `peer`,
    /// once `peer` is made (it is here).
    Connect {
        sock: FileId,
        peer: FileId,
        name: u32,
    },
    /// An epoll registration of `target` under the number `fd`.
    Register {
        epoll: FileId,
        target: FileId,
        fd: u32,
        events: u32,
    },
}

impl Work {
    /// The files the work needs here.
    pub fn needs(&self) -> Vec<FileId> {
        match self {
            Work::Queue { from, files, .. } => {
                let mut v = vec![*from];
                v.extend(files);
                v
            }
            Work::Register { epoll, target, .. } => vec![*epoll, *target],
            Work::Shutdown { file, .. } => vec![*file],
            Work::SendTo { to, files, .. } => {
                let mut v = vec![*to];
                v.extend(files);
                v
            }
            Work::Connect { sock, peer, .. } => vec![*sock, *peer],
        }
    }
}

/// Files to send to one process, in messages of at most `SCM_MAX_FD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Serve {
    /// The process, by its place on the transport.
    pub to: usize,
    pub files: Vec<FileId>,
}

/// What one process does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    /// Its name, for messages.
    pub name: String,
    /// Its place on the transport: its inbox is `band + 2 * me + 1`, and it
    /// sends to process `q` on `band + 2 * q`.
    pub me: usize,
    pub band: u32,
    /// The processes the transport connects, by name, in order.
    pub peers: Vec<String>,
    pub make: Vec<Make>,
    /// The paths its open steps open.
    pub paths: Vec<String>,
    pub serve: Vec<Serve>,
    /// The files it receives (from anyone).
    pub receive: Vec<FileId>,
    pub work: Vec<Work>,
    /// Where files end up in its table: (descriptor, file, close-on-exec).
    pub place: Vec<(u32, FileId, bool)>,
    /// The soft `RLIMIT_NOFILE` to leave it with.
    pub rlimit: Option<u64>,
    /// How many descriptors above the transport hold controlling
    /// terminals' masters while the tree is made (each process closes
    /// them with the transport).
    #[serde(default)]
    pub terminals: u32,
    /// Log every step (each open step and its answer, each message), not
    /// only what waited and the totals.
    pub verbose: bool,
    /// How long to wait with nothing moving before giving up, in
    /// milliseconds (0: the kernel side's default).
    pub patience_ms: u64,
}
