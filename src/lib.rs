//! # fdlab: how operating systems keep file descriptors
//!
//! The library behind the `fdlab` command: the `.fds` scenario language
//! ([`lang`]), backends that run scenarios ([`backend`]: the model of the BSD
//! descriptor layer from `fdlab-model`), the interpreter and its reports
//! ([`run`]) and the corpus checker ([`check`]).
//!
//! ```
//! use fdlab::{backend::ModelBackend, lang::parse, run::run};
//!
//! let s = parse("demo.fds", "spawn p1\np1: pipe = 0 1\np1: dup 0 = 2\nexpect p1:0 same p1:2\n").unwrap();
//! let report = run(&s, &mut ModelBackend::new(), false).unwrap();
//! assert!(report.passed());
//! ```

pub mod backend;
pub mod check;
pub mod compare;
pub mod fuzz;
pub mod gen;
pub mod lang;
pub mod linux;
pub mod run;

/// What the library's operations can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Scenario(#[from] lang::ScenarioError),
    #[error("backend: {0}")]
    Backend(#[from] backend::BackendError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
