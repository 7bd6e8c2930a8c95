//! Flag words of the system calls, with Linux's (x86-64) values.
//!
//! The values are Linux's so that the real backend can pass them to the kernel
//! unchanged. Names are kept here, once, for the parser and the printers.

use std::fmt;

use serde::{Deserialize, Serialize};
use std::ops::{BitOr, BitOrAssign};

/// `open(2)` flags and the status flags of an open file (`F_GETFL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct OFlags(u32);

impl OFlags {
    pub const RDONLY: OFlags = OFlags(0);
    pub const WRONLY: OFlags = OFlags(0o1);
    pub const RDWR: OFlags = OFlags(0o2);
    /// The access-mode bits.
    pub const ACCMODE: OFlags = OFlags(0o3);
    pub const CREAT: OFlags = OFlags(0o100);
    pub const EXCL: OFlags = OFlags(0o200);
    pub const TRUNC: OFlags = OFlags(0o1000);
    pub const APPEND: OFlags = OFlags(0o2000);
    pub const NONBLOCK: OFlags = OFlags(0o4000);
    pub const DIRECTORY: OFlags = OFlags(0o200000);
    pub const CLOEXEC: OFlags = OFlags(0o2000000);

    /// The bits `F_SETFL` may change (Linux `SETFL_MASK`, restricted to the
    /// language's flags).
    pub const SETFL_MASK: OFlags = OFlags(0o2000 | 0o4000);
    /// The bits an open file keeps as its status (what `F_GETFL` shows): the
    /// creation flags (`O_CREAT`, `O_EXCL`, `O_TRUNC`, `O_CLOEXEC`,
    /// `O_DIRECTORY`) act once at open and are not kept.
    pub const STATUS_MASK: OFlags = OFlags(0o3 | 0o2000 | 0o4000);

    /// The flag word with these raw bits.
    pub const fn from_bits(bits: u32) -> OFlags {
        OFlags(bits)
    }

    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every bit of `other` is set (for the access mode, use
    /// [`OFlags::readable`] and [`OFlags::writable`]).
    pub const fn contains(self, other: OFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn intersects(self, other: OFlags) -> bool {
        self.0 & other.0 != 0
    }

    pub const fn without(self, other: OFlags) -> OFlags {
        OFlags(self.0 & !other.0)
    }

    pub const fn and(self, mask: OFlags) -> OFlags {
        OFlags(self.0 & mask.0)
    }

    /// The access mode (`O_RDONLY`, `O_WRONLY` or `O_RDWR`).
    pub const fn access(self) -> OFlags {
        OFlags(self.0 & 0o3)
    }

    /// Whether a file with these flags may be read (FREAD).
    pub const fn readable(self) -> bool {
        matches!(self.0 & 0o3, 0 | 2)
    }

    /// Whether a file with these flags may be written (FWRITE).
    pub const fn writable(self) -> bool {
        matches!(self.0 & 0o3, 1 | 2)
    }

    /// The status flags as `F_GETFL` prints them: the access mode first, then
    /// `O_APPEND`, then `O_NONBLOCK` (the contract's order); other bits are
    /// not shown.
    pub fn status_string(self) -> String {
        let mut s = String::from(match self.0 & 0o3 {
            0 => "O_RDONLY",
            1 => "O_WRONLY",
            _ => "O_RDWR",
        });
        if self.contains(OFlags::APPEND) {
            s.push_str("|O_APPEND");
        }
        if self.contains(OFlags::NONBLOCK) {
            s.push_str("|O_NONBLOCK");
        }
        s
    }

    /// The flag named `name`, for the parser.
    pub fn from_name(name: &str) -> Option<OFlags> {
        OPEN_FLAG_NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, f)| f)
    }
}

