//! `fdlab inspect` on process trees whose sharing is known: every corpus
//! scenario run by the Linux backend (inspect must find exactly the
//! topology the backend prints), a tree built for it (compared with the
//! model's topology of the same scenario), threads, a process that exits
//! during the inspection, a process the caller may not inspect,
//! `--freeze` interrupted by Ctrl-C, and a process whose session began
//! outside the pid namespace.

mod support;

use fdlab::backend::linux::observe::snapshot::scenario_name;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fdlab::backend::linux::observe::procfs;
use fdlab::backend::{LinuxBackend, ModelBackend};
use fdlab::lang::parse;
use fdlab::tools::check::corpus;
use fdlab::tools::inspect::{inspect, Filters, Inspection, Request, Target};
use fdlab::tools::run::run;
use fdlab_model::kind::FileType;
use fdlab_model::limits::HARNESS_FD;
use fdlab_model::topology::{canonicalize, name_slaves, RawFile, RawProcess};
use fdlab_model::Topology;
use support::{alive, fdlab_bin, repo};

fn request(target: Target) -> Request {
    Request {
        target,
        threads: false,
        freeze: false,
        filters: Filters::default(),
        workers: 2,
        delay: Duration::ZERO,
    }
}

/// The inspection's topology as the scenario names things: processes by
/// their scenario names, only the scenario's descriptors, paths relative
/// to the sandbox; renumbered canonically.
fn as_scenario(ins: &Inspection, names: &BTreeMap<i32, String>, sandbox: &Path) -> Topology {
    let root = sandbox.to_string_lossy().into_owned();
    let procs = ins
        .topology
        .processes
        .iter()
        .map(|p| RawProcess {
            name: names[&p.pid.unwrap()].clone(),
            pid: None,
            table: p.table,
            fds: p
                .fds
                .iter()
                .filter(|v| v.fd < HARNESS_FD)
                .map(|v| (v.fd, v.file, v.cloexec))
                .collect(),
            // A file of the terminal, as a backend names it.
            ctty: p.ctty.and_then(|t| {
                let files = &ins.topology.files;
                files.iter().find(|f| f.pty == Some(t)).map(|f| f.id)
            }),
        })
        .collect();
    let files = ins
        .topology
        .files
        .iter()
        .map(|v| {
            let raw = match v.kind {
                FileType::Regular | FileType::Directory | FileType::Chardev => {
                    let p = v.path.clone().unwrap();
                    let path = if p == root {
                        ".".to_string()
                    } else {
                        p.strip_prefix(&format!("{root}/"))
                            .unwrap_or(&p)
                            .to_string()
                    };
                    RawFile::Path {
                        kind: v.kind,
                        path,
                        offset: v.offset.unwrap(),
                        flags: v.flags.unwrap(),
                        object: v.object,
                        pty: v.pty,
                    }
                }
                FileType::Pipe => RawFile::Pipe {
                    end: v.end.unwrap(),
                    object: v.object.unwrap(),
                },
                FileType::Socket => RawFile::Socket {
                    ty: v.socket_type.unwrap(),
                    object: v.object.unwrap(),
                    // Abstract names carry the run's prefix.
                    name: v.name.as_deref().map(|n| scenario_name(n, Some(&root))),
                    listening: v.listening == Some(true),
                },
                FileType::Epoll => RawFile::Epoll {
                    targets: v
                        .targets
                        .clone()
                        .unwrap()
                        .into_iter()
                        .map(|t| (t.fd, t.file, t.events))
                        .collect(),
                },
                FileType::Eventfd => RawFile::Eventfd,
                FileType::Unknown => panic!("unknown file {v:?}"),
            };
            (v.id, raw)
        })
        .collect();
    let mut t = canonicalize(procs, &files);
    name_slaves(&mut t);
    t
}

/// Runs `src` on Linux and keeps the backend (its processes) alive.
fn held(src: &str) -> (LinuxBackend, Topology) {
    let s = parse("t.fds", src).unwrap();
    let mut b = LinuxBackend::new(fdlab_bin()).unwrap();
    let r = run(&s, &mut b, false).unwrap();
    assert!(r.passed(), "{:?}", r.failures);
    (b, r.topology)
}

