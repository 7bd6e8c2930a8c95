//! The restore engine, as one process runs it: the [`Executor`] of a
//! [`Program`], against a small kernel interface, [`Sys`], that a real
//! helper process implements with real system calls and the model with
//! its world. The same code restores on both.
//!
//! CRIU's scheme (`files.c`): a file is made once, by its *master*, and
//! sent to every other process that holds it (its *slaves*) over a unix
//! socket with SCM_RIGHTS, up to 253 descriptors a message. Each object's
//! *open step* makes it at once (Done), or, when it needs files from
//! elsewhere (a message queued on a socket carries them, an epoll watches
//! them), answers Again until they are here. Making never waits for
//! anything, and each master sends what it made as soon as it made it, so
//! a process only ever waits for files that are on their way: the engine
//! cannot deadlock, and a process that waits too long names the files it
//! waits for.
//!
//! Where descriptors go: a file made or received at a number that is its
//! own place stays there; at a number that is another file's place it is
//! moved to a parking number above every place; anywhere else it waits
//! where it is. At the end each file is `dup2`ed to its places, close-on-
//! exec is set, and everything else is closed, the transport too.
//!
//! The transport: process `q`'s inbox is the socket pair end at
//! `band + 2q + 1`, and every process sends to it on `band + 2q`. One
//! datagram pair per process, made by the restorer before it forks the
//! tree, so every process has them all; anonymous, so two restores cannot
//! collide (CRIU's named sockets can, its issue 2499).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;

use fdlab_model::limits::SCM_MAX_FD;
use fdlab_model::Errno;

use serde::{Deserialize, Serialize};

use super::program::{FileId, Make, Program, Work};

/// Logs a line of the schedule, when the program asks for every step
/// (the line is only formatted then).
macro_rules! note {
    ($self:ident, $sys:ident, $($arg:tt)*) => {
        $self.log.extend($sys.notes());
        if $self.prog.verbose {
            let line = format!($($arg)*);
            $self.log.push(line);
        }
    };
}

/// `O_APPEND | O_NONBLOCK`: the status flags `F_SETFL` sets.
const SETFL_MASK: u32 = 0o2000 | 0o4000;

/// What one process can ask of its kernel.
pub trait Sys {
    fn open(&mut self, path: &str, flags: u32) -> Result<i32, Errno>;
    fn pipe(&mut self) -> Result<(i32, i32), Errno>;
    /// `socketpair(AF_UNIX, ty, 0)`.
    fn socketpair(&mut self, ty: i32) -> Result<(i32, i32), Errno>;
    /// `socket(AF_UNIX, ty, 0)`.
    fn socket(&mut self, ty: i32) -> Result<i32, Errno>;
    /// `bind` to `name`: a path, or `@name` in the abstract namespace.
    fn bind(&mut self, fd: i32, name: &str) -> Result<(), Errno>;
    /// Removes the socket file at path `name`, which a socket bound there
    /// before left (`ENOTSOCK` if it is no socket file: never removed).
    fn unlink_socket(&mut self, name: &str) -> Result<(), Errno>;
    fn listen(&mut self, fd: i32, backlog: u32) -> Result<(), Errno>;
    /// `connect` to `name`, never blocking.
    fn connect(&mut self, fd: i32, name: &str) -> Result<(), Errno>;
    /// `accept4(fd, NULL, NULL, 0)`, never blocking.
    fn accept(&mut self, fd: i32) -> Result<i32, Errno>;
    fn epoll_create(&mut self) -> Result<i32, Errno>;
    fn epoll_add(&mut self, ep: i32, fd: i32, events: u32) -> Result<(), Errno>;
    fn eventfd(&mut self) -> Result<i32, Errno>;
    /// `ioctl(TIOCSPTLCK, 0)` then `ioctl(TIOCGPTPEER, O_RDWR|O_NOCTTY)`:
    /// a slave of the pty master at `master`.
    fn ptypeer(&mut self, master: i32) -> Result<i32, Errno>;
    /// `ioctl(fd, TIOCSCTTY, 0)`: the terminal at `fd` (a pty master's
    /// slave) becomes the caller's controlling terminal.
    fn tiocsctty(&mut self, fd: i32) -> Result<(), Errno>;
    fn write(&mut self, fd: i32, data: &[u8]) -> Result<usize, Errno>;
    /// `lseek(fd, offset, SEEK_SET)`.
    fn lseek(&mut self, fd: i32, offset: u64) -> Result<(), Errno>;
    /// `fcntl(F_SETPIPE_SZ)`.
    fn set_pipe_size(&mut self, fd: i32, bytes: u64) -> Result<(), Errno>;
    /// `fcntl(F_SETFL)`.
    fn setfl(&mut self, fd: i32, flags: u32) -> Result<(), Errno>;
    /// `fcntl(F_SETFD, FD_CLOEXEC)`.
    fn cloexec(&mut self, fd: i32) -> Result<(), Errno>;
    /// `fcntl(F_DUPFD, min)`.
    fn dup_from(&mut self, fd: i32, min: u32) -> Result<i32, Errno>;
    fn dup2(&mut self, old: i32, new: i32) -> Result<(), Errno>;
    fn close(&mut self, fd: i32) -> Result<(), Errno>;
    /// `shutdown(fd, how)`.
    fn shutdown(&mut self, fd: i32, how: i32) -> Result<(), Errno>;
    /// `close_range(lo, hi, 0)`.
    fn close_range(&mut self, lo: u32, hi: u32) -> Result<(), Errno>;
    /// `sendmsg` of `data` with `fds`, never blocking: `None` when it would
    /// block.
    fn sendmsg(&mut self, sock: i32, data: &[u8], fds: &[i32]) -> Result<Option<usize>, Errno>;
    /// `recvmsg`, never blocking: `None` when nothing is queued.
    #[allow(clippy::type_complexity)]
    fn recvmsg(&mut self, sock: i32) -> Result<Option<(Vec<u8>, Vec<i32>)>, Errno>;
    /// The soft `RLIMIT_NOFILE`.
    fn set_nofile(&mut self, n: u64) -> Result<(), Errno>;
    /// What the kernel did underneath since last asked, one line each (the
    /// model's file(9) calls, when traced); the executor puts them in its
    /// log before the step they belong to.
    fn notes(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// Why a process could not restore its part: which process, doing what,
/// and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{process}: {what}: {cause}")]
pub struct Failed {
    pub process: String,
    pub what: String,
    pub cause: Cause,
}

/// What went wrong in a failed step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Cause {
    /// A system call failed.
    #[error("{0} ({desc})", desc = .0.description())]
    Errno(Errno),
    /// Nothing came and nothing could be sent for this many milliseconds.
    #[error("nothing moved for {0} ms")]
    TimedOut(u64),
    /// A message on the transport did not say what it carried.
    #[error("a malformed message")]
    Malformed,
}

/// Where an executor stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Done,
    /// Waiting: for room to send (`send`), for files still to come.
    Blocked {
        send: bool,
        receive: Vec<FileId>,
    },
}

