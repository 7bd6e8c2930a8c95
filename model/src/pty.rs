//! A pseudo-terminal: a master (`/dev/ptmx`) and a slave (`/dev/pts/N`,
//! opened with `TIOCGPTPEER`), two terminals joined back to back, with the
//! slave's line discipline in canonical mode (Linux's defaults: `ICANON`,
//! `ECHO`, `ECHOCTL`, `ICRNL`, `OPOST|ONLCR`).
//!
//! What the master writes is input to the slave's line discipline, which
//! assembles lines for the slave's readers (`\r` is read as `\n`, ICRNL; a
//! read returns at most one line) and echoes what it received back to the
//! master with output post-processing: `\n` becomes `\r\n` (ONLCR), other
//! control characters are echoed as `^X` (ECHOCTL). What the slave writes
//! reaches the master with ONLCR only. The model does not give control
//! characters their special meanings (erase, kill, end of file, interrupt,
//! flow control) and does not bound a line at 4,095 bytes; Linux does both.
//!
//! On Linux the bytes take two hops through work queues, and each may
//! happen later than the write that started it:
//! 1. the master's write lands in the slave port's flip buffer, and the
//!    slave's `flush_to_ldisc` work hands it to the line discipline, which
//!    assembles lines and echoes (`input` to `lines` and `to_master`);
//! 2. the echo, and whatever the slave writes, land in the master port's
//!    flip buffer, and the master's `flush_to_ldisc` work moves them to the
//!    master's read buffer (`to_master` to `output`).
//!
//! `n_tty_read` and `n_tty_poll` on a terminal with nothing to read wait
//! for that terminal's own hop first (`tty_buffer_flush_work`), so a read
//! never misses bytes that reached it, but a master can miss an echo still
//! in hop 1. With deferred work ([`crate::World::set_deferred`]) the hops
//! are [`Pty::receive_input`] and [`Pty::flush_to_master`]; otherwise a
//! write makes them at once, which is one of the outcomes Linux allows.
//!
//! Closing: the master's close hangs the slave up (its files read end of
//! file, fail writes with `EIO`, poll as everything); the last slave
//! file's close makes the master's reads fail with `EIO` once its buffer
//! is empty (`TTY_OTHER_CLOSED`), until a slave is opened again.

use std::collections::VecDeque;

use crate::errno::Errno;

/// Which terminal of the pair: each has its own wait queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    Master,
    Slave,
}

#[derive(Debug, Clone)]
pub struct Pty {
    /// Written on the master, not yet seen by the slave's line discipline.
    pub input: VecDeque<u8>,
    /// The slave's read buffer: complete lines, then the line being typed.
    pub lines: VecDeque<u8>,
    /// How many bytes at the front of `lines` are complete lines
    /// (`canon_head`): what a canonical read may return.
    pub complete: usize,
    /// Echo and slave output, not yet in the master's read buffer.
    pub to_master: VecDeque<u8>,
    /// The master's read buffer.
    pub output: VecDeque<u8>,
    /// The session whose controlling terminal the slave is
    /// (`tty->ctrl.session`).
    pub session: Option<u64>,
    /// Whether the master file is open; once it closes, the slave is hung
    /// up for good.
    pub master: bool,
    /// How many slave files are open.
    pub slaves: u32,
    /// The master's `TTY_OTHER_CLOSED`: every slave file opened since the
    /// master was made has closed.
    pub other_closed: bool,
}

impl Pty {
    /// A pty as opening `/dev/ptmx` makes it: the master open, no slave
    /// file yet.
    pub fn new() -> Pty {
        Pty {
            input: VecDeque::new(),
            lines: VecDeque::new(),
            complete: 0,
            to_master: VecDeque::new(),
            output: VecDeque::new(),
            session: None,
            master: true,
            slaves: 0,
            other_closed: false,
        }
    }

    /// Whether the slave is hung up (its master closed).
    pub fn hung_up(&self) -> bool {
        !self.master
    }

    /// Whether no file refers to the pty any more.
    pub fn unused(&self) -> bool {
        !self.master && self.slaves == 0
    }

