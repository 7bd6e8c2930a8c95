//! The `.fds` scenario language (contract: `shared/spec/fds-language.md`,
//! reference: the book's "The scenario language" chapter).
//!
//! [`parse`] turns a file into a [`Scenario`], checking as it goes what the
//! contract calls validation: process names must be live, descriptor numbers
//! at most 999, paths inside the sandbox. The first problem stops it with a
//! [`ScenarioError`] naming file, line and column; nothing runs.

mod lexer;
mod parser;
pub mod print;
pub mod text;

use fdlab_model::{Call, Errno, OFlags};

pub use parser::parse;

/// Where something is in a scenario file (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// A scenario that failed to parse or validate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct ScenarioError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// A parsed, validated scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// The name it was read under, for messages.
    pub file: String,
    pub stmts: Vec<Stmt>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stmt {
    pub line: usize,
    pub kind: StmtKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StmtKind {
    Spawn {
        name: String,
        stdio: bool,
    },
    Call {
        proc: String,
        call: Call,
        expected: Option<Expected>,
    },
    Expect(Expectation),
}

/// The `= RESULT` of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    Ints(Vec<i64>),
    Errno(Errno),
    Text(Vec<u8>),
    Flags(OFlags),
    Ok,
}

/// An `expect` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expectation {
    /// `expect P:FD same Q:FD2` (`same == false`: `differs`).
    File {
        a: (String, i32),
        b: (String, i32),
        same: bool,
    },
    /// `expect P shares Q` (`shares == false`: `apart`).
    Table { a: String, b: String, shares: bool },
    /// `expect P fds N...`
    Fds { proc: String, fds: Vec<i32> },
    /// `expect P:EPFD watches Q:FD [as N]`
    Watches {
        ep: (String, i32),
        target: (String, i32),
        as_fd: i32,
    },
}
