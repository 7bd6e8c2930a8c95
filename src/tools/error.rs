//! What the tools can fail with, other than a backend's own errors.

use crate::backend::api::BackendError;
use crate::lang::ScenarioError;

/// What the library's operations can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("backend: {0}")]
    Backend(#[from] BackendError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
