//! A helper's channel reaches it open even when the runner's end of the
//! socket pair already sits at the number the channel must have (a low
//! floor, in a runner with many descriptors): the nursery gets it as
//! standard input and moves it to the floor itself, which must not depend
//! on the number it had in the runner.
//!
//! One test in a file of its own: it counts on no other thread opening a
//! descriptor while it arranges the numbers.

use std::path::Path;

use fdlab::backend::{Backend, LinuxBackend};
use fdlab::lang::parse;
use fdlab::tools::run::run;

#[test]
fn a_channel_already_at_the_floor_reaches_the_helper() {
    // The lowest free number now: the socket pair will take it and the
    // next one, and the helper's end is the second.
    let probe = std::fs::File::open("/dev/null").unwrap();
    let lowest = std::os::fd::AsRawFd::as_raw_fd(&probe);
    drop(probe);
    let floor = u32::try_from(lowest + 1).unwrap();
    let mut l = LinuxBackend::with_floor(Path::new(env!("CARGO_BIN_EXE_fdlab")), floor)
        .expect("the nursery starts");
    let s = parse("f.fds", "spawn p\np: pipe = 0 1\n").unwrap();
    let r = run(&s, &mut l as &mut dyn Backend, false).expect("the helper runs the scenario");
    assert!(r.failures.is_empty(), "{:?}", r.failures);
}
