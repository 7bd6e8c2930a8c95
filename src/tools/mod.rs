//! The tools that drive the backends: the interpreter (`run`), lockstep
//! comparison of two backends (`compare`), the corpus checker (`check`),
//! the scenario generator (`gen`) and the differential fuzzer (`fuzz`).
//! They return values; the render floor prints them.

pub mod bench;
pub mod check;
pub mod compare;
pub mod dump;
pub mod error;
pub mod exercise;
pub mod fuzz;
pub mod gen;
pub mod image;
pub mod inspect;
pub mod restore;
pub mod run;

pub use error::Error;