fn names_of(b: &LinuxBackend, t: &Topology) -> BTreeMap<i32, String> {
    t.processes
        .iter()
        .map(|p| (b.pid_of(&p.name).unwrap(), p.name.clone()))
        .collect()
}

#[test]
fn inspect_of_every_corpus_scenario_equals_the_backends_topology() {
    let mut checked = 0;
    for path in corpus(&repo("scenarios")).unwrap() {
        let src = std::fs::read_to_string(&path).unwrap();
        let (b, topology) = held(&src);
        let names = names_of(&b, &topology);
        if names.is_empty() {
            continue;
        }
        let ins = inspect(&request(Target::Pids(names.keys().copied().collect()))).unwrap();
        assert!(!ins.partial, "{}: {:?}", path.display(), ins.warnings);
        let seen = as_scenario(&ins, &names, b.sandbox());
        assert_eq!(seen, topology, "{}", path.display());
        checked += 1;
    }
    assert!(checked >= 50, "only {checked} scenarios had processes");
}

/// A tree built for inspect: every kind of sharing it must find.
const TREE: &str = "\
spawn a stdio
a: open notes O_RDWR|O_CREAT = 3
a: open notes O_RDWR = 4
a: dup 3 = 5
a: pipe = 6 7
a: socketpair SOCK_STREAM = 8 9
a: epoll_create = 10
a: eventfd = 11
a: epoll_ctl 10 EPOLL_CTL_ADD 11
a: dup 11 = 12
a: epoll_ctl 10 EPOLL_CTL_ADD 12
a: close 11
a: eventfd = 11
a: epoll_ctl 10 EPOLL_CTL_ADD 11
a: fork b
a: clone_files c
b: close 6
a: close 7
a: close 9
b: close 8
b: open notes O_RDONLY = 6
a: socketpair SOCK_DGRAM = 7 9
a: sendfds 7 4
a: sendfds 7 11
b: close 11
b: dup2 12 20
a: close 12
a: close 11
c: recvfds 9 = 11
expect a shares c
expect a apart b
expect a:3 same b:3
expect a:3 same a:5
expect a:3 differs a:4
expect a:11 same b:4
expect a:10 same b:10
expect a:10 watches b:20 as 12
";

#[test]
fn inspect_finds_what_a_tree_was_built_to_share() {
    let (b, linux) = held(TREE);
    // The model's topology of the same scenario: sharing by construction.
    let s = parse("t.fds", TREE).unwrap();
    let model = run(&s, &mut ModelBackend::new(), false).unwrap().topology;
    assert_eq!(linux, model);
    let names = names_of(&b, &linux);
    let ins = inspect(&request(Target::Pids(names.keys().copied().collect()))).unwrap();
    assert_eq!(as_scenario(&ins, &names, b.sandbox()), model);
    // Details the topology does not carry.
    let pid = |n: &str| *names.iter().find(|(_, v)| *v == n).unwrap().0;
    let file_of = |p: &str, fd: i32| {
        ins.files
            .iter()
            .find(|d| d.descriptors.iter().any(|x| x.pid == pid(p) && x.fd == fd))
            .unwrap()
    };
    // a and c share a table, and b has a copy: the first open of notes is
    // 3 and 5 in each.
    let notes = file_of("a", 3);
    assert_eq!(notes.descriptors.len(), 3 * 2, "{notes:?}");
    // Two opens of one path, and b's third: one object, three open files.
    let obj = &ins.objects.iter().find(|o| o.id == notes.object).unwrap();
    assert_eq!(obj.files.len(), 3, "{obj:?}");
    // The pipe was split: b holds the write end, a (and c) the read end.
    let write_end = file_of("b", 7);
    assert_eq!(write_end.kind, FileType::Pipe);
    assert!(write_end.endpoints.iter().all(|d| d.pid != pid("b")));
    assert!(write_end
        .endpoints
        .iter()
        .any(|d| d.pid == pid("a") && d.fd == 6));
    assert!(write_end
        .endpoints
        .iter()
        .any(|d| d.pid == pid("c") && d.fd == 6));
    // The stream pair too, with its shutdown state: none yet.
    let s8 = file_of("a", 8);
    assert!(s8.endpoints.iter().any(|d| d.pid == pid("b") && d.fd == 9));
    assert_eq!(s8.socket.as_ref().unwrap().state, "connected");
    // The epoll (shared by fork) watches the first eventfd under 12 and
    // under 11, where a now has another file: only b holds it (at 12 and
    // 20). It watches the second eventfd under 11 too, which no process
    // holds: it is in flight.
    let ep = ins
        .topology
        .files
        .iter()
        .find(|f| f.id == file_of("a", 10).file)
        .unwrap();
    let targets = ep.targets.as_ref().unwrap();
    assert_eq!(targets.len(), 3, "{targets:?}");
    assert_eq!(
        targets.iter().filter(|t| t.fd == 11).count(),
        2,
        "11 registered twice"
    );
    assert!(targets
        .iter()
        .any(|t| t.fd == 12 && t.file == Some(file_of("b", 20).file)));
    assert!(targets.iter().any(|t| t.fd == 11 && t.file.is_none()));
    assert!(!file_of("b", 20).watched_by.is_empty());
    drop(b);
}

