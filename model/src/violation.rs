//! A broken invariant, as every checker in the project reports it: the
//! model's, the concurrent table's, the fd tracker's and its model's.
//!
//! This is the model crate's lowest floor: it imports nothing, so any
//! checker can name it.

use std::fmt;

/// A broken invariant: which one, and the values that broke it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

impl std::error::Error for Violation {}

/// The failure of `invariant`, with the values in `detail`.
pub fn fail(invariant: &'static str, detail: String) -> Result<(), Violation> {
    Err(Violation { invariant, detail })
}
