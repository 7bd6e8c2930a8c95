//! Bugs planted for the tests to catch, in one place: in the model's own
//! tests, and with the `mutants` feature in other crates' (the fuzzer's
//! planted collector), never in a build without it.
//!
//! Each is carried by the table it breaks, set when the table is made (a
//! [`crate::mt::Filedesc`] field; a world plants it in every table it makes
//! with `World::plant`), never by a global switch, so that tests running in
//! parallel do not see each other's bugs.

/// Which bug a table carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mutant {
    /// The table as written.
    #[default]
    None,
    /// `fd_getfile` takes its count with a plain `fetch_add` instead of
    /// `inc_not_zero`, so it can bring back a file whose count already
    /// reached zero (and whose closef work ran).
    FrefAfterZero,
    /// `fd_getfile` drops its count before it returns: the guard it hands
    /// out protects the memory but not the file (FRELE too early).
    FreleEarly,
    /// `falloc` publishes the larval file at once, so another thread's
    /// `fd_getfile` can see it before `fdinsert`.
    PublishLarval,
    /// An install into a block names the cell before it fills it, so a
    /// reader can find the cell named and empty.
    NameBeforeFill,
    /// Replacing a full block first unpublishes the old one (to drop its
    /// stale name of the old file), so a reader that still has the old
    /// block finds the slot free in the middle of `dup2`.
    UnpublishOnReplace,
    /// Closing a slot that a copied table (fork's, a snapshot's) has not
    /// written since the copy leaves it to the copy's base, which still
    /// names the file: the closed number keeps finding it.
    CloseCopiedInPlace,
    /// The world's `dup` forgets the reference its new slot must hold (the
    /// state-machine test of the world must catch it).
    DupForgetsRef,
    /// The unix collector marks only what tables hold, not what is in
    /// flight in the queues of sockets they hold: it frees files that a
    /// process can still receive. Comparison with Linux alone cannot catch
    /// it (the collector "has not run yet" explains every answer); the
    /// reachability invariant and the settle point must.
    GcOverEager,
    /// `exec` closes the close-on-exec descriptors without first giving
    /// the process a private table: a process sharing the table loses them.
    ExecKeepsShared,
}