    /// A slave file opened (`pty_open`): the master hears of slaves again.
    pub fn open_slave(&mut self) {
        self.slaves += 1;
        self.other_closed = false;
    }

    /// The master's close (`pty_close`, then `tty_vhangup` of the slave):
    /// the slave is hung up for good, its buffers are flushed, and no
    /// session has it any more.
    pub fn close_master(&mut self) {
        self.master = false;
        self.session = None;
        for q in [
            &mut self.input,
            &mut self.lines,
            &mut self.to_master,
            &mut self.output,
        ] {
            q.clear();
        }
        self.complete = 0;
    }

    /// One slave file's close. Returns whether the master is to be told
    /// (`TTY_OTHER_CLOSED`): when it was the last slave file, unless the
    /// slave is hung up (`tty_io_error`).
    pub fn close_slave(&mut self) -> bool {
        self.slaves -= 1;
        let tell = self.slaves == 0 && !self.hung_up();
        self.other_closed |= tell;
        tell
    }

    /// A write on the master: the bytes wait in the slave's flip buffer
    /// for hop 1. Returns the bytes accepted.
    pub fn master_write(&mut self, data: &[u8]) -> usize {
        self.input.extend(data);
        data.len()
    }

    /// A write on the slave: the bytes, post-processed (ONLCR), wait in the
    /// master's flip buffer for hop 2. Returns the bytes accepted.
    pub fn slave_write(&mut self, data: &[u8]) -> usize {
        for &c in data {
            if c == b'\n' {
                self.to_master.extend(b"\r\n");
            } else {
                self.to_master.push_back(c);
            }
        }
        data.len()
    }

    /// Hop 1, the slave's `flush_to_ldisc`: the line discipline takes the
    /// pending input, assembles lines and echoes. Returns whether a line
    /// was completed (canonical mode wakes the readers only then).
    pub fn receive_input(&mut self) -> bool {
        let mut ended = false;
        for c in std::mem::take(&mut self.input) {
            match c {
                b'\n' | b'\r' => {
                    self.lines.push_back(b'\n');
                    self.complete = self.lines.len();
                    ended = true;
                    self.to_master.extend(b"\r\n");
                }
                b'\t' => {
                    self.lines.push_back(c);
                    self.to_master.push_back(c);
                }
                0..=0x1f | 0x7f => {
                    self.lines.push_back(c);
                    self.to_master.extend([b'^', c ^ 0x40]);
                }
                _ => {
                    self.lines.push_back(c);
                    self.to_master.push_back(c);
                }
            }
        }
        ended
    }

    /// Hop 2, the master's `flush_to_ldisc`: echo and slave output reach
    /// the master's read buffer. Returns whether there was any.
    pub fn flush_to_master(&mut self) -> bool {
        if self.to_master.is_empty() {
            return false;
        }
        self.output.append(&mut self.to_master);
        true
    }

    /// A read on the master without blocking. Like `n_tty_read`, a read
    /// that finds the read buffer empty first waits for hop 2: the caller
    /// runs [`Pty::flush_to_master`] first (and wakes the readers).
    ///
    /// Errors: `EIO` when nothing is left and every slave file closed,
    /// `EAGAIN` when nothing is left otherwise.
    pub fn master_read(&mut self, n: usize) -> Result<Vec<u8>, Errno> {
        if n == 0 {
            return Ok(Vec::new());
        }
        if self.output.is_empty() {
            return Err(if self.other_closed {
                Errno::EIO
            } else {
                Errno::EAGAIN
            });
        }
        let k = n.min(self.output.len());
        Ok(self.output.drain(..k).collect())
    }