/// The `open(2)` flags of the language, by name.
pub const OPEN_FLAG_NAMES: &[(&str, OFlags)] = &[
    ("O_RDONLY", OFlags::RDONLY),
    ("O_WRONLY", OFlags::WRONLY),
    ("O_RDWR", OFlags::RDWR),
    ("O_CREAT", OFlags::CREAT),
    ("O_EXCL", OFlags::EXCL),
    ("O_TRUNC", OFlags::TRUNC),
    ("O_APPEND", OFlags::APPEND),
    ("O_CLOEXEC", OFlags::CLOEXEC),
    ("O_NONBLOCK", OFlags::NONBLOCK),
    ("O_DIRECTORY", OFlags::DIRECTORY),
];

impl BitOr for OFlags {
    type Output = OFlags;
    fn bitor(self, rhs: OFlags) -> OFlags {
        OFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for OFlags {
    fn bitor_assign(&mut self, rhs: OFlags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Display for OFlags {
    /// Every language flag that is set, access mode first (unlike
    /// [`OFlags::status_string`], which shows only status flags).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 & 0o3 {
            0 => "O_RDONLY",
            1 => "O_WRONLY",
            _ => "O_RDWR",
        })?;
        for &(name, flag) in &OPEN_FLAG_NAMES[3..] {
            if self.contains(flag) {
                write!(f, "|{name}")?;
            }
        }
        Ok(())
    }
}

/// The events of an epoll registration, or of a ready one.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub struct Events(u32);

/// The events the language names, in ascending bit order (strace's order,
/// and the order they print in).
const EVENT_NAMES: [(&str, Events); 8] = [
    ("EPOLLIN", Events::IN),
    ("EPOLLOUT", Events::OUT),
    ("EPOLLERR", Events::ERR),
    ("EPOLLHUP", Events::HUP),
    ("EPOLLRDHUP", Events::RDHUP),
    ("EPOLLEXCLUSIVE", Events::EXCLUSIVE),
    ("EPOLLONESHOT", Events::ONESHOT),
    ("EPOLLET", Events::ET),
];

impl Events {
    pub const IN: Events = Events(0x001);
    pub const OUT: Events = Events(0x004);
    pub const ERR: Events = Events(0x008);
    pub const HUP: Events = Events(0x010);
    pub const RDHUP: Events = Events(0x2000);
    pub const EXCLUSIVE: Events = Events(1 << 28);
    pub const ONESHOT: Events = Events(1 << 30);
    pub const ET: Events = Events(1 << 31);

    /// What a registration may carry together with `EPOLLEXCLUSIVE`
    /// (Linux `EPOLLEXCLUSIVE_OK_BITS`, less the bits the language cannot
    /// write): not `EPOLLRDHUP`, not `EPOLLONESHOT`.
    pub const EXCLUSIVE_OK: Events = Events(
        Events::IN.0
            | Events::OUT.0
            | Events::ERR.0
            | Events::HUP.0
            | Events::ET.0
            | Events::EXCLUSIVE.0,
    );

    pub const fn from_bits(bits: u32) -> Events {
        Events(bits)
    }

    pub const fn bits(self) -> u32 {
        self.0
    }

    pub const fn contains(self, other: Events) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn intersects(self, other: Events) -> bool {
        self.0 & other.0 != 0
    }

    pub const fn and(self, mask: Events) -> Events {
        Events(self.0 & mask.0)
    }

    pub const fn not(self) -> Events {
        Events(!self.0)
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// What epoll reports of ready events: the bits the language names
    /// (`EPOLLIN EPOLLOUT EPOLLERR EPOLLHUP EPOLLRDHUP`).
    pub const REPORTED: Events =
        Events(Events::IN.0 | Events::OUT.0 | Events::ERR.0 | Events::HUP.0 | Events::RDHUP.0);

    /// What a registration shows of its events: Linux adds
    /// `EPOLLERR|EPOLLHUP` at every `EPOLL_CTL_ADD` and `MOD`, so they say
    /// nothing and are not shown (one that `EPOLLONESHOT` disabled has lost
    /// them, and shows `EPOLLONESHOT` alone, as an armed one with no other
    /// events would); bits the language has no name for are dropped.
    pub const fn shown(self) -> Events {
        Events(self.0 & Events::NAMED.0 & !(Events::ERR.0 | Events::HUP.0))
    }

    const NAMED: Events = Events(
        Events::IN.0
            | Events::OUT.0
            | Events::ERR.0
            | Events::HUP.0
            | Events::RDHUP.0
            | Events::EXCLUSIVE.0
            | Events::ONESHOT.0
            | Events::ET.0,
    );

    pub fn from_name(name: &str) -> Option<Events> {
        EVENT_NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, e)| e)
    }
}

