//! epoll instances: an interest list keyed by (descriptor number, file).
//!
//! A registration names the number it was added under *and* the file that
//! number named then (Linux `struct epoll_filefd`). Closing the number does not
//! remove it while the file lives on through another descriptor: it stays
//! under a number that may now be closed or name another file. Only the last
//! reference to the file going away removes it (`eventpoll_release`). A
//! registration holds no reference to its file.

use imbl::OrdMap;

use crate::ids::FileId;
use crate::{Events, Fd};

/// Linux `EP_MAX_NESTS`: how deep epoll sets may be nested.
pub const EP_MAX_NESTS: usize = 4;

/// Linux `path_limits`: how many wakeup paths of each length a file may
/// have, counted from the length 1 up (a file watched directly by an epoll
/// that nothing watches: any number). Longer chains of nested epolls could
/// turn one wakeup into a storm, so `EPOLL_CTL_ADD` refuses a link that
/// would pass a limit (`EINVAL`).
pub const PATH_LIMITS: [usize; EP_MAX_NESTS + 1] = [usize::MAX, 500, 100, 50, 10];

#[derive(Debug, Clone, Default)]
pub struct Epoll {
    pub interest: OrdMap<(Fd, FileId), Events>,
}

impl Epoll {
    /// The registered epoll files of this set (the edges of the nesting graph).
    pub fn nested(&self) -> impl Iterator<Item = FileId> + '_ {
        self.interest.keys().map(|&(_, f)| f)
    }
}
