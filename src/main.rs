//! The `fdlab` command, and the hidden `fdlab __helper` mode that runs
//! scenario processes for the Linux backend.
//!
//! The binary is `#![no_main]`: the helper mode must start before Rust's
//! runtime setup, which reopens descriptors 0, 1 and 2 on `/dev/null` when
//! they are closed (see `fdlab::backend::linux::helper`). Everything else
//! is the library's command line, `fdlab::cli`.

#![no_main]

use std::process::ExitCode;

/// The C entry point: `fdlab __helper ...` goes to the helper before any
/// runtime setup; everything else is the command line.
#[no_mangle]
pub extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__helper") {
        fdlab::backend::linux::helper::main(&args[2..]);
    }
    // SIGPIPE as Rust programs have it: a closed stdout is an error, not a
    // silent death.
    // SAFETY: installs SIG_IGN, which runs no code in this process.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let code = fdlab::cli::main();
    // ExitCode has no public numeric value; report() prints nothing.
    if code == ExitCode::SUCCESS {
        0
    } else if code == ExitCode::from(1) {
        1
    } else if code == ExitCode::from(130) {
        130
    } else {
        2
    }
}