impl BitOr for Events {
    type Output = Events;
    fn bitor(self, rhs: Events) -> Events {
        Events(self.0 | rhs.0)
    }
}

impl fmt::Display for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = EVENT_NAMES
            .iter()
            .filter(|(_, e)| self.contains(*e))
            .map(|(n, _)| *n)
            .collect();
        if names.is_empty() {
            f.write_str("0")
        } else {
            f.write_str(&names.join("|"))
        }
    }
}

/// `Option<OFlags>` in JSON as `F_GETFL` prints them (`"O_RDWR|O_APPEND"`),
/// for `#[serde(with)]`.
pub mod status_text {
    use super::OFlags;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(f: &Option<OFlags>, s: S) -> Result<S::Ok, S::Error> {
        match f {
            Some(f) => s.serialize_str(&f.status_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OFlags>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let mut f = OFlags::RDONLY;
        for part in text.split('|') {
            f |= OFlags::from_name(part)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown flag `{part}`")))?;
        }
        Ok(Some(f))
    }
}

/// `Events` in JSON as the language writes them (`"EPOLLIN|EPOLLOUT"`), for
/// `#[serde(with)]`.
pub mod events_text {
    use super::Events;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(e: &Events, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(e)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Events, D::Error> {
        let text = String::deserialize(d)?;
        if text == "0" {
            return Ok(Events::default());
        }
        let mut e = Events::default();
        for part in text.split('|') {
            e = e | Events::from_name(part)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown event `{part}`")))?;
        }
        Ok(e)
    }
}

/// Linux's `FD_CLOEXEC`, the only descriptor flag.
pub const FD_CLOEXEC: i64 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_string_orders_access_append_nonblock() {
        let f = OFlags::NONBLOCK | OFlags::APPEND | OFlags::RDWR | OFlags::CREAT;
        assert_eq!(f.status_string(), "O_RDWR|O_APPEND|O_NONBLOCK");
        assert_eq!(OFlags::WRONLY.status_string(), "O_WRONLY");
        assert_eq!(f.to_string(), "O_RDWR|O_CREAT|O_APPEND|O_NONBLOCK");
    }

    #[test]
    fn access_modes() {
        assert!(OFlags::RDONLY.readable() && !OFlags::RDONLY.writable());
        assert!(!OFlags::WRONLY.readable() && OFlags::WRONLY.writable());
        assert!(OFlags::RDWR.readable() && OFlags::RDWR.writable());
    }

    #[test]
    fn events_print() {
        assert_eq!((Events::IN | Events::OUT).to_string(), "EPOLLIN|EPOLLOUT");
        assert_eq!(Events::from_bits(0x19).shown(), Events::IN);
        // Ascending bit order, as strace prints them.
        let all = Events::from_bits(0x8000_201d) | Events::ONESHOT | Events::EXCLUSIVE;
        assert_eq!(
            all.to_string(),
            "EPOLLIN|EPOLLOUT|EPOLLERR|EPOLLHUP|EPOLLRDHUP|EPOLLEXCLUSIVE|EPOLLONESHOT|EPOLLET"
        );
        assert_eq!(
            all.shown().to_string(),
            "EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLEXCLUSIVE|EPOLLONESHOT|EPOLLET"
        );
        for (name, e) in EVENT_NAMES {
            assert_eq!(Events::from_name(name), Some(e));
        }
    }
}
