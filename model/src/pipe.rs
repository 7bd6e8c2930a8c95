//! Pipes: a ring of up to 16 page buffers between a read end and a write end.
//!
//! Linux counts a pipe's capacity in pages, not bytes (`pipe->max_usage` = 16
//! slots of 4 KiB): a write merges into the last page only when it fits there
//! whole, and a page is freed only when it is read empty. So after filling a
//! pipe with one-byte writes, reading one byte does not make room for the next
//! write; reading a whole page does. The model keeps the same pages.

use std::collections::VecDeque;

use crate::errno::Errno;

/// Which end of a pipe a file is; the topology writes `read` or `write`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PipeEnd {
    Read,
    Write,
}

impl PipeEnd {
    pub fn name(self) -> &'static str {
        match self {
            PipeEnd::Read => "read",
            PipeEnd::Write => "write",
        }
    }
}

impl std::fmt::Display for PipeEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

const PAGE: usize = 4096;
/// Pipe buffers (pages) per pipe: Linux's default `PIPE_DEF_BUFFERS`.
pub const SLOTS: usize = 16;

/// Bytes at `offset..offset + data.len()` of one page.
#[derive(Debug, Clone)]
struct PipeBuf {
    offset: usize,
    data: Vec<u8>,
}

/// A pipe. `reader`/`writer` say whether the end's open file still exists
/// (each end has exactly one open file; `dup` and `fork` share it).
#[derive(Debug, Clone)]
pub struct Pipe {
    bufs: VecDeque<PipeBuf>,
    pub reader: bool,
    pub writer: bool,
}

impl Default for Pipe {
    fn default() -> Self {
        Pipe {
            bufs: VecDeque::new(),
            reader: true,
            writer: true,
        }
    }
}

impl Pipe {
    /// The bytes waiting to be read, in order (without reading them).
    pub fn contents(&self) -> Vec<u8> {
        self.bufs
            .iter()
            .flat_map(|b| b.data.iter().copied())
            .collect()
    }

    /// Bytes waiting to be read.
    pub fn len(&self) -> usize {
        self.bufs.iter().map(|b| b.data.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// Every page slot is taken (`pipe_full`): no write fits, however
    /// small, and the write end does not poll writable.
    pub fn is_full(&self) -> bool {
        self.bufs.len() >= SLOTS
    }

    /// `pipe_read` without blocking.
    ///
    /// Errors: `EAGAIN` when empty while a writer exists.
    pub fn read(&mut self, n: usize) -> Result<Vec<u8>, Errno> {
        if n == 0 {
            return Ok(Vec::new());
        }
        if self.bufs.is_empty() {
            return if self.writer {
                Err(Errno::EAGAIN)
            } else {
                Ok(Vec::new())
            };
        }
        let mut out = Vec::new();
        while out.len() < n {
            let Some(buf) = self.bufs.front_mut() else {
                break;
            };
            let k = (n - out.len()).min(buf.data.len());
            out.extend(buf.data.drain(..k));
            buf.offset += k;
            if buf.data.is_empty() {
                self.bufs.pop_front();
            }
        }
        Ok(out)
    }

    /// `pipe_write` without blocking: returns how many bytes went in.
    ///
    /// Errors: `EPIPE` when no reader exists (the caller does not raise
    /// SIGPIPE: the language ignores it); `EAGAIN` when nothing fits.
    pub fn write(&mut self, data: &[u8]) -> Result<usize, Errno> {
        // "Null write succeeds", even with no reader.
        if data.is_empty() {
            return Ok(0);
        }
        if !self.reader {
            return Err(Errno::EPIPE);
        }
        let mut done = 0;
        // The part that does not fill whole pages merges into the last page,
        // if it fits there whole (Linux merges `total_len % PAGE_SIZE` bytes).
        let chars = data.len() % PAGE;
        if chars != 0 {
            if let Some(last) = self.bufs.back_mut() {
                if last.offset + last.data.len() + chars <= PAGE {
                    last.data.extend_from_slice(&data[..chars]);
                    done = chars;
                }
            }
        }
        while done < data.len() {
            if self.bufs.len() == SLOTS {
                break;
            }
            let k = (data.len() - done).min(PAGE);
            self.bufs.push_back(PipeBuf {
                offset: 0,
                data: data[done..done + k].to_vec(),
            });
            done += k;
        }
        if done == 0 {
            Err(Errno::EAGAIN)
        } else {
            Ok(done)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_sixteen_pages() {
        let mut p = Pipe::default();
        let mut total = 0;
        while p.write(b"x").is_ok() {
            total += 1;
        }
        assert_eq!(total, 65536);
        assert_eq!(p.read(1).unwrap(), b"x");
        assert_eq!(
            p.write(b"y"),
            Err(Errno::EAGAIN),
            "one byte read frees no page"
        );
        p.read(4095).unwrap();
        assert_eq!(p.write(b"y"), Ok(1));
    }

    #[test]
    fn large_write_is_partial() {
        let mut p = Pipe::default();
        assert_eq!(p.write(&vec![1; 70000]), Ok(65536));
        assert_eq!(p.write(&[1; 100]), Err(Errno::EAGAIN));
    }

    #[test]
    fn eof_and_epipe() {
        let mut p = Pipe::default();
        assert_eq!(p.read(5), Err(Errno::EAGAIN));
        assert_eq!(p.read(0), Ok(vec![]));
        p.write(b"hi").unwrap();
        p.writer = false;
        assert_eq!(p.read(5).unwrap(), b"hi");
        assert_eq!(p.read(5).unwrap(), b"");
        p.reader = false;
        assert_eq!(p.write(b"x"), Err(Errno::EPIPE));
        assert_eq!(p.write(b""), Ok(0));
    }
}
