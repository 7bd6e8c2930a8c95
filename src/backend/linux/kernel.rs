//! The scenario's system calls, made for real by a helper process.
//!
//! Descriptor arguments here are whatever the scenario says: closed numbers,
//! negative ones. `BorrowedFd` and `OwnedFd` promise an open descriptor, so
//! this file speaks raw `libc` on purpose, and every call's errno comes back
//! as the model's [`Errno`]. Every `unsafe` block of the helper is here.

use std::ffi::CString;
use std::io;

use fdlab_model::Errno;

pub type Sys<T> = Result<T, Errno>;

/// The errno of the last failed call, as the model names it (`EIO` for one
/// the model does not know, which then shows as a divergence).
fn errno() -> Errno {
    let raw = io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO);
    Errno::from_raw(raw).unwrap_or(Errno::EIO)
}

fn check(r: libc::c_int) -> Sys<libc::c_int> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

fn check_size(r: isize) -> Sys<usize> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(r as usize)
    }
}

pub fn open(path: &str, flags: i32, mode: u32) -> Sys<i32> {
    let c = CString::new(path).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `c` is a NUL-terminated string alive for the call.
    check(unsafe { libc::open(c.as_ptr(), flags, mode as libc::c_uint) })
}

pub fn close(fd: i32) -> Sys<()> {
    // SAFETY: closing any number is safe for memory; the helper owns its table.
    check(unsafe { libc::close(fd) }).map(|_| ())
}

pub fn dup(fd: i32) -> Sys<i32> {
    // SAFETY: integer arguments.
    check(unsafe { libc::dup(fd) })
}

pub fn dup2(old: i32, new: i32) -> Sys<i32> {
    // SAFETY: integer arguments.
    check(unsafe { libc::dup2(old, new) })
}

pub fn dup3(old: i32, new: i32, flags: i32) -> Sys<i32> {
    // SAFETY: integer arguments.
    check(unsafe { libc::dup3(old, new, flags) })
}

pub fn fcntl(fd: i32, cmd: i32, arg: libc::c_long) -> Sys<i32> {
    // SAFETY: the commands used here take an integer argument.
    check(unsafe { libc::fcntl(fd, cmd, arg) })
}

/// Runs `f` with `O_NONBLOCK` set on `fd`'s open file, so that a call that
/// would wait says `EAGAIN` instead, then puts the flags back. Scenario
/// processes run one call at a time, so nobody sees the flag.
fn nonblocking<T>(fd: i32, f: impl FnOnce() -> Sys<T>) -> Sys<T> {
    match fcntl(fd, libc::F_GETFL, 0) {
        Ok(fl) if fl & libc::O_NONBLOCK == 0 => {
            let set = fcntl(fd, libc::F_SETFL, (fl | libc::O_NONBLOCK) as libc::c_long).is_ok();
            let r = f();
            if set {
                let _ = fcntl(fd, libc::F_SETFL, fl as libc::c_long);
            }
            r
        }
        _ => f(),
    }
}

pub fn write(fd: i32, data: &[u8]) -> Sys<usize> {
    nonblocking(fd, || {
        // SAFETY: reads `data.len()` bytes from `data`.
        check_size(unsafe { libc::write(fd, data.as_ptr() as *const libc::c_void, data.len()) })
    })
}

pub fn read(fd: i32, len: usize) -> Sys<Vec<u8>> {
    nonblocking(fd, || {
        let mut buf = vec![0u8; len];
        // SAFETY: writes at most `len` bytes into `buf`, which has `len`.
        let n = check_size(unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, len) })?;
        buf.truncate(n);
        Ok(buf)
    })
}

