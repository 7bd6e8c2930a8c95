//! Reading processes and their descriptors from `/proc`.
//!
//! A descriptor costs three system calls here: `openat`, `read` and
//! `close` of `/proc/PID/fdinfo/N`, relative to a directory opened once per
//! process; `fdinfo` has what descriptors of one open file share (mount
//! id, inode, position, status flags) and what is the descriptor's own
//! (close-on-exec). What an open file is (the `/proc/PID/fd/N` link, and
//! for a file with a path its type and device) is the same for every
//! descriptor of it, so it is read for one descriptor per open file
//! ([`FdDirs::describe`]), and a `stat` only once per (mount, inode):
//! [`TypeCache`] remembers it.

use std::collections::HashMap;
use std::io;
use std::ops::Range;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, CWD};

/// `O_CLOEXEC` as `fdinfo` shows it, in its `flags:` field.
const O_CLOEXEC: u32 = 0o2000000;

/// One descriptor as `/proc` shows it.
#[derive(Debug, Clone, Default)]
pub struct FdEntry {
    pub pid: i32,
    pub fd: i32,
    /// The `/proc/PID/fd/N` link: a path, `pipe:[ino]`, `socket:[ino]`,
    /// `anon_inode:[eventpoll]`... (shared by every descriptor of the same
    /// open file, so a clone is cheap).
    pub link: Arc<str>,
    pub mnt_id: u32,
    pub ino: u64,
    /// The file's device, for files with a path (0 otherwise).
    pub dev: u64,
    /// The file's type, for files with a path.
    pub ftype: Option<FileType>,
    /// The device number a device file stands for (`st_rdev`).
    pub rdev: u64,
    pub pos: u64,
    /// `f_flags` without `O_CLOEXEC`.
    pub flags: u32,
    pub cloexec: bool,
    /// Epoll registrations.
    pub targets: Vec<EpollTfd>,
    /// A pty master's slave number (`tty-index:`).
    pub tty_index: Option<u32>,
    /// An eventfd's counter and id (`eventfd-count:`, `eventfd-id:`).
    pub eventfd: Option<(u64, u64)>,
}

impl FdEntry {
    /// Whether the file is reached by a path (not a pipe, socket or anon
    /// inode).
    pub fn has_path(&self) -> bool {
        self.link.starts_with('/')
    }

    /// Whether the descriptor may be a terminal: a device file, or a pty
    /// master.
    pub fn may_be_terminal(&self) -> bool {
        self.ftype == Some(FileType::CharacterDevice) || self.tty_index.is_some()
    }

    /// The index of the pseudo-terminal a pty master (`tty-index:`) or
    /// slave (`/dev/pts/INDEX`: majors 136 to 143) belongs to.
    pub fn pty_index(&self) -> Option<u32> {
        const UNIX98_PTY_SLAVE_MAJOR: u32 = 136;
        if self.tty_index.is_some() {
            return self.tty_index;
        }
        let major = rustix::fs::major(self.rdev);
        let slave = self.ftype == Some(FileType::CharacterDevice)
            && (UNIX98_PTY_SLAVE_MAJOR..UNIX98_PTY_SLAVE_MAJOR + 8).contains(&major);
        slave.then(|| (major - UNIX98_PTY_SLAVE_MAJOR) * 256 + rustix::fs::minor(self.rdev))
    }
}

/// What an open file is, as [`FdDirs::describe`] reads it through one of
/// its descriptors.
#[derive(Debug, Clone)]
pub struct Described {
    pub link: Arc<str>,
    pub ftype: Option<FileType>,
    pub dev: u64,
    pub rdev: u64,
}

impl Described {
    /// What `e` says of its open file.
    pub fn of(e: &FdEntry) -> Described {
        Described {
            link: Arc::clone(&e.link),
            ftype: e.ftype,
            dev: e.dev,
            rdev: e.rdev,
        }
    }

    /// Gives `e` what this says of its open file.
    pub fn apply(&self, e: &mut FdEntry) {
        e.link = Arc::clone(&self.link);
        e.ftype = self.ftype;
        e.dev = self.dev;
        e.rdev = self.rdev;
    }
}

