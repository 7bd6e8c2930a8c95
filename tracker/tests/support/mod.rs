//! What the tracker tests share: temporary directories that remove
//! themselves, counting this process's descriptors, and running a test
//! alone in a helper process.
//!
//! Each test binary of the crate includes it as `mod support;` (a module
//! in a folder is not a test target of its own); `tests/tracker.rs` checks
//! the helpers themselves, once.
//!
//! Why a helper process: cargo runs a binary's tests on threads that share
//! one descriptor table, so a count of `/proc/self/fd` in one test sees the
//! descriptors of every other test running at the time. A test that counts
//! re-executes its own binary with `--exact <name>` and an environment
//! variable that makes that one test run its body alone, and asserts that
//! the child passed.

// Each including test binary uses some of the helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The variable that names the test a helper process runs.
pub const ISOLATED: &str = "FDLAB_TRACKER_ISOLATED";

/// A fresh directory under the system's temporary directory, removed with
/// everything in it when dropped, on success or failure alike.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("fdlab-tracker-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The entries of the directory, sorted.
    pub fn entries(&self) -> Vec<String> {
        entries(&self.0)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The names in `dir`, sorted; empty if it does not exist.
pub fn entries(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// How many descriptors this process has open, not counting the one that
/// reads `/proc/self/fd`.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count() - 1
}

/// Whether this process is the helper running `name`.
pub fn in_helper(name: &str) -> bool {
    std::env::var(ISOLATED).as_deref() == Ok(name)
}

/// Runs `body` alone in a helper process: in the parent, re-executes this
/// test binary to run only the test `name` and asserts it passed; in that
/// helper, runs `body`. Returns the helper's stderr (empty in the helper).
pub fn isolated(name: &str, body: impl FnOnce()) -> String {
    if in_helper(name) {
        body();
        return String::new();
    }
    // current_exe is the test binary cargo built; it knows its path.
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(ISOLATED, name)
        // One malloc arena: a new thread's arena makes glibc open
        // /sys/devices/system/cpu/online for a moment, a descriptor that a
        // test counting its own, or under an exact budget, would see.
        .env("MALLOC_ARENA_MAX", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} in a helper process: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    stderr
}