/// What an executor did, for `--plan` and the bench.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Wall time the process spent on its program, from its first step
    /// to its last (waiting included), in microseconds.
    pub micros: u64,
    pub messages: u64,
    pub sent: u64,
    pub received: u64,
    pub moved: u64,
}

/// One process's run of its [`Program`].
#[derive(Debug)]
pub struct Executor {
    prog: Program,
    started: bool,
    made: bool,
    finished: bool,
    /// Where each file is here (one descriptor).
    here: HashMap<FileId, i32>,
    /// Which file each of those descriptors holds.
    at: BTreeMap<i32, FileId>,
    /// Each place: descriptor to file.
    targets: HashMap<u32, FileId>,
    /// Each file's first place.
    home: HashMap<FileId, u32>,
    /// The lowest parking number.
    park: u32,
    outbox: VecDeque<(usize, Vec<FileId>)>,
    waiting: BTreeSet<FileId>,
    /// Whose files are awaited, for messages.
    from: HashMap<FileId, usize>,
    /// Work already said to be waiting.
    said_again: BTreeSet<usize>,
    /// Files made here.
    made_count: usize,
    /// Numbers held by a placeholder until their file is there.
    placeholders: BTreeSet<i32>,
    pub log: Vec<String>,
    pub stats: Stats,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Done => f.write_str("done"),
            Status::Blocked { send, receive } => {
                let files: Vec<String> = receive.iter().map(|x| x.to_string()).collect();
                write!(
                    f,
                    "waiting{}{}",
                    if *send { " for room to send" } else { "" },
                    if files.is_empty() {
                        String::new()
                    } else {
                        format!(" for files {}", files.join(", "))
                    }
                )
            }
        }
    }
}

