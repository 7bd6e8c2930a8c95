//! Descriptor numbers as a type.
//!
//! Raw integers exist only at the system-call edge (a scenario may pass `-1`);
//! everything below `sys` speaks [`Fd`], which is never negative.

use std::fmt;

/// A descriptor number: an index into a process's descriptor table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fd(u32);

impl Fd {
    /// The descriptor with number `n`.
    pub const fn new(n: u32) -> Fd {
        Fd(n)
    }

    /// The descriptor a raw system-call argument names; `None` for a negative
    /// number (which every call rejects with `EBADF`).
    pub fn from_raw(raw: i32) -> Option<Fd> {
        u32::try_from(raw).ok().map(Fd)
    }

    /// The number.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The number as a slot index.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for Fd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