/// One `tfd:` line of an epoll's `fdinfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpollTfd {
    /// The number the target was registered under.
    pub tfd: i32,
    pub events: u32,
    /// The target's inode.
    pub ino: u64,
}

/// What `fdinfo` says of a descriptor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FdInfo {
    pub pos: u64,
    /// The raw `flags:` field, with `O_CLOEXEC`.
    pub flags: u32,
    pub mnt_id: u32,
    pub ino: u64,
    pub targets: Vec<EpollTfd>,
    pub tty_index: Option<u32>,
    pub eventfd: Option<(u64, u64)>,
}

/// Parses an `fdinfo` file.
pub fn parse_fdinfo(text: &str) -> FdInfo {
    let mut info = FdInfo::default();
    let mut count = None;
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let num = |v: Option<&str>| v.and_then(|v| v.parse().ok()).unwrap_or(0);
        match it.next() {
            Some("pos:") => info.pos = num(it.next()),
            Some("flags:") => {
                info.flags = it
                    .next()
                    .and_then(|v| u32::from_str_radix(v, 8).ok())
                    .unwrap_or(0)
            }
            Some("mnt_id:") => info.mnt_id = num(it.next()) as u32,
            Some("ino:") => info.ino = num(it.next()),
            Some("tty-index:") => info.tty_index = it.next().and_then(|v| v.parse().ok()),
            Some("eventfd-count:") => {
                count = it.next().and_then(|v| u64::from_str_radix(v, 16).ok())
            }
            Some("eventfd-id:") => {
                let id = it.next().and_then(|v| v.parse().ok());
                info.eventfd = count.zip(id);
            }
            Some("tfd:") => {
                // tfd: N events: HEX data: HEX pos:P ino:HEX sdev:HEX
                let mut t = EpollTfd {
                    tfd: it.next().and_then(|v| v.parse().ok()).unwrap_or(-1),
                    events: 0,
                    ino: 0,
                };
                let words: Vec<&str> = line.split_whitespace().collect();
                for (i, w) in words.iter().enumerate() {
                    if *w == "events:" {
                        t.events = words
                            .get(i + 1)
                            .and_then(|v| u32::from_str_radix(v, 16).ok())
                            .unwrap_or(0);
                    } else if let Some(v) = w.strip_prefix("ino:") {
                        t.ino = u64::from_str_radix(v, 16).unwrap_or(0);
                    }
                }
                info.targets.push(t);
            }
            _ => {}
        }
    }
    info
}

/// The type, device and device number of files by (mount id, inode), so
/// that each is `stat`ed once however many descriptors reach it.
#[derive(Debug, Default)]
pub struct TypeCache(HashMap<(u32, u64), (Option<FileType>, u64, u64)>);

/// What went wrong reading something of one process.
#[derive(Debug)]
pub struct ReadError {
    pub what: String,
    pub source: io::Error,
}

fn read_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ReadError {
    let what = what.into();
    move |source| ReadError { what, source }
}

/// A process's descriptor folders, open for reading its descriptors.
pub struct FdDirs {
    pid: i32,
    fd: OwnedFd,
    info: OwnedFd,
    /// `fdinfo` files kept open, by descriptor, to be read again from
    /// their start (see [`Budget`]).
    kept: std::sync::Mutex<HashMap<i32, OwnedFd>>,
    budget: Option<Arc<Budget>>,
}

/// How many `fdinfo` files the [`FdDirs`] given it may keep open between
/// reads, all together.
///
/// Reading a descriptor's `fdinfo` again from offset 0 shows it afresh:
/// it is a `seq_file` whose text is made at each read from offset 0, for
/// the descriptor number it was opened for, in the process it belongs
/// to. Keeping the file saves the path walk, the permission check and
/// the teardown of opening and closing it each time. A descriptor closed
/// since reads `ENOENT`, as opening it would, and a process gone fails
/// the read as well (then the file is not kept).
/// The budget bounds what this costs the caller's own descriptors.
#[derive(Debug)]
pub struct Budget(std::sync::atomic::AtomicUsize);

