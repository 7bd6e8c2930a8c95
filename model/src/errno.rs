//! The error numbers that the model's system calls return.
//!
//! The values are Linux's (x86-64), because Linux is the reference the model is
//! compared against: the real backend maps a raw `errno` to this enum with
//! [`Errno::from_raw`], and a scenario names them with [`Errno::from_name`].

use std::fmt;

macro_rules! errnos {
    ($($name:ident = $val:expr, $text:expr;)*) => {
        /// A system-call failure, named as in `<errno.h>`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[allow(clippy::upper_case_acronyms)]
        pub enum Errno {
            $(#[doc = $text] $name,)*
        }

        impl Errno {
            /// Every errno the model knows, in numeric order.
            pub const ALL: &'static [Errno] = &[$(Errno::$name,)*];

            /// The symbolic name, e.g. `"EBADF"`.
            pub fn name(self) -> &'static str {
                match self { $(Errno::$name => stringify!($name),)* }
            }

            /// Linux's number for it.
            pub fn raw(self) -> i32 {
                match self { $(Errno::$name => $val,)* }
            }

            /// What `strerror` says, shortened.
            pub fn description(self) -> &'static str {
                match self { $(Errno::$name => $text,)* }
            }
        }
    };
}

errnos! {
    EPERM = 1, "operation not permitted";
    ENOENT = 2, "no such file or directory";
    EIO = 5, "input/output error";
    ENXIO = 6, "no such device or address";
    EBADF = 9, "bad file descriptor";
    EAGAIN = 11, "resource temporarily unavailable";
    ENOMEM = 12, "cannot allocate memory";
    EACCES = 13, "permission denied";
    EBUSY = 16, "device or resource busy";
    EEXIST = 17, "file exists";
    ENOTDIR = 20, "not a directory";
    EISDIR = 21, "is a directory";
    EINVAL = 22, "invalid argument";
    ENFILE = 23, "too many open files in system";
    EMFILE = 24, "too many open files";
    ENOTTY = 25, "inappropriate ioctl for device";
    EFBIG = 27, "file too large";
    ENOSPC = 28, "no space left on device";
    ESPIPE = 29, "illegal seek";
    EPIPE = 32, "broken pipe";
    ENAMETOOLONG = 36, "file name too long";
    ELOOP = 40, "too many levels of nesting";
    EOVERFLOW = 75, "value too large for defined data type";
    ENOTSOCK = 88, "socket operation on non-socket";
    EMSGSIZE = 90, "message too long";
    EPROTOTYPE = 91, "protocol wrong type for socket";
    EOPNOTSUPP = 95, "operation not supported";
    EADDRINUSE = 98, "address already in use";
    ECONNRESET = 104, "connection reset by peer";
    EISCONN = 106, "transport endpoint is already connected";
    ENOTCONN = 107, "transport endpoint is not connected";
    ETOOMANYREFS = 109, "too many references";
    ECONNREFUSED = 111, "connection refused";
}

impl Errno {
    /// The errno with this symbolic name.
    pub fn from_name(name: &str) -> Option<Errno> {
        Errno::ALL.iter().copied().find(|e| e.name() == name)
    }

    /// The errno with this Linux number, if the model knows it.
    pub fn from_raw(raw: i32) -> Option<Errno> {
        Errno::ALL.iter().copied().find(|e| e.raw() == raw)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for Errno {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_round_trip() {
        for &e in Errno::ALL {
            assert_eq!(Errno::from_name(e.name()), Some(e));
            assert_eq!(Errno::from_raw(e.raw()), Some(e));
        }
        assert_eq!(Errno::from_name("EWHAT"), None);
        assert_eq!(Errno::EBADF.raw(), 9);
    }
}