pub fn lseek(fd: i32, off: i64, whence: i32) -> Sys<i64> {
    // SAFETY: integer arguments.
    let r = unsafe { libc::lseek(fd, off, whence) };
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

pub fn pipe2(flags: i32) -> Sys<(i32, i32)> {
    let mut fds = [0i32; 2];
    // SAFETY: the kernel writes two ints into `fds`.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), flags) })?;
    Ok((fds[0], fds[1]))
}

pub fn socketpair(ty: i32) -> Sys<(i32, i32)> {
    let mut fds = [0i32; 2];
    // SAFETY: the kernel writes two ints into `fds`.
    check(unsafe { libc::socketpair(libc::AF_UNIX, ty, 0, fds.as_mut_ptr()) })?;
    Ok((fds[0], fds[1]))
}

pub fn socket(ty: i32) -> Sys<i32> {
    // SAFETY: integer arguments.
    check(unsafe { libc::socket(libc::AF_UNIX, ty, 0) })
}

/// A unix socket address: a path, or an abstract name given with a
/// leading `@` (sent as a leading NUL). Errors: `ENAMETOOLONG` when it does
/// not fit `sun_path`.
fn unix_addr(name: &str) -> Sys<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain data; all zeros is a valid value.
    let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let (bytes, abstract_) = match name.strip_prefix('@') {
        Some(rest) => (rest.as_bytes(), true),
        None => (name.as_bytes(), false),
    };
    let start = usize::from(abstract_);
    // A path keeps a terminating NUL; an abstract name is its length.
    if start + bytes.len() + usize::from(!abstract_) > a.sun_path.len() {
        return Err(Errno::ENAMETOOLONG);
    }
    for (i, &b) in bytes.iter().enumerate() {
        a.sun_path[start + i] = b as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + start + bytes.len();
    Ok((a, len as libc::socklen_t))
}

pub fn bind(fd: i32, name: &str) -> Sys<()> {
    let (a, len) = unix_addr(name)?;
    // SAFETY: `a` is a valid sockaddr_un of `len` bytes, alive for the call.
    check(unsafe { libc::bind(fd, (&a as *const libc::sockaddr_un).cast(), len) }).map(|_| ())
}

/// Removes the socket file at `path`: only a socket file (`ENOTSOCK` for
/// anything else, which stays).
pub fn unlink_socket(path: &str) -> Sys<()> {
    use std::os::unix::fs::FileTypeExt;
    let io =
        |e: io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)).unwrap_or(Errno::EIO);
    let meta = std::fs::symlink_metadata(path).map_err(io)?;
    if !meta.file_type().is_socket() {
        return Err(Errno::ENOTSOCK);
    }
    std::fs::remove_file(path).map_err(io)
}

pub fn listen(fd: i32, backlog: i32) -> Sys<()> {
    // SAFETY: integer arguments.
    check(unsafe { libc::listen(fd, backlog) }).map(|_| ())
}

/// `connect`, never waiting: a full backlog is `EAGAIN`.
pub fn connect(fd: i32, name: &str) -> Sys<()> {
    let (a, len) = unix_addr(name)?;
    nonblocking(fd, || {
        // SAFETY: `a` is a valid sockaddr_un of `len` bytes, alive for the
        // call.
        check(unsafe { libc::connect(fd, (&a as *const libc::sockaddr_un).cast(), len) })
            .map(|_| ())
    })
}

/// `accept4`, never waiting: nothing pending is `EAGAIN`.
pub fn accept4(fd: i32, flags: i32) -> Sys<i32> {
    nonblocking(fd, || {
        // SAFETY: no address is asked for; integer arguments.
        check(unsafe { libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), flags) })
    })
}

pub fn shutdown(fd: i32, how: i32) -> Sys<()> {
    // SAFETY: integer arguments.
    check(unsafe { libc::shutdown(fd, how) }).map(|_| ())
}

/// The control-message space for `n` descriptors.
fn cmsg_space(n: usize) -> usize {
    cmsg_space_bytes(n * std::mem::size_of::<i32>())
}

/// Room for a control message of `bytes` bytes.
fn cmsg_space_bytes(bytes: usize) -> usize {
    // SAFETY: CMSG_SPACE is arithmetic.
    unsafe { libc::CMSG_SPACE(bytes as u32) as usize }
}

/// `sendmsg` of `data` with SCM_RIGHTS carrying `fds` (none: no control
/// message at all), never blocking and never raising SIGPIPE.
pub fn sendfds(sock: i32, data: &[u8], fds: &[i32]) -> Sys<usize> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let bytes = std::mem::size_of_val(fds);
    let mut control = vec![
        0u8;
        if fds.is_empty() {
            0
        } else {
            cmsg_space(fds.len())
        }
    ];
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = control.len();
        // SAFETY: `control` has CMSG_SPACE(bytes), so the first header and
        // its data fit; CMSG_FIRSTHDR/CMSG_DATA point inside it.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(bytes as u32) as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr() as *const u8, libc::CMSG_DATA(c), bytes);
        }
    }
    // SAFETY: `msg` points at `iov`, `data` and `control`, all alive.
    check_size(unsafe { libc::sendmsg(sock, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) })
}

