//! Every backend there is, by name: what `fdlab check` runs a corpus on,
//! and what `--backend NAME` makes.

use super::api::{Backend, BackendError};
use super::linux::backend::{helper_path, LinuxBackend};
use super::model::ModelBackend;

/// Makes a fresh backend, or says why it cannot.
pub type MakeBackend = fn() -> Result<Box<dyn Backend>, BackendError>;

fn model() -> Result<Box<dyn Backend>, BackendError> {
    Ok(Box::new(ModelBackend::new()))
}

fn linux() -> Result<Box<dyn Backend>, BackendError> {
    Ok(Box::new(LinuxBackend::new(&helper_path())?))
}

/// Every backend there is, by name, in the order `fdlab check` shows them.
pub const ALL: &[(&str, MakeBackend)] = &[("model", model), ("linux", linux)];

/// A fresh backend called `name`.
///
/// Errors: no backend has that name, or it cannot start.
pub fn by_name(name: &str) -> Result<Box<dyn Backend>, BackendError> {
    match ALL.iter().find(|(n, _)| *n == name) {
        Some((_, make)) => make(),
        None => Err(BackendError::UnknownBackend(name.to_string())),
    }
}