#[test]
fn threads_fold_into_their_process_or_show_one_table() {
    let me = std::process::id() as i32;
    let _keep: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(|| std::thread::sleep(Duration::from_secs(3))))
        .collect();
    let ins = inspect(&request(Target::Pids(vec![me]))).unwrap();
    assert_eq!(ins.topology.processes.len(), 1, "threads folded");
    let mut r = request(Target::Pids(vec![me]));
    r.threads = true;
    let ins = inspect(&r).unwrap();
    let tids = procfs::threads(me).len();
    assert!(tids >= 4);
    // Threads come and go in a test binary: most are seen, in one table.
    assert!(
        ins.topology.processes.len() >= 4,
        "{}",
        ins.topology.processes.len()
    );
    assert_eq!(ins.topology.tables.len(), 1, "{:?}", ins.topology.tables);
}

/// `fdlab run --hold` of `src`: the child (its stdin held open) and the
/// pids it prints, by scenario name.
fn hold_cli(src: &str, dir: &Path) -> (Child, BTreeMap<String, i32>) {
    let file = dir.join("held.fds");
    std::fs::write(&file, src).unwrap();
    let mut child = Command::new(fdlab_bin())
        .args([
            "run",
            file.to_str().unwrap(),
            "--backend",
            "linux",
            "--hold",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let held = line
        .strip_prefix("fdlab: holding ")
        .unwrap_or_else(|| panic!("{line}"));
    let pids = held
        .split(" (sandbox")
        .next()
        .unwrap()
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect();
    (child, pids)
}

fn state(pid: i32) -> char {
    procfs::stat(pid).map_or('?', |s| s.state)
}

#[test]
fn freeze_resumes_on_ctrl_c_and_a_vanished_process_is_a_warning() {
    let dir = support::TempDir::new("inspect-freeze");
    let (mut holder, pids) = hold_cli("spawn a\na: pipe = 0 1\na: fork b\nb: fork c\n", dir.path());
    let all: Vec<String> = pids.values().map(|p| p.to_string()).collect();
    // Frozen, then interrupted in the middle: every process runs again.
    let mut args = vec!["inspect".to_string(), "--freeze".into()];
    args.extend(all.clone());
    let mut ins = support::interruptible(&mut Command::new(fdlab_bin()))
        .args(&args)
        .env("FDLAB_INSPECT_DELAY_MS", "5000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pids.values().all(|&p| state(p) == 'T') {
        assert!(Instant::now() < deadline, "not frozen");
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: signals a child this test started.
    unsafe { libc::kill(ins.id() as i32, libc::SIGINT) };
    let status = ins.wait().unwrap();
    assert!(!status.success());
    for &p in pids.values() {
        assert_ne!(state(p), 'T', "pid {p} left stopped");
    }
    // Frozen, and one process killed meanwhile: a partial result.
    let ins = Command::new(fdlab_bin())
        .args(&args)
        .env("FDLAB_INSPECT_DELAY_MS", "1000")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pids.values().all(|&p| state(p) == 'T') {
        assert!(Instant::now() < deadline, "not frozen");
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: signals a scenario process this test started.
    unsafe { libc::kill(pids["c"], libc::SIGKILL) };
    let out = ins.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("pid {}", pids["c"])) && text.contains("gone"),
        "{text}"
    );
    for p in [pids["a"], pids["b"]] {
        assert_ne!(state(p), 'T', "pid {p} left stopped");
    }
    drop(holder.stdin.take());
    holder.wait().unwrap();
    for &p in pids.values() {
        assert!(!alive(p), "pid {p} outlived --hold");
    }
}

#[test]
fn a_process_the_caller_may_not_inspect_is_a_warning_and_a_partial_result() {
    // SAFETY: geteuid has no arguments and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = Command::new(fdlab_bin());
    if root {
        // As nobody, inspecting this (root's) process.
        use std::os::unix::process::CommandExt;
        cmd.uid(65534).gid(65534);
        cmd.args(["inspect", &std::process::id().to_string()]);
    } else {
        // pid 1 is root's.
        cmd.args(["inspect", "1"]);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("Permission denied") && text.is_empty() {
        // The binary itself is not readable by nobody here (a private
        // build folder): nothing to test, and the message says so.
        eprintln!("skipped: {err}");
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{text}{err}");
    assert!(text.contains("permission denied"), "{text}");
    assert!(text.contains("partial"), "{text}");
}

#[test]
fn inspect_draws_what_it_found() {
    let dir = support::TempDir::new("inspect-svg");
    let (mut holder, pids) = hold_cli(
        "spawn a\na: pipe = 0 1\na: fork b\nb: close 1\n",
        dir.path(),
    );
    let svg = dir.path().join("tree.svg");
    let out = Command::new(fdlab_bin())
        .args(["inspect", "--svg", svg.to_str().unwrap(), "--dot", "-"])
        .args(pids.values().map(|p| p.to_string()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dot = String::from_utf8_lossy(&out.stdout);
    assert!(dot.starts_with("digraph fdlab {"), "{dot}");
    assert!(
        dot.contains("pipe, read end") && dot.contains("pipe, write end"),
        "{dot}"
    );
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
    // The read end is named by a and b (two tables), the write end by a.
    assert!(svg.contains("pipe, read end"), "{svg}");
    assert!(svg.contains("2 slots") && svg.contains("1 slot"), "{svg}");
    drop(holder.stdin.take());
    holder.wait().unwrap();
}

/// A process whose session's leader lives outside the observer's pid
/// namespace has session 0 there (`getsid(2)` says so; a tree started
/// from outside a container is in one). Inspect shows it and dump takes
/// the session for the one the tree was started in, not for one whose
/// leader has exited. The namespace is made with unshare(1): a user
/// namespace too, so that it needs no root where the kernel allows
/// unprivileged ones.
#[test]
fn a_session_begun_outside_the_pid_namespace_is_inspected_and_dumped() {
    let dir = support::TempDir::new("inspect-foreign-session");
    let script = r#"
        sleep 60 </dev/null >/dev/null 2>&1 &
        p=$!
        echo "namespace made"
        echo "session $(cut -d' ' -f6 /proc/$p/stat)"
        "$FDLAB" inspect --json "$p" >inspect.json 2>inspect.err; echo "inspect $?"
        "$FDLAB" dump "$p" -o dump.json 2>dump.err; echo "dump $?"
    "#;
    let out = match Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--pid",
            "--fork",
            "--mount-proc",
        ])
        .args(["sh", "-c", script])
        .env("FDLAB", fdlab_bin())
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("not run: unshare(1) could not be started ({e}); it is in util-linux");
            return;
        }
    };
    let said = String::from_utf8_lossy(&out.stdout);
    if !said.contains("namespace made") {
        eprintln!(
            "not run: this kernel or user may not make a user and pid namespace: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return;
    }
    // What the test is about happened: the session is one from outside.
    assert!(said.contains("session 0\n"), "{said}");
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
    assert!(
        said.contains("inspect 0\n"),
        "{said}{}",
        read("inspect.err")
    );
    assert!(
        read("inspect.json").contains("sleep["),
        "{}",
        read("inspect.json")
    );
    assert!(said.contains("dump 0\n"), "{said}{}", read("dump.err"));
    let img: fdlab::tools::image::Image = serde_json::from_str(&read("dump.json")).unwrap();
    assert_eq!(img.processes.len(), 1);
    assert!(
        !img.unrestorable.iter().any(|u| u.why.contains("leader")),
        "{:?}",
        img.unrestorable
    );
}