/// A message on a unix socket: its bytes and the descriptors that came
/// with it, in order.
pub type Message = (Vec<u8>, Vec<i32>);

/// `recvmsg` with a one-byte buffer and a control buffer of exactly
/// `CMSG_LEN(max * sizeof(int))`, never blocking; returns the descriptors
/// received, in order, and whether the kernel set `MSG_CTRUNC`.
pub fn recvfds(sock: i32, max: usize, flags: i32) -> Sys<(Vec<i32>, bool)> {
    // SAFETY: CMSG_LEN is arithmetic.
    let control = unsafe { libc::CMSG_LEN((max * std::mem::size_of::<i32>()) as u32) } as usize;
    recvmsg_into(sock, 1, control, flags).map(|((_, fds), f, _)| (fds, f & libc::MSG_CTRUNC != 0))
}

/// `recvmsg` with a `len`-byte buffer and room for `max` descriptors,
/// never blocking; returns the bytes and the descriptors received, in
/// order.
pub fn recvmsg(sock: i32, len: usize, max: usize, flags: i32) -> Sys<Message> {
    recvmsg_into(sock, len, cmsg_space(max), flags).map(|(m, _, _)| m)
}

/// `recvmsg` with a `len`-byte buffer and a control buffer of `control`
/// bytes, never blocking; returns the message, the `msg_flags` the
/// kernel set, and whether credentials came with it (`SCM_CREDENTIALS`).
fn recvmsg_into(sock: i32, len: usize, control: usize, flags: i32) -> Sys<(Message, i32, bool)> {
    let mut buf = vec![0u8; len];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: len,
    };
    let mut control = vec![0u8; control];
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = control.len();
    // SAFETY: `msg` points at `iov`, `buf` and `control`, all alive.
    let n = check_size(unsafe { libc::recvmsg(sock, &mut msg, flags | libc::MSG_DONTWAIT) })?;
    buf.truncate(n);
    let mut out = Vec::new();
    let mut creds = false;
    // SAFETY: the kernel filled `control` up to msg_controllen with
    // well-formed headers; CMSG_FIRSTHDR/NXTHDR walk within it.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let level = (*c).cmsg_level == libc::SOL_SOCKET;
            creds |= level && (*c).cmsg_type == libc::SCM_CREDENTIALS;
            if level && (*c).cmsg_type == libc::SCM_RIGHTS {
                let n = ((*c).cmsg_len - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<i32>();
                let data = libc::CMSG_DATA(c) as *const i32;
                for i in 0..n {
                    out.push(std::ptr::read_unaligned(data.add(i)));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(((buf, out), msg.msg_flags, creds))
}

/// `poll` on `fds` (descriptor, events) for at most `ms` milliseconds;
/// returns the events each got. `EINTR` is an empty answer.
pub fn poll(fds: &[(i32, i16)], ms: i32) -> Sys<Vec<i16>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&(fd, events)| libc::pollfd {
            fd,
            events,
            revents: 0,
        })
        .collect();
    // SAFETY: `p` holds `p.len()` pollfd structs, alive for the call.
    let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
    if r >= 0 {
        Ok(p.iter().map(|x| x.revents).collect())
    } else if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
        Ok(vec![0; fds.len()])
    } else {
        Err(errno())
    }
}

pub fn epoll_create(flags: i32) -> Sys<i32> {
    // SAFETY: integer argument.
    check(unsafe { libc::epoll_create1(flags) })
}

pub fn epoll_ctl(epfd: i32, op: i32, fd: i32, events: u32) -> Sys<()> {
    let mut ev = libc::epoll_event {
        events,
        u64: fd as u64,
    };
    // SAFETY: `ev` is a valid epoll_event alive for the call.
    check(unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) }).map(|_| ())
}

