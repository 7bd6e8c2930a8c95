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
//! Linux echoes from a work queue, so an immediate read may still find
//! nothing; the model echoes at once.

use std::collections::VecDeque;

use crate::errno::Errno;

#[derive(Debug, Clone, Default)]
pub struct Pty {
    /// Bytes the slave side has output (the echo), waiting on the master.
    pub output: VecDeque<u8>,
}

impl Pty {
    /// A write on the master: returns the bytes accepted.
    pub fn write(&mut self, data: &[u8]) -> usize {
        for &c in data {
            match c {
                b'\n' | b'\r' => self.output.extend(b"\r\n"),
                b'\t' => self.output.push_back(c),
                0..=0x1f | 0x7f => self.output.extend([b'^', c ^ 0x40]),
                _ => self.output.push_back(c),
            }
        }
        data.len()
    }

    /// A read on the master without blocking.
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
        assert_eq!(p.write(b"a\nb"), 3);
        assert_eq!(p.read(100).unwrap(), b"a\r\nb");
    }
}
