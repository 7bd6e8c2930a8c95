//! Tests of the crate as a whole, beside the unit tests of each module.

mod state_machine;
