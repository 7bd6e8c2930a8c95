//! The Linux backend as a user of it relies on: the corpus agrees with the
//! model after every step, and no process or directory outlives a run,
//! whether it ends normally, panics, or loses a helper.

mod support;

use std::path::Path;

use fdlab::backend::linux::backend::HelperFailure;
use fdlab::backend::{Backend, BackendError, LinuxBackend, ModelBackend};
use fdlab::lang::parse;
use fdlab::tools::check::corpus;
use fdlab::tools::compare::run_both;
use fdlab_model::{Call, OFlags};

use support::{alive, fdlab_bin as helper, helpers_under};

#[test]
fn corpus_agrees_with_the_model_after_every_step() {
    let mut bad = Vec::new();
    for path in corpus(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")).unwrap() {
        let s = parse("x", &std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut linux = LinuxBackend::new(helper()).unwrap();
        // Every snapshot that read only what a call may have changed is
        // checked against one that reads everything.
        linux.check_observation(true);
        let c = run_both(&s, Box::new(ModelBackend::deferred()), &mut linux, true).unwrap();
        if !c.passed() {
            bad.push(format!(
                "{}: {:?} {:?}",
                path.display(),
                c.divergences,
                c.linux.failures
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// What a snapshot carries from the one before is only right when the
/// caller tells who ran: a snapshot told that nobody did misses the call,
/// one told the truth reads the table the call changed, and the offset it
/// moved in a table it carries.
#[test]
fn a_snapshot_since_another_reads_what_the_call_changed() {
    use fdlab::backend::linux::observe::{observe_with, Dirs, Options, Since, Snapshot};
    let mut b = LinuxBackend::new(helper()).unwrap();
    let open = |path: &str| Call::Open {
        path: path.into(),
        flags: OFlags::CREAT | OFlags::RDWR,
        mode: 0o644,
    };
    b.spawn("p", false).unwrap();
    b.call("p", &open("f")).unwrap().unwrap();
    b.call("p", &Call::Fork { child: "c".into() })
        .unwrap()
        .unwrap();
    b.call("p", &open("g")).unwrap().unwrap();
    let (p, c) = (b.pid_of("p").unwrap(), b.pid_of("c").unwrap());
    let pids = [p, c];
    let opts = Options {
        fds: b.fds(),
        ..Options::default()
    };
    let mut dirs = Dirs::default();
    let shown = |s: &Snapshot| {
        assert!(s.complete(), "{:?}", s.warnings);
        serde_json::to_string(&s.topology(|pid| (pid.to_string(), None), None)).unwrap()
    };
    let before = observe_with(&pids, &opts, &mut dirs, None);
    // c writes through the open file it shares with p, which moves p's
    // offset too.
    let write = Call::Write {
        fd: 0,
        data: b"abc".to_vec(),
    };
    b.call("c", &write).unwrap().unwrap();
    let since = |ran| {
        let mut dirs = Dirs::default();
        let since = Since {
            before: &before,
            ran,
        };
        observe_with(&pids, &opts, &mut dirs, Some(&since))
    };
    let (truth, lie) = (since(&[c]), since(&[]));
    let whole = observe_with(&pids, &opts, &mut dirs, None);
    assert_ne!(shown(&before), shown(&whole), "the write moved the offset");
    assert_eq!(shown(&truth), shown(&whole));
    assert_ne!(shown(&lie), shown(&whole), "nothing was read again");
    // Of p's table, carried, only g was not read again; told nobody ran,
    // nothing was.
    assert_eq!(truth.cost.carried, 1, "{:?}", truth.cost);
    assert_eq!(lie.cost.carried, 3, "{:?}", lie.cost);
}

fn busy_run() -> (LinuxBackend, Vec<i32>) {
    let mut b = LinuxBackend::new(helper()).unwrap();
    b.spawn("p1", true).unwrap();
    b.call("p1", &Call::Fork { child: "p2".into() })
        .unwrap()
        .unwrap();
    b.call("p2", &Call::CloneFiles { child: "p3".into() })
        .unwrap()
        .unwrap();
    let open = Call::Open {
        path: "f".into(),
        flags: OFlags::CREAT | OFlags::RDWR,
        mode: 0o644,
    };
    b.call("p3", &open).unwrap().unwrap();
    // p2 exits: p3, its clone, is now an orphan.
    b.call("p2", &Call::Exit).unwrap().unwrap();
    let pids = ["p1", "p3"].iter().map(|n| b.pid_of(n).unwrap()).collect();
    (b, pids)
}

#[test]
fn a_run_leaves_no_process_and_no_sandbox() {
    let (b, pids) = busy_run();
    let dir = b.sandbox().to_path_buf();
    assert!(dir.join("f").is_file());
    assert!(pids.iter().all(|&p| alive(p)));
    drop(b);
    assert!(!dir.exists(), "{} is left behind", dir.display());
    for p in pids {
        assert!(!alive(p), "pid {p} is left behind");
    }
}

#[test]
fn a_panicking_run_leaves_nothing_behind() {
    let seen = std::sync::Mutex::new(None);
    let r = std::panic::catch_unwind(|| {
        let (b, pids) = busy_run();
        *seen.lock().unwrap() = Some((b.sandbox().to_path_buf(), pids));
        panic!("mid-run");
    });
    assert!(r.is_err());
    let (dir, pids) = seen.lock().unwrap().take().unwrap();
    assert!(!dir.exists());
    assert!(pids.iter().all(|&p| !alive(p)));
}

#[test]
fn a_dead_helper_is_a_clear_error_not_a_hang() {
    let mut b = LinuxBackend::new(helper()).unwrap();
    b.spawn("p1", false).unwrap();
    let pid = b.pid_of("p1").unwrap();
    // SAFETY: signals a process this test started; integer arguments.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let e = b.call("p1", &Call::Dup { fd: 0 }).unwrap_err();
    let BackendError::Process { proc, doing, cause } = &e else {
        panic!("{e}")
    };
    assert_eq!((proc.as_str(), doing.as_str()), ("p1", "dup 0"));
    assert!(
        matches!(
            cause.downcast_ref::<HelperFailure>(),
            Some(HelperFailure::Died | HelperFailure::DiedWith(_))
        ),
        "{e}"
    );
}

#[test]
fn expectations_use_kcmp_across_processes() {
    let src = "spawn p1\np1: pipe = 0 1\np1: fork p2\np2: epoll_create = 2\n\
               p2: epoll_ctl 2 EPOLL_CTL_ADD 0\np2: dup 0 = 3\np2: close 0 = 0\n\
               expect p1:0 same p2:3\nexpect p1:0 differs p1:1\nexpect p1 apart p2\n\
               expect p2:2 watches p1:0 as 0\nexpect p2:2 watches p2:3 as 0\nexpect p2 fds 1 2 3\n";
    let s = parse("t.fds", src).unwrap();
    let mut linux = LinuxBackend::new(helper()).unwrap();
    let r = fdlab::tools::run::run(&s, &mut linux, false).unwrap();
    assert!(r.passed(), "{:?}", r.failures);
    assert_eq!(r.expectations.len(), 6);
    // A registration under a closed number names the file, not the number.
    let t = &r.topology;
    let ep = t
        .files
        .iter()
        .find(|f| f.kind == fdlab_model::kind::FileType::Epoll)
        .unwrap();
    let target = ep.targets.as_ref().unwrap()[0].clone();
    assert_eq!(target.fd, 0);
    assert_eq!(target.file, Some(t.processes[0].fds[0].file));
}

#[test]
fn ctrl_c_mid_run_leaves_no_process_and_no_sandbox() {
    let root = std::env::temp_dir().join(format!("fdlab-ctrlc-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let scenario = root.join("slow.fds");
    let mut src = String::from("spawn p1 stdio\np1: fork p2\np2: clone_files p3\np2: exit\n");
    for _ in 0..50 {
        src.push_str("p1: dup 0\n");
    }
    std::fs::write(&scenario, src).unwrap();
    let mut child = support::interruptible(&mut std::process::Command::new(helper()))
        .args(["run", scenario.to_str().unwrap(), "--backend", "linux"])
        .env("TMPDIR", &root)
        .env("FDLAB_STEP_DELAY_MS", "50")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the run is under way: its helpers exist.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while helpers_under(&root).len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: interrupts the child this test started; integer arguments.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(!status.success());
    // The nursery notices its runner is gone and cleans up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p != &scenario)
            .collect();
        let procs = helpers_under(&root);
        if left.is_empty() && procs.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left behind: {left:?}, helper pids {procs:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::remove_dir_all(&root).unwrap();
}
