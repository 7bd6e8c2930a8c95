//! The `fdlab` binary as a user meets it: exit codes, one-line errors, JSON.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::TempDir;

fn fdlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fdlab"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run fdlab")
}

/// A scenario file in a directory of its own, removed with it on drop.
struct TmpScenario {
    _dir: TempDir,
    path: PathBuf,
}

impl std::ops::Deref for TmpScenario {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

fn tmp_scenario(name: &str, src: &str) -> TmpScenario {
    let dir = TempDir::new("cli");
    let path = dir.file(name, src);
    TmpScenario { _dir: dir, path }
}

#[test]
fn run_passes_with_exit_0_and_prints_strace_style() {
    let p = tmp_scenario(
        "ok.fds",
        "spawn p1\np1: pipe = 0 1\np1: dup2 0 10 = 10\np1: close 7 = EBADF\n\
         p1: fork c\np1: clone_files t\n",
    );
    let out = fdlab(&["run", p.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("p1: dup2(0, 10) = 10"), "{text}");
    assert!(
        text.contains("p1: close(7) = -1 EBADF (bad file descriptor)"),
        "{text}"
    );
    assert!(text.contains("file 0: pipe read end of object 0"), "{text}");
    // The parent's line says who the child is: `= 0` alone would read as
    // the child's own return.
    assert!(text.contains("p1: fork(c) = 0 (child c)\n"), "{text}");
    assert!(
        text.contains("p1: clone_files(t) = 0 (child t, sharing the table)\n"),
        "{text}"
    );
}

#[test]
fn a_failed_expectation_exits_1_and_says_what_was_seen() {
    let p = tmp_scenario(
        "bad.fds",
        "spawn p1\np1: pipe = 0 1\np1: dup 0 = 5\nexpect p1 fds 0 1\n",
    );
    let out = fdlab(&["run", p.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.contains("line 3: p1: dup(0): expected = 5, got = 2"),
        "{text}"
    );
    assert!(
        text.contains("line 4: expect p1 fds 0 1: open: 0 1 2"),
        "{text}"
    );
}

#[test]
fn an_invalid_scenario_exits_2_with_one_line_naming_the_place() {
    let p = tmp_scenario("invalid.fds", "spawn p1\np1: close 3\np2: close 3\n");
    let out = fdlab(&["run", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing runs");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.ends_with(
            "invalid.fds:3:1: unknown process `p2` (spawn it, or fork it from another)\n"
        ),
        "{err}"
    );
}

#[test]
fn a_missing_file_exits_2() {
    let out = fdlab(&["run", "/nonexistent/x.fds"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err,
        "/nonexistent/x.fds:1:1: cannot read it: no such file\n"
    );
}

/// Bad input is one line `file:line:col: message` and exit 2 in `run` and
/// in `check` alike (which checks the other files all the same, and names
/// the bad one once): a directory, text that is not UTF-8, an empty
/// scenario.
#[test]
fn bad_input_is_one_positioned_line_in_run_and_check() {
    let dir = std::env::temp_dir().join(format!("fdlab-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("bin.fds");
    std::fs::write(&bin, b"spawn p\np: open \"a\xff\" O_RDONLY\n").unwrap();
    let empty = dir.join("empty.fds");
    std::fs::write(&empty, "# nothing\n\n").unwrap();
    let cases = [
        (bin.clone(), ":2:11: not UTF-8 text (byte 0xff)"),
        (empty.clone(), ":1:1: the scenario is empty"),
        (dir.clone(), ":1:1: cannot read it: it is a directory"),
    ];
    for (path, want) in &cases {
        let p = path.to_str().unwrap();
        let out = fdlab(&["run", p]);
        assert_eq!(out.status.code(), Some(2), "{p}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with(&format!("{p}{want}")), "{err}");
    }
    let good =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/dup-shares-offset.fds");
    let out = fdlab(&[
        "check",
        bin.to_str().unwrap(),
        good.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        rows[0]["invalid"].as_str().unwrap().contains("not UTF-8"),
        "{rows}"
    );
    assert_eq!(rows[0]["results"], serde_json::json!([]));
    assert_eq!(rows[1]["results"][0]["backend"], "model");
    assert_eq!(rows[1]["results"][0]["verdict"], "pass");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Options that cannot apply are refused, not ignored.
#[test]
fn options_that_cannot_apply_are_refused() {
    let f =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/dup-shares-offset.fds");
    let f = f.to_str().unwrap();
    for args in [
        vec!["run", f, "--trace", "--backend", "linux"],
        vec!["run", f, "--every-step"],
        vec!["run", f, "--html", "-", "--backend", "both"],
    ] {
        let out = fdlab(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn json_follows_the_contract() {
    let p = tmp_scenario(
        "json.fds",
        "spawn p1\np1: open notes.txt O_RDWR|O_CREAT = 0\np1: dup 0 = 1\np1: read 0 4 = \"\"\n",
    );
    let out = fdlab(&["run", p.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["backend"], "model");
    assert_eq!(v["steps"][1]["call"], "dup");
    assert_eq!(v["steps"][1]["args"], serde_json::json!(["0"]));
    assert_eq!(v["steps"][1]["result"], serde_json::json!({"ok": [1]}));
    assert_eq!(v["steps"][1]["passed"], true);
    assert_eq!(v["steps"][2]["result"], serde_json::json!({"ok": ""}));
    assert_eq!(
        v["topology"]["files"][0],
        serde_json::json!({"id": 0, "kind": "regular", "path": "notes.txt", "offset": 0, "flags": "O_RDWR", "object": 0})
    );
    assert_eq!(v["topology"]["tables"], serde_json::json!([["p1"]]));
    assert_eq!(v["failures"], serde_json::json!([]));
}

#[test]
fn trace_shows_file9_calls_with_counts() {
    let p = tmp_scenario("trace.fds", "spawn p1\np1: pipe = 0 1\np1: close 0 = 0\n");
    let out = fdlab(&["run", p.to_str().unwrap(), "--trace"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("fd_getfile(p1, 0) -> file#0 count 1 -> 2"),
        "{text}"
    );
    assert!(text.contains("closef(file#0) count 2 -> 1"), "{text}");
    assert!(text.contains("fdrop(file#0): freed"), "{text}");
    // The read end (file#0) is closed; the write end, file#1 in the trace,
    // is the topology's file 0, and the output says so.
    assert!(text.contains("file 0: pipe write end"), "{text}");
    assert!(text.contains("(in the trace: file 0 is file#1)"), "{text}");
}

#[test]
fn check_runs_the_corpus() {
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .is_dir());
    let out = fdlab(&["check"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.starts_with("scenario"), "{text}");
    assert!(text.contains(" passed, 0 failed"), "{text}");
}

#[test]
fn check_reports_a_failing_scenario_as_a_row() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/failing");
    let out = fdlab(&["check", dir.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 4);
    for row in rows.as_array().unwrap() {
        // Each fixture fails at a line on both backends, and they agree.
        for r in row["results"].as_array().unwrap() {
            assert_eq!(r["verdict"], "fail", "{row}");
            assert!(r["line"].as_u64().unwrap() > 0, "{row}");
        }
        assert_eq!(row["agree"], true, "{row}");
    }
}

/// An expectation that holds only for some timings of the kernel's later
/// work fails on the model, which follows every timing, even on a run where
/// Linux happened to meet it.
#[test]
fn check_fails_an_expectation_that_depends_on_timing() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/timing");
    let out = fdlab(&["check", dir.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let model = &rows[0]["results"][0];
    assert_eq!(model["backend"], "model", "{rows}");
    assert_eq!(model["verdict"], "fail", "{rows}");
    assert_eq!(model["line"], 8, "{rows}");
    let message = model["message"].as_str().unwrap();
    assert!(message.contains("depends on timing"), "{message}");
}

/// Ctrl-C stops a long fuzzing run where it is, and it still says what ran.
#[test]
fn an_interrupted_fuzz_run_prints_its_summary() {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_fdlab"))
        .args([
            "fuzz",
            "--cases",
            "100000",
            "--seed",
            "5",
            "--out",
            "/dev/null",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    // What a terminal's Ctrl-C sends.
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(130), "{text}");
    assert!(
        text.contains("interrupted: model and linux agree on the"),
        "{text}"
    );
    // Nothing left behind: no sandbox of that run, no helper serving one.
    let prefix = format!("fdlab-run-{pid}-");
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "sandboxes left: {left:?}");
    let helpers = std::process::Command::new("pgrep")
        .args(["-f", &prefix])
        .output()
        .unwrap();
    assert!(helpers.stdout.is_empty(), "helpers left: {:?}", helpers);
}

/// `fdlab language` lists every call of the registry.
#[test]
fn language_lists_every_call() {
    let out = fdlab(&["language"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for c in fdlab_model::call::CALLS {
        assert!(
            text.contains(&format!("\n  {}", c.synopsis())),
            "{}: {text}",
            c.name
        );
    }
    assert!(text.contains("expect P shares Q"), "{text}");
}

/// `--every-step` shows the topology under each call that changed it.
#[test]
fn every_step_shows_the_topology_after_each_change() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/fork-exec-redirect.fds");
    let out = fdlab(&[
        "run",
        f.to_str().unwrap(),
        "--backend",
        "both",
        "--every-step",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let under_fork = lines
        .iter()
        .position(|l| l.starts_with("sh: fork(cmd)"))
        .expect("the fork line");
    assert_eq!(lines[under_fork + 1], "        | topology:", "{text}");
    // fcntl F_GETFD changes nothing: no topology under it.
    let getfd = lines
        .iter()
        .position(|l| l.contains("F_GETFD"))
        .expect("the F_GETFD line");
    assert!(!lines[getfd + 1].starts_with("        |"), "{text}");
}

/// The page `fdlab run FILE --backend BACKEND --html -` writes (after the
/// report, which goes to standard output first).
fn html_page(file: &Path, backend: &str) -> String {
    let out = fdlab(&[
        "run",
        file.to_str().unwrap(),
        "--backend",
        backend,
        "--html",
        "-",
    ]);
    assert_eq!(out.status.code(), Some(0), "{backend}");
    let page = String::from_utf8(out.stdout).unwrap();
    page[page.find("<!DOCTYPE").expect("the page")..].to_string()
}

/// `--html` writes one page with a step per statement that is not an
/// expectation: the statement and the expectations after it, their lines
/// marked in the source, the picture of the state after it, on the model
/// and on Linux alike.
#[test]
fn html_steps_through_the_run() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/epoll-closed-number.fds");
    let src = std::fs::read_to_string(&f).unwrap();
    let statements = src
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .count();
    let expects = src.lines().filter(|l| l.starts_with("expect ")).count();
    let mut pages = Vec::new();
    for backend in ["model", "linux"] {
        let page = html_page(&f, backend);
        assert_eq!(
            page.matches("<div class=\"step\"").count(),
            statements - expects
        );
        assert_eq!(page.matches("<svg ").count(), statements - expects);
        // Each picture has its own arrowhead.
        assert!(page.contains("id=\"head-0\"") && page.contains("url(#head-3)"));
        // The close of line 11 and the expectation of line 12, checked
        // on the state after it, make one step.
        assert!(
            page.contains("<div class=\"step\" data-lines=\"11 12\">"),
            "{page}"
        );
        pages.push(page);
    }
    assert_eq!(pages[0], pages[1], "model and Linux draw the same steps");
}

/// Pictures show files in flight riding in their socket's
/// queue: an arrow to a file a table holds too, a note for one only the
/// message keeps alive; on the model and on Linux alike.
#[test]
fn pictures_show_files_in_flight() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/scm-rights-in-flight.fds");
    // Linux shows the same as the model: a dump peeks the queues after
    // every step.
    for backend in ["model", "linux"] {
        let page = html_page(&f, backend);
        let steps: Vec<&str> = page.split("<div class=\"step\"").skip(1).collect();
        // sendfds 1 1: file 1 rides in file 0's queue and p still holds it.
        assert!(
            steps[2].contains("class=\"flight\""),
            "{backend}: {}",
            steps[2]
        );
        // close 1: only the message holds it.
        assert!(
            steps[3].contains("in flight here: a stream socket"),
            "{backend}: {}",
            steps[3]
        );
        // recvfds: back in the table, nothing in flight.
        assert!(!steps[5].contains("in flight"), "{backend}: {}", steps[5]);
    }
    // A file in flight that no table holds is named by its path in the
    // scenario, on Linux too (not by the sandbox's absolute path).
    let f = tmp_scenario(
        "regular-in-flight",
        "spawn p\np: open f O_RDWR|O_CREAT = 0\np: socketpair SOCK_STREAM = 1 2\n\
         p: sendfds 1 0 = 0\np: close 0 = 0\n",
    );
    for backend in ["model", "linux"] {
        let page = html_page(&f, backend);
        assert!(page.contains("in flight here: f<"), "{backend}: {page}");
    }
}

/// `fdlab bench fork` runs both sides and reports every figure; a shape it
/// cannot measure is refused with exit 2.
#[test]
fn bench_fork_reports_the_kernel_and_the_model() {
    let out = fdlab(&["bench", "fork", "--fds", "64", "--rounds", "20", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["fds"], 64);
    for side in ["kernel", "model"] {
        for k in ["base_us", "loaded_us"] {
            let x = v[side][k].as_f64().unwrap();
            assert!(x.is_finite() && x > 0.0, "{side}.{k} = {x}");
        }
    }
    assert!(v["model_clone_us"].as_f64().unwrap() > 0.0);
    let text = fdlab(&["bench", "fork", "--fds", "16", "--rounds", "5"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("ns a descriptor") && text.contains("World::clone"),
        "{text}"
    );
    let bad = fdlab(&["bench", "fork", "--fds", "1"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// `fdlab bench restore` restores both trees, measures the floor beside
/// each (the system calls alone), and leaves no folder behind.
#[test]
fn bench_restore_reports_the_floor_beside_the_restore() {
    let out = fdlab(&[
        "bench",
        "restore",
        "--shared-processes",
        "2",
        "--mixed-processes",
        "3",
        "--fds",
        "20",
        "--runs",
        "1",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let shapes = v["shapes"].as_array().unwrap();
    assert_eq!(shapes.len(), 2);
    for s in shapes {
        assert!(s["floor_seconds"].as_f64().unwrap() > 0.0, "{s}");
        assert!(s["median"]["seconds"].as_f64().unwrap() > 0.0, "{s}");
    }
    assert_eq!(shapes[1]["descriptors"], 60);
}