/// `epoll_wait(epfd, events, maxevents, 0)`: each ready registration's
/// `data` (the number it was registered under, see [`epoll_ctl`]) and
/// events. `maxevents` reaches the kernel as it is, 0 and negative ones
/// included; the buffer has room for as many (the language allows at
/// most `MAX_EPOLL_EVENTS`).
pub fn epoll_wait(epfd: i32, maxevents: i32) -> Sys<Vec<(i64, u32)>> {
    let room = usize::try_from(maxevents).unwrap_or(0);
    let mut buf = vec![libc::epoll_event { events: 0, u64: 0 }; room.max(1)];
    // SAFETY: `buf` has room for `max(maxevents, 1)` events, alive for the
    // call; the kernel writes at most `maxevents` of them, and none when it
    // refuses a `maxevents` of 0 or less.
    let n = check(unsafe { libc::epoll_wait(epfd, buf.as_mut_ptr(), maxevents, 0) })?;
    Ok(buf[..n as usize]
        .iter()
        .map(|e| (e.u64 as i64, e.events))
        .collect())
}

pub fn setsid() -> Sys<()> {
    // SAFETY: no arguments.
    check(unsafe { libc::setsid() }).map(|_| ())
}

/// `ioctl(fd, TIOCSCTTY, 0)`: make the terminal at `fd` the controlling
/// terminal, stealing it from no one.
pub fn tiocsctty(fd: i32) -> Sys<()> {
    // SAFETY: TIOCSCTTY takes an integer argument.
    check(unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) }).map(|_| ())
}

/// `ioctl(fd, TIOCSPTLCK, 0)` then `ioctl(fd, TIOCGPTPEER, flags)`:
/// unlock the pty master at `fd` (as `unlockpt` does) and open its slave.
pub fn ptypeer(fd: i32, flags: i32) -> Sys<i32> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer, which lives
    // across the call.
    check(unsafe { libc::ioctl(fd, libc::TIOCSPTLCK, &unlock) })?;
    // SAFETY: TIOCGPTPEER takes the open flags as an integer argument.
    check(unsafe { libc::ioctl(fd, libc::TIOCGPTPEER, flags) })
}

pub fn eventfd(flags: i32) -> Sys<i32> {
    // SAFETY: integer arguments.
    check(unsafe { libc::eventfd(0, flags) })
}

pub fn set_nofile(soft: u64) -> Sys<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: the kernel writes a struct rlimit into `lim`.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    lim.rlim_cur = soft;
    // SAFETY: reads the struct rlimit `lim`.
    check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }).map(|_| ())
}

/// The hard `RLIMIT_NOFILE`.
pub fn nofile_hard() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: the kernel writes a struct rlimit into `lim`.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    lim.rlim_max
}

pub fn unshare_files() -> Sys<()> {
    // SAFETY: integer argument.
    check(unsafe { libc::unshare(libc::CLONE_FILES) }).map(|_| ())
}

/// `fork(2)`, or `clone(CLONE_FILES)` with fork's calling convention (no
/// new stack: the child runs on a copy of the parent's, like fork). Returns
/// the child's pid in the parent and 0 in the child.
///
/// Precondition: the calling process is single-threaded (a helper is).
pub fn fork(share_files: bool) -> Sys<i32> {
    let r = if share_files {
        // SAFETY: a raw clone without CLONE_VM and with a null stack behaves
        // as fork; the helper is single-threaded, so the child's copy of the
        // address space is consistent.
        unsafe {
            libc::syscall(
                libc::SYS_clone,
                libc::CLONE_FILES | libc::SIGCHLD,
                0,
                0,
                0,
                0,
            ) as i32
        }
    } else {
        // SAFETY: as above; the helper is single-threaded.
        unsafe { libc::fork() }
    };
    check(r)
}

/// Waits for child `pid` to end; returns its raw wait status.
pub fn wait_pid(pid: i32) -> Sys<i32> {
    let mut status = 0;
    loop {
        // SAFETY: the kernel writes an int into `status`.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r >= 0 {
            return Ok(status);
        }
        if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(errno());
        }
    }
}

/// `execve(path, argv, environ)`; returns only on failure.
pub fn execve(path: &str, argv: &[String]) -> Errno {
    let (Ok(p), Ok(args)) = (
        CString::new(path),
        argv.iter()
            .map(|a| CString::new(a.as_str()))
            .collect::<Result<Vec<_>, _>>(),
    ) else {
        return Errno::EINVAL;
    };
    let mut ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    extern "C" {
        static environ: *const *const libc::c_char;
    }
    // SAFETY: `p` and every `args` string are NUL-terminated and alive;
    // `ptrs` is NULL-terminated; `environ` is the C library's environment.
    unsafe { libc::execve(p.as_ptr(), ptrs.as_ptr(), environ) };
    errno()
}