impl Executor {
    /// An executor of `prog`; `senders[f]` names the process that sends
    /// file `f` here (for messages only).
    pub fn new(prog: Program, senders: HashMap<FileId, usize>) -> Executor {
        let targets: HashMap<u32, FileId> = prog.place.iter().map(|&(fd, f, _)| (fd, f)).collect();
        let mut home: HashMap<FileId, u32> = HashMap::new();
        for &(fd, f, _) in &prog.place {
            let h = home.entry(f).or_insert(fd);
            *h = (*h).min(fd);
        }
        let park = prog
            .place
            .iter()
            .map(|p| p.0 + 1)
            .chain(prog.work.iter().filter_map(|w| match w {
                Work::Register { fd, .. } => Some(fd + 1),
                _ => None,
            }))
            .max()
            .unwrap_or(0)
            .max(3);
        let waiting = prog.receive.iter().copied().collect();
        Executor {
            prog,
            started: false,
            made: false,
            finished: false,
            here: HashMap::new(),
            at: BTreeMap::new(),
            targets,
            home,
            park,
            outbox: VecDeque::new(),
            waiting,
            from: senders,
            said_again: BTreeSet::new(),
            made_count: 0,
            placeholders: BTreeSet::new(),
            log: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// The program's process name.
    pub fn name(&self) -> &str {
        &self.prog.name
    }

    /// This process's inbox.
    pub fn inbox(&self) -> i32 {
        (self.prog.band as usize + 2 * self.prog.me + 1) as i32
    }

    /// The socket this process sends to process `q` on.
    pub fn outlet(&self, q: usize) -> i32 {
        (self.prog.band as usize + 2 * q) as i32
    }

    /// Transport participant `q`'s name.
    fn peer(&self, q: usize) -> &str {
        self.prog.peers.get(q).map_or("?", String::as_str)
    }

    /// A file awaited, and from whom.
    fn awaited(&self, f: FileId) -> String {
        match self.from.get(&f).and_then(|&p| self.prog.peers.get(p)) {
            Some(p) => format!("file {f} (from {p})"),
            None => format!("file {f}"),
        }
    }

    /// What it waits for: the files still to come, and from whom.
    pub fn waiting_for(&self) -> String {
        let mut parts: Vec<String> = self.waiting.iter().map(|&f| self.awaited(f)).collect();
        if let Some((to, files)) = self.outbox.front() {
            parts.push(format!(
                "room to send {} files to {}",
                files.len(),
                self.peer(*to)
            ));
        }
        parts.join(", ")
    }

    /// The socket the next message goes out on, if one is waiting.
    pub fn pending_outlet(&self) -> Option<i32> {
        self.outbox.front().map(|(to, _)| self.outlet(*to))
    }

    /// The failure of a step: `what` says which (built only on failure).
    fn fail<'a, W: FnOnce() -> String + 'a>(
        &'a self,
        what: W,
    ) -> impl FnOnce(Errno) -> Failed + 'a {
        move |errno| Failed {
            process: self.prog.name.clone(),
            what: what(),
            cause: Cause::Errno(errno),
        }
    }

    /// Takes in a descriptor `fd` that holds `file`: it stays where it is,
    /// or moves to a parking number if that is another file's place.
    fn adopt(&mut self, sys: &mut dyn Sys, file: FileId, fd: i32) -> Result<(), Failed> {
        self.adopt_all(sys, &[(file, fd)])
    }

    /// Takes in descriptors that arrived together (a pipe's two ends, the
    /// files of one message): all are known before any moves, so that
    /// none is moved onto another.
    fn adopt_all(&mut self, sys: &mut dyn Sys, new: &[(FileId, i32)]) -> Result<(), Failed> {
        let mut fresh = Vec::new();
        for &(file, fd) in new {
            if let std::collections::hash_map::Entry::Vacant(e) = self.here.entry(file) {
                e.insert(fd);
                self.at.insert(fd, file);
                fresh.push((file, fd));
            } else {
                // A second copy of a file already here: one is enough.
                sys.close(fd)
                    .map_err(self.fail(|| format!("closing a second copy of file {file}")))?;
            }
        }
        for (file, fd) in fresh {
            let owner = self.targets.get(&(fd as u32)).copied();
            if owner == Some(file) {
                continue;
            }
            let to = match self.home.get(&file).copied() {
                // Its first place is free: it goes there now, and placing
                // it at the end costs nothing.
                Some(home) if !self.at.contains_key(&(home as i32)) => {
                    sys.dup2(fd, home as i32)
                        .map_err(self.fail(|| format!("placing file {file} at {home}")))?;
                    self.placeholders.remove(&(home as i32));
                    home as i32
                }
                // It landed on another file's place: out of the way.
                _ if owner.is_some() => {
                    self.stats.moved += 1;
                    sys.dup_from(fd, self.park)
                        .map_err(self.fail(|| format!("moving file {file} out of fd {fd}")))?
                }
                _ => continue,
            };
            sys.close(fd)
                .map_err(self.fail(|| format!("closing fd {fd}")))?;
            self.at.remove(&fd);
            self.here.insert(file, to);
            self.at.insert(to, file);
        }
        Ok(())
    }

    /// The descriptor that holds `file` here.
    fn fd_of(&self, file: FileId) -> i32 {
        self.here[&file]
    }

    /// A new descriptor lands at the lowest free number. Numbers below the
    /// highest place of a file made here that no such file goes to first
    /// (places of files still to come, of dups, gaps) are filled with a
    /// placeholder (a copy of the inbox), so that each file made lands at
    /// its place, and moves nowhere. A file that comes later replaces its
    /// placeholder with one `dup2`. Skipped when there would be more
    /// placeholders than files made.
    fn fill_holes(&mut self, sys: &mut dyn Sys, makes: &[Make]) -> Result<(), Failed> {
        let homes: BTreeSet<u32> = makes
            .iter()
            .flat_map(|m| m.files())
            .filter_map(|f| self.home.get(&f).copied())
            .collect();
        let Some(&top) = homes.iter().next_back() else {
            return Ok(());
        };
        let holes: Vec<u32> = (0..top)
            .filter(|n| !homes.contains(n) && !self.at.contains_key(&(*n as i32)))
            .collect();
        if holes.len() > homes.len() {
            return Ok(());
        }
        let inbox = self.inbox();
        for n in holes {
            sys.dup2(inbox, n as i32)
                .map_err(self.fail(|| format!("holding fd {n} for its file")))?;
            self.placeholders.insert(n as i32);
        }
        Ok(())
    }

    fn make_count_add(&mut self, m: &Make) {
        self.made_count += m.files().len();
    }

    /// Opens the program's path `path` with `flags` for file `file`: the
    /// path and the descriptor.
    fn open(
        &self,
        sys: &mut dyn Sys,
        path: u32,
        flags: u32,
        file: FileId,
    ) -> Result<(String, i32), Failed> {
        let path = self.path(path);
        let fd = sys
            .open(&path, flags)
            .map_err(self.fail(|| format!("opening {path} (file {file})")))?;
        Ok((path, fd))
    }

    /// The program's path `path`.
    fn path(&self, path: u32) -> String {
        self.prog
            .paths
            .get(path as usize)
            .cloned()
            .unwrap_or_default()
    }

    /// Binds socket `fd` (file `file`) to the program's path `name`. A
    /// socket file already there is one a socket bound before left (the
    /// tree's own, when it is restored where it ran): it is replaced, as
    /// the tree's socket had it.
    fn bind(&self, sys: &mut dyn Sys, fd: i32, name: u32, file: FileId) -> Result<String, Failed> {
        let name = self.path(name);
        let what = || format!("binding file {file} to {name}");
        match sys.bind(fd, &name) {
            Err(Errno::EADDRINUSE) if !name.starts_with('@') => {
                sys.unlink_socket(&name).map_err(self.fail(what))?;
                sys.bind(fd, &name).map_err(self.fail(what))?;
            }
            r => r.map_err(self.fail(what))?,
        }
        Ok(name)
    }

    /// Sets the status flags `flags` of file `file` at `fd`, if it has any
    /// that `F_SETFL` sets.
    fn setfl(&self, sys: &mut dyn Sys, fd: i32, flags: u32, file: FileId) -> Result<(), Failed> {
        if flags & SETFL_MASK != 0 {
            sys.setfl(fd, flags & SETFL_MASK)
                .map_err(self.fail(|| format!("setting file {file}'s status flags")))?;
        }
        Ok(())
    }

    /// One open step: makes the object, and answers Done.
    fn make(&mut self, sys: &mut dyn Sys, m: &Make) -> Result<(), Failed> {
        match m {
            Make::Open {
                file,
                path,
                flags,
                offset,
            } => {
                let (path, fd) = self.open(sys, *path, *flags, *file)?;
                if let Some(off) = offset.filter(|&o| o > 0) {
                    sys.lseek(fd, off)
                        .map_err(self.fail(|| format!("seeking file {file} to {off}")))?;
                }
                self.adopt(sys, *file, fd)?;
                note!(
                    self,
                    sys,
                    "open {path} -> file {file} at fd {}: Done",
                    self.fd_of(*file)
                );
            }
            Make::Pipe {
                read,
                write,
                data,
                capacity,
                read_flags,
                write_flags,
                reopen,
            } => {
                let (r, w) = sys
                    .pipe()
                    .map_err(self.fail(|| format!("pipe for files {read} and {write}")))?;
                if let Some(c) = capacity {
                    sys.set_pipe_size(w, *c).map_err(
                        self.fail(|| format!("setting pipe file {write}'s capacity to {c}")),
                    )?;
                }
                let mut at = 0;
                while at < data.len() {
                    let n = sys.write(w, &data[at..]).map_err(self.fail(|| {
                        format!("writing {} queued bytes into pipe file {write}", data.len())
                    }))?;
                    at += n;
                }
                for (fd, fl, f) in [(r, read_flags, read), (w, write_flags, write)] {
                    if fl & SETFL_MASK != 0 {
                        sys.setfl(fd, fl & SETFL_MASK)
                            .map_err(self.fail(|| format!("setting file {f}'s status flags")))?;
                    }
                }
                self.adopt_all(sys, &[(*read, r), (*write, w)])?;
                note!(
                    self,
                    sys,
                    "pipe -> files {read} (read end), {write} (write end), {} bytes queued: Done",
                    data.len()
                );
                for &(file, of, flags) in reopen {
                    let path = format!("/proc/self/fd/{}", self.fd_of(of));
                    let fd = sys.open(&path, flags).map_err(
                        self.fail(|| format!("opening pipe file {of} again as file {file}")),
                    )?;
                    self.adopt(sys, file, fd)?;
                    note!(
                        self,
                        sys,
                        "open {path} -> file {file}, the same pipe end as file {of}: Done"
                    );
                }
            }
            Make::Pair {
                ty,
                ends,
                flags,
                names,
            } => {
                let (a, b) = sys.socketpair(*ty).map_err(
                    self.fail(|| format!("socketpair for files {} and {}", ends[0], ends[1])),
                )?;
                let mut bound = Vec::new();
                for (i, (fd, f)) in [(a, ends[0]), (b, ends[1])].into_iter().enumerate() {
                    self.setfl(sys, fd, flags[i], f)?;
                    if let Some(n) = names[i] {
                        let name = self.bind(sys, fd, n, f)?;
                        bound.push(format!(", file {f} bound to {name}"));
                    }
                }
                self.adopt_all(sys, &[(ends[0], a), (ends[1], b)])?;
                let queued = self
                    .prog
                    .work
                    .iter()
                    .filter(|w| matches!(w, Work::Queue { from, .. } if ends.contains(from)))
                    .count();
                note!(
                    self,
                    sys,
                    "socketpair -> files {} and {}{}: {}",
                    ends[0],
                    ends[1],
                    bound.concat(),
                    answer(queued, "messages to queue")
                );
            }
            Make::Unix {
                file,
                ty,
                flags,
                name,
                backlog,
                connections,
            } => {
                let fd = sys
                    .socket(*ty)
                    .map_err(self.fail(|| format!("socket for file {file}")))?;
                let mut made = vec![(*file, fd)];
                let name = match name {
                    Some(n) => Some(self.bind(sys, fd, *n, *file)?),
                    None => None,
                };
                if let Some(b) = backlog {
                    sys.listen(fd, *b)
                        .map_err(self.fail(|| format!("listen on file {file}")))?;
                }
                self.setfl(sys, fd, *flags, *file)?;
                let to = name.clone().unwrap_or_default();
                for c in connections {
                    let cfd = sys
                        .socket(*ty)
                        .map_err(self.fail(|| format!("socket for file {}", c.client)))?;
                    made.push((c.client, cfd));
                    if let Some(n) = c.client_name {
                        self.bind(sys, cfd, n, c.client)?;
                    }
                    sys.connect(cfd, &to).map_err(
                        self.fail(|| format!("connecting file {} to {to} (file {file})", c.client)),
                    )?;
                    self.setfl(sys, cfd, c.client_flags, c.client)?;
                    if let Some((server, fl)) = c.server {
                        let sfd = sys.accept(fd).map_err(
                            self.fail(|| format!("accepting file {server} from file {file}")),
                        )?;
                        self.setfl(sys, sfd, fl, server)?;
                        made.push((server, sfd));
                    }
                }
                self.adopt_all(sys, &made)?;
                let conns: Vec<String> = connections
                    .iter()
                    .map(|c| {
                        let bound = c
                            .client_name
                            .map(|n| format!(" (bound to {})", self.path(n)))
                            .unwrap_or_default();
                        match c.server {
                            Some((s, _)) => {
                                format!("file {}{bound} connects, accepted as file {s}", c.client)
                            }
                            None => format!("file {}{bound} connects and waits", c.client),
                        }
                    })
                    .collect();
                note!(
                    self,
                    sys,
                    "socket{}{} -> file {file}{}{}: Done",
                    name.map(|n| format!(", bind {n}")).unwrap_or_default(),
                    backlog.map(|b| format!(", listen {b}")).unwrap_or_default(),
                    if conns.is_empty() { "" } else { "; " },
                    conns.join("; ")
                );
            }
            Make::Epoll { file, flags } => {
                let fd = sys
                    .epoll_create()
                    .map_err(self.fail(|| format!("epoll_create for file {file}")))?;
                if flags & SETFL_MASK != 0 {
                    sys.setfl(fd, flags & SETFL_MASK)
                        .map_err(self.fail(|| format!("setting file {file}'s status flags")))?;
                }
                self.adopt(sys, *file, fd)?;
                let regs = self
                    .prog
                    .work
                    .iter()
                    .filter(|w| matches!(w, Work::Register { epoll, .. } if epoll == file))
                    .count();
                note!(
                    self,
                    sys,
                    "epoll_create -> file {file}: {}",
                    answer(regs, "registrations to make")
                );
            }
            Make::Pty {
                master,
                path,
                flags,
                slaves,
                premade,
            } => {
                let (path, m) = match premade {
                    Some(fd) => (format!("{} (opened already)", self.path(*path)), *fd as i32),
                    None => self.open(sys, *path, *flags, *master)?,
                };
                let mut made = vec![(*master, m)];
                for &(s, fl) in slaves {
                    let fd = sys
                        .ptypeer(m)
                        .map_err(self.fail(|| format!("opening pty slave file {s}")))?;
                    if fl & SETFL_MASK != 0 {
                        sys.setfl(fd, fl & SETFL_MASK)
                            .map_err(self.fail(|| format!("setting file {s}'s status flags")))?;
                    }
                    made.push((s, fd));
                }
                self.adopt_all(sys, &made)?;
                let names: Vec<String> = slaves.iter().map(|s| s.0.to_string()).collect();
                note!(
                    self,
                    sys,
                    "open {path} -> file {master}, its slaves -> files [{}]: Done",
                    names.join(", ")
                );
            }
            Make::Eventfd { file, count, flags } => {
                let fd = sys
                    .eventfd()
                    .map_err(self.fail(|| format!("eventfd for file {file}")))?;
                if *count > 0 {
                    sys.write(fd, &count.to_le_bytes())
                        .map_err(self.fail(|| format!("setting eventfd file {file}'s count")))?;
                }
                if flags & SETFL_MASK != 0 {
                    sys.setfl(fd, flags & SETFL_MASK)
                        .map_err(self.fail(|| format!("setting file {file}'s status flags")))?;
                }
                self.adopt(sys, *file, fd)?;
                note!(self, sys, "eventfd -> file {file}, count {count}: Done");
            }
        }
        Ok(())
    }

    /// One piece of work, with every file it needs here.
    fn work(&mut self, sys: &mut dyn Sys, w: &Work) -> Result<(), Failed> {
        match w {
            Work::Queue { from, data, files } => {
                let sock = self.fd_of(*from);
                let fds: Vec<i32> = files.iter().map(|f| self.fd_of(*f)).collect();
                let mut at = 0;
                let mut first = true;
                while first || at < data.len() {
                    let carry: &[i32] = if first { &fds } else { &[] };
                    match sys.sendmsg(sock, &data[at..], carry).map_err(
                        self.fail(|| format!("queueing a message on file {from}'s peer")),
                    )? {
                        Some(n) => at += n,
                        None => {
                            return Err(Failed {
                                process: self.prog.name.clone(),
                                what: format!(
                                    "queueing a message on file {from}'s peer: its buffer is full"
                                ),
                                cause: Cause::Errno(Errno::EAGAIN),
                            })
                        }
                    }
                    first = false;
                }
                note!(
                    self,
                    sys,
                    "queued {} bytes{} from file {from}: Done",
                    data.len(),
                    in_flight(files)
                );
            }
            Work::Shutdown { file, how } => {
                sys.shutdown(self.fd_of(*file), *how)
                    .map_err(self.fail(|| format!("shutting file {file} down ({how})")))?;
                note!(self, sys, "shutdown of file {file} ({how}): Done");
            }
            Work::SendTo {
                to,
                name,
                data,
                files,
            } => {
                let name = self.path(*name);
                let what = || format!("queueing a message for file {to} at {name}");
                let fds: Vec<i32> = files.iter().map(|f| self.fd_of(*f)).collect();
                let sender = sys.socket(libc::SOCK_DGRAM).map_err(self.fail(what))?;
                let sent = sys
                    .connect(sender, &name)
                    .and_then(|_| sys.sendmsg(sender, data, &fds));
                sys.close(sender).map_err(self.fail(what))?;
                match sent.map_err(self.fail(what))? {
                    Some(_) => {}
                    None => {
                        return Err(Failed {
                            process: self.prog.name.clone(),
                            what: format!("{}: its queue is full", what()),
                            cause: Cause::Errno(Errno::EAGAIN),
                        })
                    }
                }
                note!(
                    self,
                    sys,
                    "sent {} bytes{} to file {to} at {name}, from a socket made for it: Done",
                    data.len(),
                    in_flight(files)
                );
            }
            Work::Connect { sock, peer, name } => {
                let name = self.path(*name);
                sys.connect(self.fd_of(*sock), &name).map_err(
                    self.fail(|| format!("connecting file {sock} to file {peer} at {name}")),
                )?;
                note!(
                    self,
                    sys,
                    "connect file {sock} to file {peer} at {name}: Done"
                );
            }
            Work::Register {
                epoll,
                target,
                fd,
                events,
            } => {
                let ep = self.fd_of(*epoll);
                let t = self.fd_of(*target);
                let n = *fd as i32;
                if t == n {
                    sys.epoll_add(ep, n, *events).map_err(self.fail(|| {
                        format!("registering file {target} under {fd} in epoll file {epoll}")
                    }))?;
                } else {
                    // The number it was registered under holds another
                    // file here (or none): move that one away, put the
                    // target there for the registration, and free the
                    // number again.
                    self.placeholders.remove(&n);
                    if let Some(other) = self.at.remove(&n) {
                        let moved = sys
                            .dup_from(n, self.park)
                            .map_err(self.fail(|| format!("moving file {other} out of fd {n}")))?;
                        sys.close(n)
                            .map_err(self.fail(|| format!("closing fd {n}")))?;
                        self.here.insert(other, moved);
                        self.at.insert(moved, other);
                        self.stats.moved += 1;
                    }
                    let ep = self.fd_of(*epoll);
                    let t = self.fd_of(*target);
                    sys.dup2(t, n)
                        .map_err(self.fail(|| format!("putting file {target} at {fd}")))?;
                    let r = sys.epoll_add(ep, n, *events);
                    sys.close(n)
                        .map_err(self.fail(|| format!("closing fd {n}")))?;
                    r.map_err(self.fail(|| {
                        format!("registering file {target} under {fd} in epoll file {epoll}")
                    }))?;
                }
                note!(
                    self,
                    sys,
                    "epoll file {epoll}: registered file {target} under {fd}: Done"
                );
            }
        }
        Ok(())
    }

    /// Runs as far as it can without waiting.
    ///
    /// Errors: a system call failed, naming the file and the step.
    pub fn step(&mut self, sys: &mut dyn Sys) -> Result<Status, Failed> {
        if self.finished {
            return Ok(Status::Done);
        }
        if !self.started {
            // Room for parking and the transport while restoring.
            let top = self.prog.band as u64
                + 2 * self.prog.peers.len() as u64
                + u64::from(self.prog.terminals)
                + 8;
            sys.set_nofile(top)
                .map_err(self.fail(|| "raising RLIMIT_NOFILE for the restore".into()))?;
            self.started = true;
        }
        if !self.made {
            let mut makes = std::mem::take(&mut self.prog.make);
            // In the order of their places: each lands where it belongs
            // when every lower number is taken (see `fill_holes`).
            makes.sort_by_key(|m| {
                m.files()
                    .iter()
                    .filter_map(|f| self.home.get(f).copied())
                    .min()
                    .unwrap_or(u32::MAX)
            });
            self.fill_holes(sys, &makes)?;
            for m in makes {
                self.make_count_add(&m);
                self.make(sys, &m)?;
            }
            for s in std::mem::take(&mut self.prog.serve) {
                for chunk in s.files.chunks(SCM_MAX_FD) {
                    self.outbox.push_back((s.to, chunk.to_vec()));
                }
            }
            self.made = true;
        }
        while let Some((to, files)) = self.outbox.front() {
            let (to, files) = (*to, files.clone());
            let data: Vec<u8> = files.iter().flat_map(|f| f.to_le_bytes()).collect();
            let fds: Vec<i32> = files.iter().map(|f| self.fd_of(*f)).collect();
            match sys.sendmsg(self.outlet(to), &data, &fds).map_err(
                self.fail(|| format!("serving {} files to {}", files.len(), self.peer(to))),
            )? {
                Some(_) => {
                    note!(
                        self,
                        sys,
                        "served {} to {} in one message",
                        ids_text(&files),
                        self.peer(to)
                    );
                    self.stats.messages += 1;
                    self.stats.sent += files.len() as u64;
                    self.outbox.pop_front();
                }
                None => break,
            }
        }
        while !self.waiting.is_empty() {
            let Some((data, fds)) = sys
                .recvmsg(self.inbox())
                .map_err(self.fail(|| "receiving files".into()))?
            else {
                break;
            };
            let ids: Vec<FileId> = data
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if ids.len() != fds.len() {
                return Err(Failed {
                    process: self.prog.name.clone(),
                    what: format!(
                        "a message named {} files and carried {}",
                        ids.len(),
                        fds.len()
                    ),
                    cause: Cause::Malformed,
                });
            }
            for f in &ids {
                self.waiting.remove(f);
            }
            self.stats.received += ids.len() as u64;
            let got: Vec<(FileId, i32)> = ids.into_iter().zip(fds).collect();
            self.adopt_all(sys, &got)?;
        }
        if !(self.outbox.is_empty() && self.waiting.is_empty()) {
            // Say, once each, what waits for what.
            let works: Vec<(usize, Vec<FileId>)> = self
                .prog
                .work
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    (
                        i,
                        w.needs()
                            .into_iter()
                            .filter(|f| !self.here.contains_key(f))
                            .collect(),
                    )
                })
                .collect();
            for (i, missing) in works {
                if !missing.is_empty() && self.said_again.insert(i) {
                    let from: Vec<String> = missing.iter().map(|f| self.awaited(*f)).collect();
                    let what = match &self.prog.work[i] {
                        Work::Queue { from, .. } => format!("a message queued from file {from}"),
                        Work::Register { epoll, fd, .. } => {
                            format!("epoll file {epoll}'s registration under {fd}")
                        }
                        Work::Shutdown { file, .. } => format!("shutting file {file}"),
                        Work::SendTo { to, .. } => format!("a message queued for file {to}"),
                        Work::Connect { sock, peer, .. } => {
                            format!("connecting file {sock} to file {peer}")
                        }
                    };
                    self.log.extend(sys.notes());
                    self.log
                        .push(format!("{what}: Again, waiting for {}", from.join(", ")));
                }
            }
            return Ok(Status::Blocked {
                send: !self.outbox.is_empty(),
                receive: self.waiting.iter().copied().collect(),
            });
        }
        for w in std::mem::take(&mut self.prog.work) {
            self.work(sys, &w)?;
        }
        self.place(sys)?;
        self.finished = true;
        Ok(Status::Done)
    }

    /// Puts every file at its places, sets close-on-exec, closes the rest
    /// and the transport, and leaves the rlimit as the image had it.
    fn place(&mut self, sys: &mut dyn Sys) -> Result<(), Failed> {
        let place = std::mem::take(&mut self.prog.place);
        for &(n, file, cloexec) in &place {
            let Some(&src) = self.here.get(&file) else {
                return Err(Failed {
                    process: self.prog.name.clone(),
                    what: format!("placing file {file} at {n}: it never came"),
                    cause: Cause::Errno(Errno::EBADF),
                });
            };
            if src != n as i32 {
                sys.dup2(src, n as i32)
                    .map_err(self.fail(|| format!("placing file {file} at {n}")))?;
            }
            if cloexec {
                sys.cloexec(n as i32)
                    .map_err(self.fail(|| format!("setting close-on-exec on {n}")))?;
            }
        }
        let placed: BTreeSet<i32> = place.iter().map(|p| p.0 as i32).collect();
        for &fd in self.at.keys().chain(self.placeholders.iter()) {
            if !placed.contains(&fd) {
                sys.close(fd)
                    .map_err(self.fail(|| format!("closing fd {fd}")))?;
            }
        }
        let band = self.prog.band;
        let end = band + 2 * self.prog.peers.len() as u32 + self.prog.terminals - 1;
        sys.close_range(band, end)
            .map_err(self.fail(|| "closing the transport".into()))?;
        if let Some(n) = self.prog.rlimit {
            sys.set_nofile(n)
                .map_err(self.fail(|| format!("setting RLIMIT_NOFILE to {n}")))?;
        }
        self.log.extend(sys.notes());
        if !self.prog.verbose {
            self.log.push(format!(
                "made {} files, served {} in {} messages, received {}",
                self.made_count, self.stats.sent, self.stats.messages, self.stats.received
            ));
        }
        self.log
            .push(format!("{} descriptors placed: Done", place.len()));
        Ok(())
    }
}

