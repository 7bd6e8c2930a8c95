//! Reading live processes for a dump: what `observe` sees (tables, open
//! files, sockets, epoll interest lists), plus what waits inside pipes and
//! sockets, read without taking it, and the files in flight.
//!
//! A helper process of its own, the *dumper*, does the reading, so that no
//! descriptor ever lands in the runner's table: it `tee`s each pipe (opened
//! again through `/proc`), and peeks each unix socket's queue (a copy of
//! the socket taken with `pidfd_getfd`, `SO_PEEK_OFF` from 0, `MSG_PEEK`).
//! A peek installs the files in flight in the dumper's table; the next
//! observation, of the tree and the dumper together, tells with `kcmp`
//! which of them are files the tree holds, and which are only in flight;
//! those are read in turn (a socket in flight has a queue too), until
//! nothing new turns up.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use fdlab_model::kind::FileType;
use fdlab_model::Call;

use super::backend::linux_err;
use super::backend::HelperFailure;
use super::ctl::{CaptureItem, Captured, Reply, Request};
use super::kernel::Message;
use super::observe::{self, procfs, Snapshot};
use crate::backend::api::{Backend, BackendError};
use crate::backend::LinuxBackend;

/// A process of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedProc {
    pub pid: i32,
    pub ppid: i32,
    pub comm: String,
    /// Soft `RLIMIT_NOFILE`; `None` for unlimited.
    pub rlimit: Option<u64>,
}

/// One message queued on a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub data: Vec<u8>,
    /// The files in flight with it: their representative entries.
    pub files: Vec<usize>,
}

/// What a dump read.
#[derive(Debug)]
pub struct Capture {
    /// The tree and the dumper, observed together; the dumper's entries
    /// are the files in flight.
    pub snapshot: Snapshot,
    pub dumper: i32,
    pub procs: Vec<CapturedProc>,
    /// Each pipe's bytes and capacity, by inode.
    pub pipes: HashMap<u64, (Vec<u8>, u64)>,
    /// Each unix socket's queue, by inode.
    pub queues: HashMap<u64, Vec<QueuedMessage>>,
    /// Unix sockets with a pending `ECONNRESET`, by inode.
    pub resets: HashSet<u64>,
    /// Pseudo-terminals (by index) where a read of the master or of a
    /// slave would find bytes: what the dump cannot carry.
    pub tty_queued: HashSet<u32>,
    /// Peers of sockets that are neither in the tree nor in flight in it,
    /// by inode, with who holds them (nobody: garbage in flight, which
    /// the unix collector frees).
    pub outside: HashMap<u64, Vec<(i32, i32)>>,
    /// What could not be read, and why.
    pub failures: Vec<String>,
}

static DUMPERS: AtomicU64 = AtomicU64::new(0);

/// What a capture item is about.
#[derive(Debug, Clone, Copy)]
enum Key {
    Pipe(u64),
    Queue(u64),
    /// A pty, by index.
    Tty(u32),
}

impl LinuxBackend {
    /// Reads the processes `targets` (their descriptors in `fds`) for a
    /// dump, with a dumper helper made for it and ended after.
    ///
    /// Errors: the dumper could not be made or died; a process of the
    /// tree could not be read at all.
    pub fn capture(&mut self, targets: &[i32], fds: Range<i32>) -> Result<Capture, BackendError> {
        let name = format!("__dumper{}", DUMPERS.fetch_add(1, Ordering::Relaxed));
        self.spawn(&name, false)?;
        let r = self.capture_with(&name, targets, fds);
        // Its files in flight go with it.
        let end = self.call(&name, &Call::Exit);
        let c = r?;
        end?.map_err(|e| linux_err(&name, "exit", HelperFailure::StartFailed(e)))?;
        Ok(c)
    }