/// Ends the process at once, without running destructors (`_exit`).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// Ignores a signal (`SIGPIPE`: the language wants `EPIPE`; `SIGCHLD`:
/// children are reaped by the kernel).
pub fn ignore(sig: i32) {
    // SAFETY: installs SIG_IGN, which runs no code in this process.
    unsafe { libc::signal(sig, libc::SIG_IGN) };
}

/// Makes this process the reaper of its orphaned descendants.
pub fn become_subreaper() {
    // SAFETY: integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// Sends `sig` to every process in this process group but this one (it
/// ignores `sig` first).
pub fn signal_group(sig: i32) {
    ignore(sig);
    // SAFETY: kill(0, sig) signals this process group; integer arguments.
    unsafe { libc::kill(0, sig) };
}

/// Waits for every child to end (with SIGCHLD ignored the kernel reaps them;
/// `wait` returns ECHILD when none is left).
pub fn wait_children() {
    loop {
        let mut status = 0;
        // SAFETY: the kernel writes an int into `status`.
        let r = unsafe { libc::wait(&mut status) };
        if r < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
}

pub fn clear_umask() {
    // SAFETY: integer argument; umask cannot fail.
    unsafe { libc::umask(0) };
}

/// A copy, in this process, of descriptor `fd` of process `pid`
/// (`pidfd_getfd(2)`, which takes ptrace attach access to `pid`).
pub fn grab_fd(pid: i32, fd: i32) -> Sys<i32> {
    // SAFETY: plain integer arguments.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Err(errno());
    }
    // SAFETY: plain integer arguments; `pidfd` is ours.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd as i32, fd, 0) };
    let e = errno();
    let _ = close(pidfd as i32);
    if r < 0 {
        Err(e)
    } else {
        Ok(r as i32)
    }
}

/// `getsockopt`/`setsockopt(SOL_SOCKET, opt)` of an integer option.
fn sockopt(sock: i32, opt: libc::c_int, set: Option<i32>) -> Sys<i32> {
    let mut v: libc::c_int = set.unwrap_or(0);
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let p = &mut v as *mut libc::c_int as *mut libc::c_void;
    // SAFETY: `v` is a c_int alive for the call and `len` its size.
    check(unsafe {
        match set {
            Some(_) => libc::setsockopt(sock, libc::SOL_SOCKET, opt, p, len),
            None => libc::getsockopt(sock, libc::SOL_SOCKET, opt, p, &mut len),
        }
    })?;
    Ok(v)
}

/// `SO_PEEK_OFF`, read or set.
fn peek_off(sock: i32, set: Option<i32>) -> Sys<i32> {
    sockopt(sock, libc::SO_PEEK_OFF, set)
}

/// `getsockopt(SOL_SOCKET, SO_TYPE)`: `SOCK_STREAM`, `SOCK_DGRAM` ...
pub fn sock_type(sock: i32) -> Sys<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let p = &mut v as *mut libc::c_int as *mut libc::c_void;
    // SAFETY: `v` is a c_int alive for the call and `len` its size.
    check(unsafe { libc::getsockopt(sock, libc::SOL_SOCKET, libc::SO_TYPE, p, &mut len) })?;
    Ok(v)
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_interrupt(sig: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
    // SAFETY: signal(2) is async-signal-safe; the next one of this signal
    // takes its default action (a second Ctrl-C ends the process at once).
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

/// From now on the first `SIGINT` or `SIGTERM` only sets a flag that
/// [`interrupted`] reads, so that a long run can stop where it is and
/// report what it did; a second one ends the process.
pub fn catch_interrupt() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic and calls signal(2),
        // both async-signal-safe.
        unsafe { libc::signal(sig, on_interrupt as *const () as libc::sighandler_t) };
    }
}

/// Whether an interrupt arrived since [`catch_interrupt`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// The largest datagram [`peek_queue`] reads.
pub const PEEK_MAX: usize = 1 << 20;

