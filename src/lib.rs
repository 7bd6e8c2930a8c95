//! # fdlab: how operating systems keep file descriptors
//!
//! The library behind the `fdlab` command, in floors; a module imports only
//! from its own floor or those below (`tests/architecture.rs` checks it):
//!
//! 1. [`lang`]: the `.fds` scenario language.
//! 2. [`backend`]: what runs a scenario: the model of the BSD descriptor
//!    layer (`fdlab-model`), and real Linux processes, observed from `/proc`
//!    and `kcmp(2)`, in one room ([`backend::linux`]).
//! 3. [`tools`]: what drives the backends: the interpreter, the lockstep
//!    comparison, the corpus checker, the generator and the fuzzer.
//! 4. [`render`]: everything printed, as text or JSON.
//! 5. [`cli`]: the command line.
//!
//! ```
//! use fdlab::{backend::ModelBackend, lang::parse, tools::run::run};
//!
//! let s = parse("demo.fds", "spawn p1\np1: pipe = 0 1\np1: dup 0 = 2\nexpect p1:0 same p1:2\n").unwrap();
//! let report = run(&s, &mut ModelBackend::new(), false).unwrap();
//! assert!(report.passed());
//! ```

pub mod backend;
pub mod cli;
pub mod lang;
pub mod render;
pub mod tools;