    /// A canonical read on the slave without blocking: at most one line,
    /// or what is left of it. A hung-up slave reads end of file. The caller
    /// runs hop 1 first when no line is complete.
    ///
    /// Errors: `EAGAIN` when no line is complete.
    pub fn slave_read(&mut self, n: usize) -> Result<Vec<u8>, Errno> {
        if n == 0 || self.hung_up() {
            return Ok(Vec::new());
        }
        if self.complete == 0 {
            return Err(Errno::EAGAIN);
        }
        let line = self
            .lines
            .iter()
            .take(self.complete)
            .position(|&c| c == b'\n')
            .map_or(self.complete, |i| i + 1);
        let k = n.min(line);
        self.complete -= k;
        Ok(self.lines.drain(..k).collect())
    }
}

impl Default for Pty {
    fn default() -> Pty {
        Pty::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both_hops(p: &mut Pty) {
        p.receive_input();
        p.flush_to_master();
    }

    #[test]
    fn echo_with_onlcr() {
        let mut p = Pty::new();
        assert_eq!(p.master_read(10), Err(Errno::EAGAIN));
        assert_eq!(p.master_write(b"a\nb"), 3);
        both_hops(&mut p);
        assert_eq!(p.master_read(100).unwrap(), b"a\r\nb");
    }

    #[test]
    fn the_slave_reads_whole_lines_one_at_a_time() {
        let mut p = Pty::new();
        p.open_slave();
        p.master_write(b"ab");
        assert!(!p.receive_input(), "no line yet");
        assert_eq!(p.slave_read(10), Err(Errno::EAGAIN));
        p.master_write(b"c\rl2\nrest");
        assert!(p.receive_input());
        assert_eq!(p.slave_read(2).unwrap(), b"ab");
        assert_eq!(
            p.slave_read(100).unwrap(),
            b"c\n",
            "ICRNL, then the line ends"
        );
        assert_eq!(p.slave_read(100).unwrap(), b"l2\n");
        assert_eq!(p.slave_read(100), Err(Errno::EAGAIN), "`rest` is no line");
        p.flush_to_master();
        assert_eq!(p.master_read(100).unwrap(), b"abc\r\nl2\r\nrest");
    }

    #[test]
    fn slave_output_gets_onlcr_only() {
        let mut p = Pty::new();
        p.slave_write(b"a\tb\x01\r\n");
        p.flush_to_master();
        assert_eq!(p.master_read(100).unwrap(), b"a\tb\x01\r\r\n");
    }

    #[test]
    fn closing_sides() {
        let mut p = Pty::new();
        p.open_slave();
        p.open_slave();
        assert!(!p.close_slave(), "one slave file is left");
        assert!(p.close_slave(), "the last one tells the master");
        p.master_write(b"z");
        both_hops(&mut p);
        assert_eq!(p.master_read(10).unwrap(), b"z", "the buffer first");
        assert_eq!(p.master_read(10), Err(Errno::EIO));
        assert_eq!(p.master_read(0).unwrap(), b"");
        p.open_slave();
        assert_eq!(p.master_read(10), Err(Errno::EAGAIN), "a slave again");
        p.master_write(b"x\n");
        p.receive_input();
        p.close_master();
        assert!(p.hung_up() && !p.unused());
        assert_eq!(p.slave_read(10).unwrap(), b"", "a hung-up slave reads EOF");
        assert!(!p.close_slave(), "a hung-up slave tells no one");
        assert!(p.unused());
    }

    #[test]
    fn deferred_echo_takes_two_hops_and_a_read_waits_for_the_second() {
        let mut p = Pty::new();
        assert_eq!(p.master_write(b"ab"), 2);
        // Hop 1 has not run: nothing to read, even after waiting for hop 2.
        assert_eq!(p.master_read(10), Err(Errno::EAGAIN));
        p.receive_input();
        assert!(p.input.is_empty());
        // Hop 2 has not run either; a read waits for it.
        assert!(p.flush_to_master());
        assert_eq!(p.master_read(1).unwrap(), b"a");
        p.master_write(b"c");
        p.receive_input();
        // The read buffer is not empty, so the read does not wait for hop 2.
        assert_eq!(p.master_read(10).unwrap(), b"b");
        assert_eq!(p.master_read(10), Err(Errno::EAGAIN));
        assert!(p.flush_to_master());
        assert_eq!(p.master_read(10).unwrap(), b"c");
    }
}