/// An open step's answer: Done, or Again while `n` pieces of work on
/// the new file remain (they may wait for files from elsewhere).
/// " with files 3, 4 in flight", or nothing.
fn in_flight(files: &[FileId]) -> String {
    if files.is_empty() {
        String::new()
    } else {
        let f: Vec<String> = files.iter().map(|x| x.to_string()).collect();
        format!(" with files {} in flight", f.join(", "))
    }
}

fn answer(n: usize, what: &str) -> String {
    if n == 0 {
        "Done".into()
    } else {
        format!("Again ({n} {what}; the files are served out already)")
    }
}

/// File ids as ranges: `files 3-7, 9` (`file 3` for one).
pub fn ids_text(ids: &[FileId]) -> String {
    let mut runs: Vec<(FileId, FileId)> = Vec::new();
    for &f in ids {
        match runs.last_mut() {
            Some((_, hi)) if *hi + 1 == f => *hi = f,
            _ => runs.push((f, f)),
        }
    }
    let text: Vec<String> = runs
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect();
    format!(
        "file{} {}",
        if ids.len() == 1 { "" } else { "s" },
        text.join(", ")
    )
}

/// `Failed` of `proc` doing `what`, from an errno.
fn failing(proc: &str, what: &str) -> impl FnOnce(Errno) -> Failed {
    let (process, what) = (proc.to_string(), what.to_string());
    move |errno| Failed {
        process,
        what,
        cause: Cause::Errno(errno),
    }
}