impl Budget {
    /// Room for `n` kept files.
    pub fn new(n: usize) -> Arc<Budget> {
        Arc::new(Budget(std::sync::atomic::AtomicUsize::new(n)))
    }

    /// Takes room for one file, if there is some left.
    fn take(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.0
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    fn give_back(&self, n: usize) {
        self.0.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for FdDirs {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.give_back(self.kept.get_mut().map_or(0, |k| k.len()));
        }
    }
}

impl FdDirs {
    /// Opens `/proc/PID/fd` and `/proc/PID/fdinfo` (`/proc/PID/task/TID/...`
    /// for a thread: `base` is the folder of the task).
    ///
    /// Errors: the process is gone (`ENOENT`), or not ours to read
    /// (`EACCES`, `EPERM`).
    pub fn open(pid: i32, base: &str) -> Result<FdDirs, ReadError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(CWD, format!("{base}/fd"), flags, Mode::empty())
            .map_err(io::Error::from)
            .map_err(read_err("opening /proc/PID/fd"))?;
        let info = rustix::fs::openat(CWD, format!("{base}/fdinfo"), flags, Mode::empty())
            .map_err(io::Error::from)
            .map_err(read_err("opening /proc/PID/fdinfo"))?;
        Ok(FdDirs {
            pid,
            fd,
            info,
            kept: Default::default(),
            budget: None,
        })
    }

    /// The same, keeping `fdinfo` files open between reads while `budget`
    /// has room.
    pub fn keeping(mut self, budget: Arc<Budget>) -> FdDirs {
        self.budget = Some(budget);
        self
    }