    fn capture_with(
        &mut self,
        name: &str,
        targets: &[i32],
        fds: Range<i32>,
    ) -> Result<Capture, BackendError> {
        let what = "reading pipes and queues";
        let ask = |b: &LinuxBackend, items: Vec<CaptureItem>| match b.request(
            name,
            &Request::Capture(items),
            what,
        )? {
            Reply::Captured { ctl, items } => Ok((ctl, items)),
            other => Err(linux_err(
                name,
                what,
                HelperFailure::Unexpected(format!("{other:?}")),
            )),
        };
        let dumper = self
            .pid_of(name)
            .ok_or_else(|| BackendError::UnknownProcess(name.to_string()))?;
        let (ctl, _) = ask(self, Vec::new())?;
        let mut pids = targets.to_vec();
        pids.push(dumper);
        let opts = observe::Options {
            fds,
            threads: 2,
            exclude: vec![(dumper, ctl)],
            ..observe::Options::default()
        };
        let mut pipes = HashMap::new();
        let mut raw_queues: HashMap<u64, Vec<Message>> = HashMap::new();
        let mut resets = HashSet::new();
        let mut tty_queued = HashSet::new();
        // What was asked for already: (0, a pipe's inode), (1, a socket's
        // inode), (2 for a master's side, 3 for a slave's, a pty's index).
        let mut seen: HashSet<(u8, u64)> = HashSet::new();
        let mut failures = Vec::new();
        let snap = loop {
            let snap = observe::observe(&pids, &opts);
            let mut items = Vec::new();
            let mut keys = Vec::new();
            for (i, e) in snap.entries.iter().enumerate() {
                if snap.file_of[i] != i {
                    continue;
                }
                match snap.file_type(e) {
                    FileType::Pipe if seen.insert((0, e.ino)) => {
                        items.push(CaptureItem::Pipe {
                            pid: e.pid,
                            fd: e.fd,
                        });
                        keys.push(Key::Pipe(e.ino));
                    }
                    FileType::Socket
                        if snap.sockets.get(&(e.ino as u32)).is_some_and(has_queue)
                            && seen.insert((1, e.ino)) =>
                    {
                        items.push(CaptureItem::Queue {
                            pid: e.pid,
                            fd: e.fd,
                        });
                        keys.push(Key::Queue(e.ino));
                    }
                    // A master and a slave each read what waits for it.
                    FileType::Chardev => {
                        if let Some(n) = e.pty_index() {
                            let side = if e.tty_index.is_some() { 2 } else { 3 };
                            if seen.insert((side, u64::from(n))) {
                                items.push(CaptureItem::Tty {
                                    pid: e.pid,
                                    fd: e.fd,
                                });
                                keys.push(Key::Tty(n));
                            }
                        }
                    }
                    _ => {}
                }
            }
            if items.is_empty() {
                break snap;
            }
            let asked = items.clone();
            let (_, got) = ask(self, items)?;
            for ((key, item), r) in keys.into_iter().zip(asked).zip(got) {
                match (key, r) {
                    (Key::Pipe(ino), Ok(Captured::Pipe { data, capacity })) => {
                        pipes.insert(ino, (data, capacity));
                    }
                    (Key::Queue(ino), Ok(Captured::Queue { messages, reset })) => {
                        raw_queues.insert(ino, messages);
                        if reset {
                            resets.insert(ino);
                        }
                    }
                    (Key::Tty(n), Ok(Captured::Tty { queued })) => {
                        if queued > 0 {
                            tty_queued.insert(n);
                        }
                    }
                    (_, Ok(other)) => failures.push(format!("{item:?}: unexpected {other:?}")),
                    (key, Err(errno)) => {
                        let (pid, fd) = item.at();
                        let whose = if pid == dumper {
                            "a file in flight".to_string()
                        } else {
                            format!("pid {pid} fd {fd}")
                        };
                        let doing = match key {
                            Key::Pipe(_) => "reading the pipe of",
                            Key::Queue(_) => "peeking the queue of",
                            Key::Tty(_) => "asking what waits in the terminal of",
                        };
                        failures.push(format!(
                            "{doing} {whose}: {errno} ({}){}",
                            errno.description(),
                            if errno == fdlab_model::Errno::EPERM {
                                " (pidfd_getfd takes ptrace attach access: root, or the same user with kernel.yama.ptrace_scope 0)"
                            } else {
                                ""
                            }
                        ));
                    }
                }
            }
        };
        for w in &snap.warnings {
            failures.push(w.to_string());
        }
        // The dumper's descriptors, to their files.
        let mine: HashMap<i32, usize> = snap
            .fds_of(dumper)
            .unwrap_or(&[])
            .iter()
            .map(|&i| (snap.entries[i].fd, snap.file_of[i]))
            .collect();
        let mut queues = HashMap::new();
        for (ino, messages) in raw_queues {
            let mut q = Vec::new();
            for (data, fds) in messages {
                let mut files = Vec::new();
                for fd in fds {
                    match mine.get(&fd) {
                        Some(&f) => files.push(f),
                        None => failures.push(format!(
                            "a file in flight on socket:[{ino}] was not seen again"
                        )),
                    }
                }
                q.push(QueuedMessage { data, files });
            }
            queues.insert(ino, q);
        }
        // Socket peers that are not here.
        let here: HashSet<u64> = snap
            .entries
            .iter()
            .filter(|e| e.link.starts_with("socket:["))
            .map(|e| e.ino)
            .collect();
        let mut outside = HashMap::new();
        for ino in &here {
            if let Some(s) = snap.sockets.get(&(*ino as u32)) {
                let peer = u64::from(s.peer);
                if peer != 0 && !here.contains(&peer) {
                    let holders: Vec<(i32, i32)> = procfs::holders(&format!("socket:[{peer}]"))
                        .into_iter()
                        .filter(|(p, _)| !pids.contains(p))
                        .collect();
                    outside.insert(peer, holders);
                }
            }
        }
        let mut procs = Vec::new();
        for &pid in targets {
            match procfs::stat(pid) {
                Ok(st) => procs.push(CapturedProc {
                    pid,
                    ppid: st.ppid,
                    comm: st.comm,
                    rlimit: procfs::nofile_soft(pid).unwrap_or(None),
                }),
                Err(e) => failures.push(format!("pid {pid}: {e}")),
            }
        }
        Ok(Capture {
            snapshot: snap,
            dumper,
            procs,
            pipes,
            queues,
            resets,
            tty_queued,
            outside,
            failures,
        })
    }
}

/// Whether a unix socket has a queue of messages to peek: not a listener
/// (its queue holds connections), not a stream or seqpacket socket that
/// was never connected (a peek there is `EINVAL` or `ENOTCONN`).
fn has_queue(s: &super::sys::UnixSock) -> bool {
    !s.listening() && !s.never_connected()
}
