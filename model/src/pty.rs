//! The master side of a pseudo-terminal whose slave is never opened (the
//! language has no way to open `/dev/pts/N`).
//!
//! What the master writes is input to the slave's line discipline, which
//! echoes it back to the master (ECHO is on by default) with output
//! post-processing: `\n` becomes `\r\n` (ONLCR), and `\r` is read as `\n`
//! (ICRNL) and echoed as `\r\n`. Other control characters are echoed as
//! `^X` (ECHOCTL). The model does not give control characters their special
//! meanings (erase, kill, interrupt, flow control); Linux does.
//!
//! On Linux the bytes take two hops through work queues, and each may
//! happen later than the write that started it:
//! 1. the master's write lands in the slave port's flip buffer, and the
//!    slave's `flush_to_ldisc` work hands it to the line discipline, which
//!    echoes (`input` to `echoed` here);
//! 2. the echo lands in the master port's flip buffer, and the master's
//!    `flush_to_ldisc` work moves it to the master's read buffer (`echoed`
//!    to `output`). `n_tty_read` on an empty read buffer waits for this
//!    work first (`tty_buffer_flush_work`), so a read never misses bytes
//!    that reached hop 2, but it can miss bytes still in hop 1.
//!
//! With deferred work ([`crate::World::set_deferred`]) a write fills
//! `input` and the hops are [`Pty::receive_input`] and [`Pty::flush_echo`];
//! otherwise a write makes both hops at once, which is one of the outcomes
//! Linux allows.

use std::collections::VecDeque;

use crate::errno::Errno;

#[derive(Debug, Clone, Default)]
pub struct Pty {
    /// Written on the master, not yet seen by the slave's line discipline.
    pub input: VecDeque<u8>,
    /// Echoed by the slave, not yet in the master's read buffer.
    pub echoed: VecDeque<u8>,
    /// The master's read buffer.
    pub output: VecDeque<u8>,
    /// The session whose controlling terminal the slave is
    /// (`tty->ctrl.session`).
    pub session: Option<u64>,
}

impl Pty {
    /// A write on the master: returns the bytes accepted. With `deferred`,
    /// the bytes wait in the slave's flip buffer; otherwise they are echoed
    /// into the master's read buffer at once.
    pub fn write(&mut self, data: &[u8], deferred: bool) -> usize {
        self.input.extend(data);
        if !deferred {
            self.receive_input();
            self.flush_echo();
        }
        data.len()
    }

    /// Hop 1, the slave's `flush_to_ldisc`: the line discipline takes the
    /// pending input and echoes it. Returns whether there was any.
    pub fn receive_input(&mut self) -> bool {
        if self.input.is_empty() {
            return false;
        }
        for c in std::mem::take(&mut self.input) {
            match c {
                b'\n' | b'\r' => self.echoed.extend(b"\r\n"),
                b'\t' => self.echoed.push_back(c),
                0..=0x1f | 0x7f => self.echoed.extend([b'^', c ^ 0x40]),
                _ => self.echoed.push_back(c),
            }
        }
        true
    }

    /// Hop 2, the master's `flush_to_ldisc`: the echo reaches the master's
    /// read buffer. Returns whether there was any.
    pub fn flush_echo(&mut self) -> bool {
        if self.echoed.is_empty() {
            return false;
        }
        self.output.append(&mut self.echoed);
        true
    }

    /// A read on the master without blocking. Like `n_tty_read`, a read
    /// that finds the read buffer empty first waits for hop 2: the caller
    /// runs [`Pty::flush_echo`] first (and wakes the readers).
    ///
    /// Errors: `EAGAIN` when nothing was echoed.
    pub fn read(&mut self, n: usize) -> Result<Vec<u8>, Errno> {
        if n == 0 {
            return Ok(Vec::new());
        }
        if self.output.is_empty() {
            return Err(Errno::EAGAIN);
        }
        let k = n.min(self.output.len());
        Ok(self.output.drain(..k).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_with_onlcr() {
        let mut p = Pty::default();
        assert_eq!(p.read(10), Err(Errno::EAGAIN));
        assert_eq!(p.write(b"a\nb", false), 3);
        assert_eq!(p.read(100).unwrap(), b"a\r\nb");
    }

    #[test]
    fn deferred_echo_takes_two_hops_and_a_read_waits_for_the_second() {
        let mut p = Pty::default();
        assert_eq!(p.write(b"ab", true), 2);
        // Hop 1 has not run: nothing to read, even after waiting for hop 2.
        assert_eq!(p.read(10), Err(Errno::EAGAIN));
        assert!(p.receive_input());
        assert!(!p.receive_input());
        // Hop 2 has not run either; a read waits for it.
        assert!(p.flush_echo());
        assert_eq!(p.read(1).unwrap(), b"a");
        p.write(b"c", true);
        p.receive_input();
        // The read buffer is not empty, so the read does not wait for hop 2.
        assert_eq!(p.read(10).unwrap(), b"b");
        assert_eq!(p.read(10), Err(Errno::EAGAIN));
        assert!(p.flush_echo());
        assert_eq!(p.read(10).unwrap(), b"c");
    }
}