    /// The open descriptors within `range`, ascending.
    ///
    /// Errors: the folder cannot be read (the process went away, or is not
    /// ours to read).
    pub fn list(&self, range: &Range<i32>) -> Result<Vec<i32>, ReadError> {
        let dup = rustix::io::dup(&self.fd)
            .map_err(io::Error::from)
            .map_err(read_err("reading /proc/PID/fd"))?;
        let mut dir = rustix::fs::Dir::new(dup)
            .map_err(io::Error::from)
            .map_err(read_err("reading /proc/PID/fd"))?;
        // The copy shares the folder's offset, which the last listing left
        // at its end.
        dir.rewind();
        let mut out = Vec::new();
        while let Some(e) = dir.read() {
            let e = e
                .map_err(io::Error::from)
                .map_err(read_err("reading /proc/PID/fd"))?;
            if let Some(n) = e.file_name().to_str().ok().and_then(|s| s.parse().ok()) {
                if range.contains(&n) {
                    out.push(n);
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Reads descriptor `fd` whole: [`FdDirs::read_info`], then
    /// [`FdDirs::describe`].
    ///
    /// Errors: `ENOENT` if it closed since it was listed; what the kernel
    /// says otherwise.
    pub fn read(&self, fd: i32, types: &mut TypeCache) -> Result<FdEntry, ReadError> {
        let mut e = self.read_info(fd, &mut Vec::new())?;
        self.describe(fd, e.mnt_id, e.ino, types)?.apply(&mut e);
        Ok(e)
    }

    /// Reads descriptor `fd`'s `fdinfo`; its link (and a path's type) is
    /// left for [`FdDirs::describe`]. `buf` is scratch space, reused.
    ///
    /// Errors: `ENOENT` if it closed since it was listed; what the kernel
    /// says otherwise.
    pub fn read_info(&self, fd: i32, buf: &mut Vec<u8>) -> Result<FdEntry, ReadError> {
        self.fdinfo(fd, buf)
            .map_err(read_err(format!("reading /proc/PID/fdinfo/{fd}")))?;
        let info = parse_fdinfo(&String::from_utf8_lossy(buf));
        Ok(FdEntry {
            pid: self.pid,
            fd,
            mnt_id: info.mnt_id,
            ino: info.ino,
            pos: info.pos,
            flags: info.flags & !O_CLOEXEC,
            cloexec: info.flags & O_CLOEXEC != 0,
            targets: info.targets,
            tty_index: info.tty_index,
            eventfd: info.eventfd,
            ..FdEntry::default()
        })
    }

    /// Reads what the open file at `fd` (whose `fdinfo` gave `mnt_id` and
    /// `ino`) is: its link, and for a file with a path, its type and device
    /// (from `types`, or one `stat`).
    ///
    /// Errors: `ENOENT` if the descriptor closed meanwhile.
    pub fn describe(
        &self,
        fd: i32,
        mnt_id: u32,
        ino: u64,
        types: &mut TypeCache,
    ) -> Result<Described, ReadError> {
        let name = itoa(fd);
        let link = rustix::fs::readlinkat(&self.fd, name.as_str(), Vec::with_capacity(64))
            .map_err(io::Error::from)
            .map_err(read_err(format!("reading /proc/PID/fd/{fd}")))?
            .into_bytes();
        let mut e = Described {
            link: String::from_utf8_lossy(&link).into(),
            ftype: None,
            dev: 0,
            rdev: 0,
        };
        if e.link.starts_with('/') {
            let key = (mnt_id, ino);
            let (ftype, dev, rdev) = match types.0.get(&key) {
                Some(&t) => t,
                None => {
                    // Follows the magic link to the open file itself.
                    let st = rustix::fs::statat(&self.fd, name.as_str(), AtFlags::empty())
                        .map_err(io::Error::from)
                        .map_err(read_err(format!("stat of fd {fd}")))?;
                    let t = (
                        Some(FileType::from_raw_mode(st.st_mode)),
                        st.st_dev,
                        st.st_rdev,
                    );
                    types.0.insert(key, t);
                    t
                }
            };
            e.ftype = ftype;
            e.dev = dev;
            e.rdev = rdev;
        }
        Ok(e)
    }

    /// Reads descriptor `fd`'s `fdinfo` into `buf`, in one or a few reads,
    /// through the file kept for it if there is one (see [`Budget`]).
    fn fdinfo(&self, fd: i32, buf: &mut Vec<u8>) -> io::Result<()> {
        let Some(budget) = &self.budget else {
            return Self::read_all(&self.open_info(fd)?, buf);
        };
        // A kept file holds its room while it is out of `kept`.
        let kept = self.kept.lock().ok().and_then(|mut k| k.remove(&fd));
        let had_room = kept.is_some();
        let f = match kept {
            Some(f) => f,
            None => self.open_info(fd)?,
        };
        let r = Self::read_all(&f, buf);
        if r.is_ok() && (had_room || budget.take()) {
            match self.kept.lock() {
                Ok(mut k) => {
                    k.insert(fd, f);
                }
                Err(_) => budget.give_back(1),
            }
        } else if had_room {
            budget.give_back(1);
        }
        r
    }

    /// Opens descriptor `fd`'s `fdinfo`.
    fn open_info(&self, fd: i32) -> io::Result<OwnedFd> {
        Ok(rustix::fs::openat(
            &self.info,
            itoa(fd).as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?)
    }

    /// Reads `f` from its start into `buf`.
    fn read_all(f: &OwnedFd, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.clear();
        buf.resize(buf.capacity().max(1024), 0);
        let mut len = 0;
        loop {
            let room = buf.len() - len;
            let n = rustix::io::pread(f, &mut buf[len..], len as u64)?;
            len += n;
            // `fdinfo` is a seq_file that shows its text in one go: a read
            // that did not fill the room has reached the end, which saves
            // the read that would return 0 (one system call a descriptor).
            if n < room {
                break;
            }
            buf.resize(len * 2, 0);
        }
        buf.truncate(len);
        Ok(())
    }
}

/// A descriptor number as a file name, without an allocation.
fn itoa(n: i32) -> Itoa {
    let mut b = [0u8; 12];
    let mut i = b.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        b[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        b[i] = b'-';
    }
    Itoa { b, at: i }
}

/// The digits [`itoa`] wrote.
struct Itoa {
    b: [u8; 12],
    at: usize,
}

impl Itoa {
    fn as_str(&self) -> &str {
        // Digits and a minus sign only: ASCII.
        std::str::from_utf8(&self.b[self.at..]).unwrap_or("")
    }
}

/// A process as `/proc/PID/stat` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    pub comm: String,
    /// `R`, `S`, `T` (stopped), `Z` (zombie), ...
    pub state: char,
    pub ppid: i32,
    /// The session's id: the pid of its leader.
    pub session: i32,
    /// The controlling terminal's device, encoded (`tty_nr`; 0: none).
    pub tty_nr: u32,
}

/// `tty_nr` of the slave of pty `index` (`/dev/pts/INDEX`, major 136), as
/// `/proc/PID/stat` encodes a device (`new_encode_dev`).
pub fn pts_tty_nr(index: u32) -> u32 {
    const UNIX98_PTY_SLAVE_MAJOR: u32 = 136;
    (index & 0xff) | (UNIX98_PTY_SLAVE_MAJOR << 8) | ((index & !0xff) << 12)
}

/// Reads `/proc/PID/stat`.
///
/// Errors: the process is gone.
pub fn stat(pid: i32) -> io::Result<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat"))?)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable /proc/PID/stat"))
}

/// Parses `/proc/PID/stat`: `pid (comm) state ppid ...`, where `comm` may
/// hold spaces and parentheses (the last `)` ends it).
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let comm = text[open + 1..close].to_string();
    let mut rest = text[close + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    // pgrp, session, then tty_nr.
    let session = rest.nth(1).and_then(|t| t.parse().ok()).unwrap_or(0);
    let tty_nr = rest.next().and_then(|t| t.parse::<i64>().ok()).unwrap_or(0) as u32;
    Some(ProcStat {
        pid,
        comm,
        state,
        ppid,
        session,
        tty_nr,
    })
}

/// The soft `RLIMIT_NOFILE` of process `pid` (`/proc/PID/limits`), `None`
/// for unlimited.
///
/// Errors: the process is gone, or the line is missing.
pub fn nofile_soft(pid: i32) -> io::Result<Option<u64>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits"))?;
    parse_nofile(&text)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Max open files line"))
}