/// Makes the transport with the engine's kernel interface: each pair's
/// ends moved to `band + 2q` (the send end) and `band + 2q + 1` (the
/// inbox); the limit leaves room above it for `terminals` more.
pub fn make_transport(
    sys: &mut dyn Sys,
    proc: &str,
    band: u32,
    peers: usize,
    terminals: u32,
) -> Result<(), Failed> {
    let fail = |what: &str| failing(proc, what);
    sys.set_nofile(u64::from(band) + 2 * peers as u64 + u64::from(terminals) + 8)
        .map_err(fail("raising RLIMIT_NOFILE for the transport"))?;
    for q in 0..peers {
        let (a, b) = sys
            .socketpair(libc::SOCK_DGRAM)
            .map_err(fail("making the transport"))?;
        let (sa, sb) = (
            (band as usize + 2 * q) as i32,
            (band as usize + 2 * q + 1) as i32,
        );
        sys.dup2(a, sa).map_err(fail("placing the transport"))?;
        sys.dup2(b, sb).map_err(fail("placing the transport"))?;
        sys.close(a).map_err(fail("placing the transport"))?;
        sys.close(b).map_err(fail("placing the transport"))?;
    }
    Ok(())
}

/// A session leader takes its controlling terminal while the tree is
/// made, before it forks the processes that have it too: it opens `path`
/// (`/dev/ptmx`, a new pty's master) with `flags`, moves the master to
/// `at` (above the transport, where its program finds it), and makes the
/// pty its controlling terminal.
pub fn take_terminal(
    sys: &mut dyn Sys,
    proc: &str,
    path: &str,
    flags: u32,
    at: u32,
) -> Result<(), Failed> {
    let fd = sys
        .open(path, flags)
        .map_err(failing(proc, &format!("opening {path}")))?;
    // Room for it there (the program raises the limit further, and the
    // image's is set last).
    sys.set_nofile(u64::from(at) + 1)
        .map_err(failing(proc, "raising RLIMIT_NOFILE for the terminal"))?;
    sys.dup2(fd, at as i32)
        .map_err(failing(proc, &format!("moving {path} to {at}")))?;
    sys.close(fd)
        .map_err(failing(proc, &format!("closing fd {fd}")))?;
    sys.tiocsctty(at as i32)
        .map_err(failing(proc, "TIOCSCTTY, taking its controlling terminal"))
}
