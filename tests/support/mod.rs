//! What the workspace-level tests share: the `fdlab` binary, temporary
//! directories that remove themselves, processes and how many cases a
//! property run makes. Each test binary includes it as `mod support;` (a
//! module in a folder is not a test target of its own).

// Each including test binary uses some of the helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A proptest runner for `n` cases from a fixed seed (the same cases every
/// run), with no failure file written into the tree.
pub fn runner(n: u32) -> proptest::test_runner::TestRunner {
    use proptest::test_runner::{Config, TestRng, TestRunner};
    let config = Config {
        cases: n,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::deterministic_rng(config.rng_algorithm);
    TestRunner::new_with_rng(config, rng)
}

/// The `fdlab` binary cargo built for the tests (also the helper binary of
/// the Linux backend).
pub fn fdlab_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_fdlab"))
}

/// `fdlab ARGS` in `dir` with `TMPDIR` there too: its exit code, standard
/// output and standard error.
pub fn fdlab_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(fdlab_bin())
        .args(args)
        .current_dir(dir)
        .env("TMPDIR", dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A path in the repository.
pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// `$FDLAB_CASES`, or `default`: how many cases a property test makes.
pub fn cases(default: u32) -> u32 {
    std::env::var("FDLAB_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Whether `pid` is still a process (not even a zombie).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

/// Helper processes of runs whose sandboxes live under `root`.
pub fn helpers_under(root: &Path) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
        if cmd.windows(8).any(|w| w == b"__helper") && cwd.starts_with(root) && alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// A fresh directory under the system's temporary directory, removed with
/// everything in it when dropped, also when a test fails and unwinds.
/// Tests run at once on threads of one process, so each gets its own.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("fdlab-test-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` to `name` in the directory; returns its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `cmd` with Ctrl-C's signal at its default action in the child: a test
/// runs wherever it is started, and a shell that starts a job in the
/// background starts it with `SIGINT` ignored, which the child would
/// inherit (and then shrug off the interrupt the test sends).
pub fn interruptible(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: runs in the forked child before exec; signal(2) is
    // async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        })
    }
}