/// Every message queued on unix socket `sock`, without taking any: each
/// with its bytes and the files in flight with it, which the peek installs
/// in this process's table (in the queue's order). The socket's peek
/// offset is put back as it was.
///
/// A stream socket's peek returns a run of bytes without files, or the
/// bytes that carry files, as its reads would.
///
/// An empty answer ends a stream socket's queue (its peer is gone). On a
/// datagram or seqpacket socket it is an empty message, which the kernel
/// marks peeked so that the next peek at the same offset passes it. When
/// the socket is shut for reading (`POLLRDHUP`) a seqpacket socket answers
/// 0 for the end of the queue too: then the peek asks for credentials
/// (`SO_PASSCRED`, put back after), which come with every message, empty
/// or not, and never with the end.
///
/// Also says whether an error is pending on the socket (`POLLERR`; on a
/// unix socket only `ECONNRESET`, left when the peer closed with unread
/// data). The read that finds the queue empty takes that error, a peek
/// too, so with one pending only the bytes queued (`SIOCINQ`) are peeked:
/// the dump leaves the error for the process.
pub fn peek_queue(sock: i32) -> Sys<(Vec<Message>, bool)> {
    let stream = sock_type(sock)? == libc::SOCK_STREAM;
    let (rdhup, err) = (libc::POLLRDHUP, libc::POLLERR);
    let ev = poll(&[(sock, rdhup | err)], 0)?
        .first()
        .copied()
        .unwrap_or(0);
    let reset = ev & err != 0;
    let ends = stream || ev & rdhup != 0;
    let mut left = if reset { Some(inq(sock)?) } else { None };
    let creds = match !stream && ends {
        true => Some(sockopt(sock, libc::SO_PASSCRED, None)?),
        false => None,
    };
    let old = peek_off(sock, None)?;
    peek_off(sock, Some(0))?;
    if creds.is_some() {
        if let Err(e) = sockopt(sock, libc::SO_PASSCRED, Some(1)) {
            let _ = peek_off(sock, Some(old));
            return Err(e);
        }
    }
    let control = cmsg_space(fdlab_model::limits::SCM_MAX_FD)
        + cmsg_space_bytes(std::mem::size_of::<libc::ucred>());
    let mut out = Vec::new();
    let r = loop {
        if left == Some(0) {
            break Ok(());
        }
        match recvmsg_into(sock, PEEK_MAX, control, libc::MSG_PEEK) {
            Ok(((data, fds), _, message))
                if ends && data.is_empty() && fds.is_empty() && !(creds.is_some() && message) =>
            {
                break Ok(())
            }
            Ok((m, _, _)) => {
                if let Some(n) = &mut left {
                    *n = n.saturating_sub(m.0.len().max(1));
                }
                out.push(m)
            }
            Err(Errno::EAGAIN) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    let _ = peek_off(sock, Some(old));
    if let Some(was) = creds {
        let _ = sockopt(sock, libc::SO_PASSCRED, Some(was));
    }
    r.map(|_| (out, reset))
}

/// `ioctl(FIONREAD)`: the bytes queued on a socket (a datagram socket: the
/// first datagram's), or what a read of a terminal would find now (in
/// canonical mode, whole lines only).
pub fn inq(sock: i32) -> Sys<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD (SIOCINQ) writes one c_int through the pointer.
    check(unsafe { libc::ioctl(sock, libc::FIONREAD, &mut n) })?;
    Ok(n.max(0) as usize)
}

/// The bytes waiting in the pipe that `pid`'s descriptor `fd` is an end of,
/// without taking them, and its capacity: the pipe is opened again through
/// `/proc` for reading and `tee(2)`d into a pipe of the same capacity.
pub fn pipe_contents(pid: i32, fd: i32) -> Sys<(Vec<u8>, u64)> {
    let r = open(
        &format!("/proc/{pid}/fd/{fd}"),
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        0,
    )?;
    let result = (|| {
        let size = fcntl(r, libc::F_GETPIPE_SZ, 0)?;
        let (a, b) = pipe2(libc::O_CLOEXEC | libc::O_NONBLOCK)?;
        let copied = (|| {
            fcntl(b, libc::F_SETPIPE_SZ, size.into())?;
            let mut data = Vec::new();
            // SAFETY: integer arguments; `r` and `b` are pipes of ours.
            let n = unsafe { libc::tee(r, b, size as usize, libc::SPLICE_F_NONBLOCK) };
            if n < 0 && errno() != Errno::EAGAIN {
                return Err(errno());
            }
            while data.len() < n.max(0) as usize {
                let chunk = read(a, n as usize - data.len())?;
                if chunk.is_empty() {
                    break;
                }
                data.extend(chunk);
            }
            Ok((data, size as u64))
        })();
        let _ = close(a);
        let _ = close(b);
        copied
    })();
    let _ = close(r);
    result
}