/// The soft limit of the `Max open files` line of a `limits` file.
fn parse_nofile(text: &str) -> Option<Option<u64>> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    Some(soft.parse().ok())
}

/// Every descriptor, of any process that can be read, whose `/proc` link
/// is `link` (`socket:[1234]`): the processes that hold a file.
pub fn holders(link: &str) -> Vec<(i32, i32)> {
    let mut out = Vec::new();
    for pid in all_pids() {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for e in dir.flatten() {
            if std::fs::read_link(e.path()).is_ok_and(|l| l.as_os_str() == link) {
                if let Some(fd) = e.file_name().to_str().and_then(|n| n.parse().ok()) {
                    out.push((pid, fd));
                }
            }
        }
    }
    out
}

/// Every process (thread group) in `/proc`, ascending.
pub fn all_pids() -> Vec<i32> {
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    pids
}

/// The threads of process `pid` (its own id first), ascending after it.
pub fn threads(pid: i32) -> Vec<i32> {
    let mut tids: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .filter(|&t| t != pid)
                .collect()
        })
        .unwrap_or_default();
    tids.sort_unstable();
    tids.insert(0, pid);
    tids
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kept `fdinfo` file read again shows the descriptor as it is now,
    /// and takes room from the budget once. (The test's own descriptor:
    /// it stays open throughout, so no other test thread can take its
    /// number.)
    #[test]
    fn a_kept_fdinfo_reads_afresh() {
        use std::io::{Seek, SeekFrom};
        use std::os::fd::AsRawFd;
        let mut f = std::fs::File::open("/proc/self/cmdline").unwrap();
        let fd = f.as_raw_fd();
        let budget = Budget::new(1);
        let me = std::process::id() as i32;
        let d = FdDirs::open(me, "/proc/self")
            .unwrap()
            .keeping(Arc::clone(&budget));
        let mut buf = Vec::new();
        assert_eq!(d.read_info(fd, &mut buf).unwrap().pos, 0);
        assert_eq!(budget.0.load(std::sync::atomic::Ordering::Relaxed), 0);
        assert!(d.kept.lock().unwrap().contains_key(&fd));
        f.seek(SeekFrom::Start(3)).unwrap();
        let e = d.read_info(fd, &mut buf).unwrap();
        assert_eq!(e.pos, 3, "read again, not the text of the first read");
        assert!(e.cloexec);
        assert_eq!(budget.0.load(std::sync::atomic::Ordering::Relaxed), 0);
        drop(d);
        assert_eq!(budget.0.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    /// A kept `fdinfo` file of a process that has gone fails its read, and
    /// its room comes back.
    #[test]
    fn a_kept_fdinfo_of_a_process_gone_fails() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let budget = Budget::new(1);
        let d = FdDirs::open(pid, &format!("/proc/{pid}"))
            .unwrap()
            .keeping(Arc::clone(&budget));
        let mut buf = Vec::new();
        d.read_info(0, &mut buf).unwrap();
        assert_eq!(budget.0.load(std::sync::atomic::Ordering::Relaxed), 0);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(d.read_info(0, &mut buf).is_err());
        assert_eq!(budget.0.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert!(d.kept.lock().unwrap().is_empty());
    }

    #[test]
    fn fdinfo_of_an_epoll() {
        let text = "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1057\n\
                    tfd:        5 events:       19 data:                5  pos:0 ino:3d sdev:d\n\
                    tfd:        5 events:        4 data:                5  pos:0 ino:3e sdev:d\n";
        let i = parse_fdinfo(text);
        assert_eq!((i.pos, i.flags, i.mnt_id, i.ino), (0, 0o2000002, 16, 1057));
        assert_eq!(
            i.targets,
            vec![
                EpollTfd {
                    tfd: 5,
                    events: 0x19,
                    ino: 0x3d
                },
                EpollTfd {
                    tfd: 5,
                    events: 4,
                    ino: 0x3e
                }
            ]
        );
    }

    #[test]
    fn fdinfo_of_an_eventfd_and_a_pty() {
        let e = parse_fdinfo(
            "pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t18\neventfd-count:                3\neventfd-id: 1\n",
        );
        assert_eq!(e.eventfd, Some((3, 1)));
        let p = parse_fdinfo("pos:\t0\nflags:\t02100002\nmnt_id:\t24\nino:\t91\ntty-index:\t7\n");
        assert_eq!(p.tty_index, Some(7));
    }

    #[test]
    fn limits_line() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max open files            1024                 20000                files     \n";
        assert_eq!(parse_nofile(text), Some(Some(1024)));
        let text = "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_nofile(text), Some(None));
        assert_eq!(parse_nofile("Max processes 5 5\n"), None);
    }

    #[test]
    fn stat_with_a_strange_command_name() {
        let s = parse_stat("42 (a) b (c)) S 7 42 42 34820 -1").unwrap();
        assert_eq!(
            (s.pid, s.comm.as_str(), s.state, s.ppid, s.session, s.tty_nr),
            (42, "a) b (c)", 'S', 7, 42, 34820)
        );
        // /dev/pts/4 is 136:4; /dev/pts/300 is 136:300.
        assert_eq!(pts_tty_nr(4), 34820);
        assert_eq!(pts_tty_nr(300), 0x8800 | 44 | (256 << 12));
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id() as i32;
        let f = std::fs::File::open("/dev/null").unwrap();
        let n = std::os::fd::AsRawFd::as_raw_fd(&f);
        let dirs = FdDirs::open(me, &format!("/proc/{me}")).unwrap();
        assert!(dirs.list(&(0..i32::MAX)).unwrap().contains(&n));
        let e = dirs.read(n, &mut TypeCache::default()).unwrap();
        assert_eq!(&*e.link, "/dev/null");
        assert_eq!(e.ftype, Some(FileType::CharacterDevice));
        assert!(e.cloexec, "std opens close-on-exec");
        assert_eq!(stat(me).unwrap().pid, me);
        assert!(threads(me).starts_with(&[me]));
    }
}
