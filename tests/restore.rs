//! Dump and restore: every scenario of the corpus, run on the model,
//! dumped, restored on a fresh model and dumped again gives the same image.

mod support;

use fdlab::backend::ModelBackend;
use fdlab::lang::parse;
use fdlab::tools::check::corpus;
use fdlab::tools::dump;
use fdlab::tools::restore::{restore, Options};
use fdlab::tools::run::run;

use fdlab::tools::gen::{ops, realize};
use fdlab::tools::image::Image;
use fdlab::tools::image::Object;

use support::{cases, fdlab_in, repo};

/// Restores `img` on a fresh model and dumps it again: the same image, or
/// a message saying what went wrong.
fn round_trip(img: &Image) -> Result<(), String> {
    let opts = Options {
        skip_unrestorable: true,
        ..Options::default()
    };
    let mut b = ModelBackend::new();
    restore(img, &mut b, &opts).map_err(|e| e.to_string())?;
    fdlab_model::invariants::check_all(b.world()).map_err(|v| v.to_string())?;
    // What was skipped is not there to dump again.
    let want = fdlab::tools::restore::expected(img);
    let mut again = dump::from_model(b.world());
    again.unrestorable = want.unrestorable.clone();
    if again != want {
        return Err(format!(
            "the restored tree differs:\n  dumped   {}\n  restored {}",
            serde_json::to_string(&want).unwrap(),
            serde_json::to_string(&again).unwrap()
        ));
    }
    Ok(())
}

/// The image of the corpus scenario at `path`, run on the model.
fn image_of(path: &std::path::Path) -> fdlab::tools::image::Image {
    let src = std::fs::read_to_string(path).unwrap();
    image_of_named(&path.display().to_string(), &src)
}

/// The model's image of scenario `src`.
fn image_of_src(src: &str) -> fdlab::tools::image::Image {
    image_of_named("x.fds", src)
}

fn image_of_named(file: &str, src: &str) -> fdlab::tools::image::Image {
    let s = parse(file, src).unwrap();
    let mut b = ModelBackend::new();
    run(&s, &mut b, false).unwrap();
    dump::from_model(b.world())
}

#[test]
fn corpus_round_trips_on_the_model() {
    let mut failures = Vec::new();
    let mut restored = 0;
    let mut piped = 0;
    let trees = corpus(&repo("tests/fixtures/trees")).unwrap();
    assert!(trees.len() >= 4);
    for path in corpus(&repo("scenarios")).unwrap().into_iter().chain(trees) {
        let img = image_of(&path);
        piped += usize::from(img.pipes.iter().any(|p| !p.data.0.is_empty()));
        match round_trip(&img) {
            Ok(()) => restored += 1,
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(restored >= 30, "only {restored} scenarios restored");
    assert!(piped >= 1, "no scenario leaves data in a pipe");
}

/// The trees made for restore are scenarios that pass on every backend,
/// so what they build is what Linux builds.
#[test]
fn trees_pass_on_every_backend() {
    for path in corpus(&repo("tests/fixtures/trees")).unwrap() {
        let src = std::fs::read_to_string(&path).unwrap();
        let s = parse(&path.display().to_string(), &src).unwrap();
        for &(name, make) in fdlab::backend::ALL {
            let mut b = make().unwrap_or_else(|e| panic!("{name} cannot start: {e}"));
            let r = run(&s, b.as_mut(), false).unwrap();
            assert!(r.passed(), "{} on {name}: {:?}", path.display(), r.failures);
        }
    }
}

/// Whatever state a generated scenario leaves the model in, restoring its
/// image gives it back; and the generated trees reach what restore must
/// handle (so the property is not about empty trees).
#[test]
fn generated_trees_round_trip_on_the_model() {
    use proptest::test_runner::TestCaseError;
    use std::cell::Cell;

    let n = cases(48);
    let mut runner = support::runner(n);
    let seen = Cell::new([0u32; 5]);
    let r = runner.run(&ops(5..60), |ops| {
        let s = realize(&ops);
        let mut b = ModelBackend::new();
        run(&s, &mut b, false).unwrap();
        let img = dump::from_model(b.world());
        let mut c = seen.get();
        c[0] += u32::from(img.processes.len() > 1);
        c[1] += u32::from(img.tables.len() < img.processes.len());
        c[2] += u32::from(
            img.pairs
                .iter()
                .any(|p| p.queued.iter().flatten().any(|m| !m.files.is_empty())),
        );
        c[3] += u32::from(img.files.iter().any(
            |f| matches!(&f.object, Object::Epoll { registrations } if !registrations.is_empty()),
        ));
        c[4] += u32::from(img.processes.iter().any(|p| p.ctty.is_some()));
        seen.set(c);
        round_trip(&img).map_err(|e| {
            TestCaseError::fail(format!(
                "{e}\nscenario:\n{}",
                fdlab::lang::print::scenario_text(&s)
            ))
        })
    });
    if let Err(e) = r {
        panic!("{e}");
    }
    // Shares of the cases that had several processes, a shared table,
    // files in flight, epoll registrations, a controlling terminal (data
    // in pipes is rare here: the corpus has it).
    let c = seen.get();
    let wanted = [
        "processes",
        "a shared table",
        "files in flight",
        "an epoll",
        "a controlling terminal",
    ];
    for (i, what) in wanted.iter().enumerate() {
        assert!(c[i] * 40 >= n, "only {} of {n} trees had {what}", c[i]);
    }
}

/// Makes the regular files and directories `img` names in `dir`, as the
/// scenario made them (restore never creates a file).
fn make_files(img: &Image, dir: &std::path::Path) {
    for f in &img.files {
        match &f.object {
            Object::Regular { path, .. } => {
                std::fs::write(dir.join(path), b"").unwrap();
            }
            Object::Directory { path, .. } => std::fs::create_dir_all(dir.join(path)).unwrap(),
            _ => {}
        }
    }
}

#[test]
fn images_restore_on_linux_as_on_the_model() {
    use fdlab::backend::{Backend, LinuxBackend};
    let mut failures = Vec::new();
    let trees = corpus(&repo("tests/fixtures/trees")).unwrap();
    for path in corpus(&repo("scenarios")).unwrap().into_iter().chain(trees) {
        let img = image_of(&path);
        let opts = Options {
            skip_unrestorable: true,
            ..Options::default()
        };
        let mut m = ModelBackend::new();
        restore(&img, &mut m, &opts).unwrap();
        let mut l = LinuxBackend::new(support::fdlab_bin()).unwrap();
        make_files(&img, l.sandbox());
        if let Err(e) = restore(&img, &mut l, &opts) {
            failures.push(format!("{}: {e}", path.display()));
            continue;
        }
        let (tm, tl) = (m.topology().unwrap(), l.topology().unwrap());
        if let Some((a, b)) = fdlab::tools::compare::topology_diff(&tm, &tl) {
            failures.push(format!("{}:\n  model {a}\n  linux {b}", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A pty's echo that comes after the reads stays buffered: the model
/// follows that state too, so its image is one Linux may dump.
#[test]
fn a_late_echo_is_an_image_the_model_allows() {
    let images = later_images(&repo("scenarios/pty-echo-timing.fds"));
    let buffered = |i: &Image| {
        i.unrestorable
            .iter()
            .any(|u| u.why.contains("buffered in a pseudo-terminal"))
    };
    assert!(images.iter().any(buffered), "{images:?}");
    assert!(images.iter().any(|i| !buffered(i)), "{images:?}");
    assert!(images.contains(&image_of(&repo("scenarios/pty-echo-timing.fds"))));
}

/// The images of every state the model may be in after the scenario at
/// `path`, each with its deferred work done.
fn later_images(path: &std::path::Path) -> Vec<Image> {
    let src = std::fs::read_to_string(path).unwrap();
    let s = parse(&path.display().to_string(), &src).unwrap();
    fdlab::tools::compare::final_images(&s, Box::new(ModelBackend::deferred())).unwrap()
}

/// The image of the scenario at `path` run on Linux, dumped from the live
/// helpers.
fn linux_image_of(path: &std::path::Path) -> Result<Image, String> {
    use fdlab::backend::LinuxBackend;
    let src = std::fs::read_to_string(path).unwrap();
    let s = parse(&path.display().to_string(), &src).unwrap();
    let mut l = LinuxBackend::new(support::fdlab_bin()).unwrap();
    run(&s, &mut l, false).map_err(|e| e.to_string())?;
    let sandbox = l.sandbox().to_path_buf();
    dump::from_backend(&mut l, Some(&sandbox)).map_err(|e| e.to_string())
}

/// Where the kernel's later work (a pty's echo, the unix collector) may
/// come before or after the last call, Linux's image must be the image of
/// one of the states the model follows.
#[test]
fn linux_dumps_equal_model_dumps() {
    let mut failures = Vec::new();
    let trees = corpus(&repo("tests/fixtures/trees")).unwrap();
    for path in corpus(&repo("scenarios")).unwrap().into_iter().chain(trees) {
        let m = image_of(&path);
        match linux_image_of(&path) {
            Ok(l) if l == m => {}
            Ok(l) if later_images(&path).contains(&l) => {}
            Ok(l) => failures.push(format!(
                "{}:\n  model {}\n  linux {}",
                path.display(),
                serde_json::to_string(&m).unwrap(),
                serde_json::to_string(&l).unwrap()
            )),
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every corpus scenario and tree, run on Linux and dumped, restores on
/// Linux and on the model to a tree that dumps as the same image.
#[test]
fn linux_images_round_trip_on_linux_and_the_model() {
    use fdlab::backend::LinuxBackend;
    use fdlab::tools::restore::{differences, expected};
    let mut failures = Vec::new();
    let trees = corpus(&repo("tests/fixtures/trees")).unwrap();
    for path in corpus(&repo("scenarios")).unwrap().into_iter().chain(trees) {
        let src = std::fs::read_to_string(&path).unwrap();
        let s = parse(&path.display().to_string(), &src).unwrap();
        let mut l1 = LinuxBackend::new(support::fdlab_bin()).unwrap();
        run(&s, &mut l1, false).unwrap();
        let (img, _copy, root) = dumped_with_root(&mut l1);
        let want = expected(&img);
        let opts = Options {
            root: Some(root.clone()),
            skip_unrestorable: true,
            verbose: true,
            trace: false,
        };
        for (name, got) in restored_on_both(&img, &root, &opts) {
            match got {
                Ok(got) => {
                    let d = differences(&want, &got);
                    if !d.is_empty() {
                        failures.push(format!(
                            "{} on {name}:\n  {}",
                            path.display(),
                            d.join("\n  ")
                        ));
                    }
                }
                Err(e) => failures.push(format!("{} on {name}: {e}", path.display())),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The image of the tree `l` runs, and a copy of its sandbox to restore it
/// under (beside the tree, which still holds its socket names): the copy's
/// folder, and the root in it.
fn dumped_with_root(
    l: &mut fdlab::backend::LinuxBackend,
) -> (Image, support::TempDir, std::path::PathBuf) {
    use fdlab::tools::restore::Target;
    let sandbox = l.sandbox().to_path_buf();
    let img = l.dump(Some(&sandbox)).unwrap();
    let copy = support::TempDir::new("round-trip");
    let root = copy.path().join("root");
    dump::save_sandbox(&sandbox, &root).unwrap();
    (img, copy, root)
}

/// `img` restored on Linux (paths under `root`) and on the model, each
/// dumped again: (backend, image or why not).
fn restored_on_both(
    img: &Image,
    root: &std::path::Path,
    opts: &Options,
) -> [(
    &'static str,
    Result<Image, fdlab::tools::restore::RestoreError>,
); 2] {
    use fdlab::backend::LinuxBackend;
    use fdlab::tools::restore::{numbers, Target};
    let (floor, _) = numbers(img);
    let mut l = LinuxBackend::with_floor(support::fdlab_bin(), floor).unwrap();
    let mut m = ModelBackend::new();
    [
        (
            "linux",
            restore(img, &mut l, opts).and_then(|_| l.dump(Some(root))),
        ),
        (
            "model",
            restore(img, &mut m, opts).and_then(|_| m.dump(None)),
        ),
    ]
}

/// What the issue asks: `run --backend linux --dump`, then `restore
/// --backend both --verify`, from the command line, for trees that reach
/// every kind of file and for files in flight.
#[test]
fn run_dump_then_restore_both_verifies() {
    let dir = support::TempDir::new("restore-cli");
    let mut files: Vec<std::path::PathBuf> = corpus(&repo("tests/fixtures/trees")).unwrap();
    files.push(repo("scenarios/scm-rights-in-flight.fds"));
    files.push(repo("scenarios/epoll-closed-number.fds"));
    for f in &files {
        let img = dir.path().join("img.json");
        let (code, _, err) = fdlab_in(
            dir.path(),
            &[
                "run",
                f.to_str().unwrap(),
                "--backend",
                "linux",
                "--dump",
                "img.json",
            ],
        );
        assert_eq!(code, 0, "{}: {err}", f.display());
        let (code, out, err) = fdlab_in(
            dir.path(),
            &[
                "restore",
                "img.json",
                "--backend",
                "both",
                "--verify",
                "--json",
            ],
        );
        assert_eq!(code, 0, "{}: {err}\n{out}", f.display());
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let outcomes = v["outcomes"].as_array().unwrap();
        assert_eq!(outcomes.len(), 2);
        for o in outcomes {
            assert_eq!(o["differences"], serde_json::json!([]), "{}", f.display());
        }
        std::fs::remove_file(&img).unwrap();
    }
    // Nothing is left in the temporary folder but the saved files.
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "img.json.files")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(support::helpers_under(dir.path()).is_empty());
}

#[test]
fn bad_images_are_errors_at_their_place() {
    let dir = support::TempDir::new("restore-bad");
    let good =
        serde_json::to_string_pretty(&image_of(&repo("tests/fixtures/trees/queues.fds"))).unwrap();
    dir.file("good.json", &good);
    let (code, out, err) = fdlab_in(dir.path(), &["restore", "good.json"]);
    assert_eq!(code, 0, "{err}\n{out}");
    assert!(out.contains("restored on model"), "{out}");
    // Not JSON.
    dir.file(
        "broken.json",
        "{\n  \"format\": \"fdlab-image\",\n  oops\n}\n",
    );
    let (code, _, err) = fdlab_in(dir.path(), &["restore", "broken.json"]);
    assert_eq!(code, 2);
    assert!(err.starts_with("fdlab: broken.json:3:"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // A descriptor that names a file the image does not have.
    let bad = good.replacen("\"file\": 7,", "\"file\": 80,", 1);
    assert_ne!(bad, good);
    dir.file("bad.json", &bad);
    let (code, _, err) = fdlab_in(dir.path(), &["restore", "bad.json"]);
    assert_eq!(code, 2);
    let line = bad
        .lines()
        .position(|l| l.contains("\"file\": 80"))
        .unwrap();
    // The error points at the table that holds it (its opening brace).
    let table_line = bad
        .lines()
        .take(line)
        .collect::<Vec<_>>()
        .iter()
        .rposition(|l| l.trim() == "{" && l.starts_with("    {"))
        .unwrap()
        + 1;
    assert!(
        err.starts_with(&format!("fdlab: bad.json:{table_line}:5: table")),
        "{err}"
    );
    assert!(err.contains("no file 80"), "{err}");
    // No such file.
    let (code, _, err) = fdlab_in(dir.path(), &["restore", "missing.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("missing.json"), "{err}");
}

/// A connection's listener must be a listening socket of its name, and a
/// connection waiting in a queue has no file on the listener's side.
#[test]
fn connections_that_no_listener_explains_are_invalid() {
    let good = image_of(&repo("tests/fixtures/trees/listeners.fds"));
    good.validate().unwrap();
    let accepted = good
        .pairs
        .iter()
        .position(|p| p.listener[1].is_some() && p.names[0].is_some())
        .expect("the fixture has an accepted connection from a bound client");
    // Its listener is a file that does not listen.
    let mut bad = good.clone();
    let other = bad
        .files
        .iter()
        .position(|f| matches!(&f.object, Object::Unix { listen: None, .. }))
        .unwrap();
    bad.pairs[accepted].listener[1] = Some(other);
    let e = bad.validate().unwrap_err();
    assert!(
        e.msg.contains("no listening socket of its type and name"),
        "{e}"
    );
    // Its server end waits in the queue, though a file holds it.
    let mut bad = good.clone();
    let l = good.pairs[accepted].listener[1].unwrap();
    if let Object::Unix {
        listen: Some(q), ..
    } = &mut bad.files[l].object
    {
        q.pending.push(accepted);
    }
    let e = bad.validate().unwrap_err();
    assert!(e.msg.contains("waiting in file"), "{e}");
}

#[test]
fn unrestorable_parts_are_refused_unless_skipped() {
    let dir = support::TempDir::new("restore-unrestorable");
    let mut img = image_of(&repo("tests/fixtures/trees/queues.fds"));
    // A network socket in the first table, at 9.
    img.files.push(fdlab::tools::image::FileImage {
        id: img.files.len(),
        flags: "O_RDWR".into(),
        object: Object::Other {
            what: "socket:[123]".into(),
        },
    });
    img.tables[0].fds.push(fdlab::tools::image::FdImage {
        fd: 9,
        file: img.files.len() - 1,
        cloexec: false,
    });
    img.unrestorable.push(fdlab::tools::image::Unrestorable {
        what: "file 9 (socket:[123])".into(),
        why: "not a unix socket".into(),
    });
    dir.file("x.json", &serde_json::to_string(&img).unwrap());
    let (code, _, err) = fdlab_in(dir.path(), &["restore", "x.json"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--skip-unrestorable") && err.contains("not a unix socket"),
        "{err}"
    );
    let (code, out, err) = fdlab_in(
        dir.path(),
        &[
            "restore",
            "x.json",
            "--skip-unrestorable",
            "--verify",
            "--backend",
            "both",
        ],
    );
    assert_eq!(code, 0, "{err}\n{out}");
    assert!(
        !out.contains("9->"),
        "the skipped descriptor is not there:\n{out}"
    );
}

/// Sessions, controlling terminals and an `EPOLLONESHOT` registration
/// that fired are not in images yet: both dumps list them as unrestorable,
/// alike.
/// A session whose leader exited cannot be made again (a session is made
/// by its leader, its members by fork from it), nor an EPOLLONESHOT
/// registration that fired: both dumps list them, alike.
#[test]
fn a_session_without_its_leader_and_fired_oneshots_are_listed_as_unrestorable() {
    let dir = support::TempDir::new("restore-leaderless");
    let src = "spawn p\np: setsid = 0\np: fork c = 0\np: exit = 0\n\
               c: eventfd = 0\nc: epoll_create = 1\n\
               c: epoll_ctl 1 EPOLL_CTL_ADD 0 EPOLLOUT|EPOLLONESHOT = 0\nc: epoll_wait 1 1 = 0:EPOLLOUT\n";
    let model = image_of_src(src);
    let why: Vec<&str> = model.unrestorable.iter().map(|u| u.why.as_str()).collect();
    assert_eq!(why.len(), 2, "{why:?}");
    assert!(why[0].contains("EPOLLONESHOT fired"), "{why:?}");
    assert!(why[1].contains("session's leader has exited"), "{why:?}");
    assert_eq!(model.unrestorable[1].what, "c");
    assert_eq!(model.processes[0].session, None);
    let linux = linux_dump_in(&dir, src);
    assert_eq!(linux.unrestorable, model.unrestorable);
}

/// Bytes waiting in a pty are listed by both dumps alike (a restore opens
/// an empty one); a pty with nothing waiting is not.
#[test]
fn bytes_waiting_in_a_pty_are_listed_as_unrestorable() {
    let dir = support::TempDir::new("restore-pty-bytes");
    let open = "spawn p\np: open /dev/ptmx O_RDWR = 0\np: ptypeer 0 O_NOCTTY = 1\n\
                p: epoll_create = 2\n";
    // The slave's poll takes the line into its line discipline, so that
    // Linux has it there by the time it is dumped.
    let waiting =
        format!("{open}p: write 0 \"in\\n\" = 3\np: epoll_ctl 2 EPOLL_CTL_ADD 1 EPOLLIN = 0\n");
    let model = image_of_src(&waiting);
    let why: Vec<&str> = model.unrestorable.iter().map(|u| u.why.as_str()).collect();
    assert_eq!(why.len(), 1, "{why:?}");
    assert!(why[0].contains("buffered in a pseudo-terminal"), "{why:?}");
    let linux = linux_dump_in(&dir, &waiting);
    assert_eq!(linux.unrestorable, model.unrestorable);
    let empty = format!("{open}p: epoll_ctl 2 EPOLL_CTL_ADD 1 EPOLLIN = 0\n");
    assert!(image_of_src(&empty).unrestorable.is_empty());
    assert!(linux_dump_in(&dir, &empty).unrestorable.is_empty());
}

/// Sessions and controlling terminals restore: a leader takes its terminal
/// while the tree is made, between the children it forks without it and
/// those with it, as `--plan` shows.
#[test]
fn sessions_and_controlling_terminals_restore_in_order() {
    let img = image_of(&repo("tests/fixtures/trees/sessions.fds"));
    assert!(img.unrestorable.is_empty(), "{:?}", img.unrestorable);
    let ctty: Vec<&str> = img
        .processes
        .iter()
        .filter(|p| p.ctty.is_some())
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(ctty, ["a", "m", "g"]);
    let p = fdlab::tools::restore::plan(&img, &Options::default()).unwrap();
    let at = |what: &str| {
        p.create
            .iter()
            .position(|(n, h)| format!("{n} {h:?}").starts_with(what))
            .unwrap_or_else(|| panic!("no {what} in {:?}", p.create))
    };
    assert!(at("out Fork") < at("a Setsid"));
    assert!(at("a Setsid") < at("early Fork"));
    assert!(at("early Fork") < at("a Terminal"));
    assert!(at("a Terminal") < at("m Fork"));
    assert!(at("own Fork") < at("own Setsid"));
    // A member with the terminal cannot be made by one without it: the
    // image is refused before anything is made.
    let mut bad = img.clone();
    let early = bad
        .processes
        .iter()
        .position(|q| q.name == "early")
        .unwrap();
    let e2 = bad.processes.iter().position(|q| q.name == "e2").unwrap();
    bad.processes[e2].ctty = bad.processes[early]
        .session
        .and_then(|l| img.processes[l].ctty);
    let e = fdlab::tools::restore::plan(&bad, &Options::default()).unwrap_err();
    assert!(
        e.to_string().contains("e2 cannot be made in its session"),
        "{e}"
    );
    // What no kernel makes is an invalid image: a terminal that is not
    // the session leader's, a session led by a process that leads none.
    let out = img.processes.iter().position(|q| q.name == "out").unwrap();
    let mut bad = img.clone();
    bad.processes[out].ctty = img.processes[0].ctty;
    let e = bad.validate().unwrap_err();
    assert!(e.msg.contains("is not its session leader's"), "{e}");
    let mut bad = img.clone();
    bad.processes[e2].session = Some(early);
    let e = bad.validate().unwrap_err();
    assert!(e.msg.contains("is no process that leads a session"), "{e}");
}

/// `src` run on Linux through the command line in `dir`, dumped to
/// `x.json` there: the image.
fn linux_dump_in(dir: &support::TempDir, src: &str) -> Image {
    dir.file("t.fds", src);
    let (code, _, err) = fdlab_in(
        dir.path(),
        &["run", "t.fds", "--backend", "linux", "--dump", "x.json"],
    );
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&std::fs::read_to_string(dir.path().join("x.json")).unwrap()).unwrap()
}

/// A pty slave whose master is gone is hung up, which no restore can
/// make from a master: both dumps list it, alike, and the rest of the
/// image restores without it.
#[test]
fn a_slave_without_its_master_is_listed_as_unrestorable() {
    let dir = support::TempDir::new("restore-hung-up");
    let src = "spawn p\np: open /dev/ptmx O_RDWR = 0\np: ptypeer 0 O_NOCTTY = 1\n\
               p: pipe = 2 3\np: close 0 = 0\n";
    let err = listed_then_skipped(&dir, src, &["master is not in the tree"]).0;
    assert!(err.contains("pty slave"), "{err}");
}

/// Scenario `src`: the model's dump lists what it cannot restore, with
/// reasons that say `whys`, in order; Linux's dump is the same; restore
/// refuses it (its message returned), and restores and verifies the rest
/// when told to skip them (its plan returned).
fn listed_then_skipped(dir: &support::TempDir, src: &str, whys: &[&str]) -> (String, String) {
    let model = image_of_src(src);
    let listed: Vec<&str> = model.unrestorable.iter().map(|u| u.why.as_str()).collect();
    assert_eq!(listed.len(), whys.len(), "{listed:?}");
    for (got, want) in listed.iter().zip(whys) {
        assert!(got.contains(want), "{listed:?}");
    }
    assert_eq!(linux_dump_in(dir, src), model);
    let (code, _, refused) = fdlab_in(dir.path(), &["restore", "x.json", "--backend", "both"]);
    assert_eq!(code, 2, "refused unless skipped: {refused}");
    let (code, plan, err) = fdlab_in(
        dir.path(),
        &[
            "restore",
            "x.json",
            "--backend",
            "both",
            "--skip-unrestorable",
            "--verify",
            "--plan",
        ],
    );
    assert_eq!(code, 0, "{err}");
    (refused, plan)
}

/// A connection waiting in a listener's queue is restored by connecting
/// its client again; what the client sent waits on the listener's side,
/// which no dump can read without accepting: both dumps list it, alike,
/// and the rest restores without the data. A client closed while it
/// waited cannot connect again: listed too. The socket files a restore
/// binds go with the restored tree.
#[test]
fn waiting_connections_with_data_or_without_client_are_listed() {
    let dir = support::TempDir::new("restore-waiting");
    let src = "spawn p\np: socket SOCK_STREAM = 0\np: bind 0 s.sock = 0\np: listen 0 3 = 0\n\
               p: socket SOCK_STREAM = 1\np: connect 1 s.sock = 0\np: write 1 \"hi\" = 2\n\
               p: socket SOCK_STREAM = 2\np: connect 2 s.sock = 0\n\
               p: socket SOCK_STREAM = 3\np: connect 3 s.sock = 0\np: close 3 = 0\n";
    let plan = listed_then_skipped(&dir, src, &["without accepting", "client is closed"]).1;
    assert!(plan.contains("connects and waits"), "{plan}");
    let files = dir.path().join("x.json.files");
    let left: Vec<_> = std::fs::read_dir(&files).unwrap().collect();
    assert!(
        left.is_empty(),
        "the restored tree's socket files stay: {left:?}"
    );
}

/// A datagram socket that sends to a socket without a name cannot connect
/// to it again: both dumps list it, alike, and the rest restores.
#[test]
fn a_datagram_peer_without_a_name_is_listed() {
    let dir = support::TempDir::new("restore-dgram-peer");
    let src = "spawn p\np: socketpair SOCK_DGRAM = 0 1\np: socket SOCK_DGRAM = 2\n\
               p: bind 2 c.sock = 0\np: connect 0 c.sock = 0\np: write 0 \"hi\" = 2\n";
    let plan = listed_then_skipped(&dir, src, &["has no name"]).1;
    assert!(plan.contains("connect file"), "{plan}");
    assert!(plan.contains("from a socket made for it"), "{plan}");
}

#[test]
fn a_failed_restore_leaves_nothing_behind() {
    let dir = support::TempDir::new("restore-fail");
    let (code, _, err) = fdlab_in(
        dir.path(),
        &[
            "run",
            repo("tests/fixtures/trees/shared-and-copied.fds")
                .to_str()
                .unwrap(),
            "--backend",
            "linux",
            "--dump",
            "x.json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    // Restore never creates a file: a missing one is an error naming it.
    std::fs::remove_file(dir.path().join("x.json.files/log")).unwrap();
    let (code, _, err) = fdlab_in(dir.path(), &["restore", "x.json", "--backend", "linux"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("x.json.files/log") && err.contains("ENOENT"),
        "{err}"
    );
    assert!(!dir.path().join("x.json.files/log").exists());
    assert!(support::helpers_under(dir.path()).is_empty());
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("fdlab-run"))
        .collect();
    assert!(left.is_empty(), "sandboxes left: {left:?}");
    // Relative paths and nothing beside the image: say what to do.
    std::fs::rename(
        dir.path().join("x.json.files"),
        dir.path().join("elsewhere"),
    )
    .unwrap();
    let (code, _, err) = fdlab_in(dir.path(), &["restore", "x.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("--root DIR"), "{err}");
    std::fs::write(dir.path().join("elsewhere/log"), "").unwrap();
    let (code, out, err) = fdlab_in(
        dir.path(),
        &[
            "restore",
            "x.json",
            "--root",
            "elsewhere",
            "--backend",
            "linux",
            "--verify",
        ],
    );
    assert_eq!(code, 0, "{err}\n{out}");
}

#[test]
fn ctrl_c_mid_restore_leaves_nothing_behind() {
    let dir = support::TempDir::new("restore-ctrlc");
    let img = image_of(&repo("tests/fixtures/trees/shared-and-copied.fds"));
    dir.file("x.json", &serde_json::to_string(&img).unwrap());
    for f in ["notes", "log"] {
        dir.file(f, "");
    }
    let mut child = support::interruptible(&mut std::process::Command::new(support::fdlab_bin()))
        .args(["restore", "x.json", "--backend", "linux", "--root", "."])
        .current_dir(dir.path())
        .env("TMPDIR", dir.path())
        .env("FDLAB_STEP_DELAY_MS", "300")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Under way: the restorer and the first processes exist.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while support::helpers_under(dir.path()).len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the restore never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: interrupts the child this test started; integer arguments.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert!(!child.wait().unwrap().success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let sandboxes: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("fdlab-run"))
            .collect();
        let procs = support::helpers_under(dir.path());
        if sandboxes.is_empty() && procs.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left behind: {sandboxes:?}, helper pids {procs:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The files the image names are untouched.
    assert_eq!(std::fs::read(dir.path().join("notes")).unwrap(), b"");
}

/// A live tree, not a scenario's: `run --hold` keeps one; `dump` of its
/// pids names processes `command[pid]` and writes absolute paths; the
/// image restores and verifies, and `restore --hold` keeps the copy.
#[test]
fn live_processes_dump_and_restore() {
    use std::io::{BufRead, Write};
    let dir = support::TempDir::new("restore-live");
    let scenario = repo("tests/fixtures/trees/epoll-web.fds");
    let mut held = std::process::Command::new(support::fdlab_bin())
        .args([
            "run",
            scenario.to_str().unwrap(),
            "--backend",
            "linux",
            "--hold",
        ])
        .current_dir(dir.path())
        .env("TMPDIR", dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(held.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pids: Vec<String> = line
        .split_whitespace()
        .filter_map(|w| w.split_once('=').map(|(_, p)| p.to_string()))
        .filter(|p| p.parse::<i32>().is_ok())
        .collect();
    assert_eq!(pids.len(), 2, "{line}");
    let mut args = vec!["dump", "-o", "live.json", "--freeze"];
    args.extend(pids.iter().map(String::as_str));
    let (code, _, err) = fdlab_in(dir.path(), &args);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("dumped 2 processes (2 tables)"), "{err}");
    let img: Image =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("live.json")).unwrap())
            .unwrap();
    assert!(img
        .processes
        .iter()
        .all(|p| p.name.contains(&format!("[{}]", pids[0]))
            || p.name.contains(&format!("[{}]", pids[1]))));
    // The helpers' own control channels are sockets whose peers are in
    // `fdlab run`: outside the tree, so not restorable, and said so.
    assert!(!img.unrestorable.is_empty());
    assert!(img
        .unrestorable
        .iter()
        .all(|u| u.why.contains("peer is held outside the tree")));
    // The original is still there, unchanged: dump took nothing.
    held.stdin.take().unwrap().write_all(b"").unwrap();
    assert!(held.wait().unwrap().success());
    let (code, out, err) = fdlab_in(
        dir.path(),
        &[
            "restore",
            "live.json",
            "--backend",
            "both",
            "--verify",
            "--skip-unrestorable",
        ],
    );
    assert_eq!(
        code, 0,
        "{err}
{out}"
    );
    assert_eq!(
        out.matches("verified: the restored tree dumps as the image")
            .count(),
        2,
        "{out}"
    );
}

/// Restores `img` on Linux (files under `root`), dumps the restored tree
/// and returns what the restore did and how the dump differs.
fn restore_on_linux(
    img: &Image,
    root: Option<&std::path::Path>,
) -> (fdlab::tools::restore::Restored, Vec<String>) {
    use fdlab::backend::LinuxBackend;
    use fdlab::tools::restore::{differences, expected, numbers, Target};
    let (floor, _) = numbers(img);
    let mut l = LinuxBackend::with_floor(support::fdlab_bin(), floor).unwrap();
    let opts = Options {
        root: root.map(std::path::Path::to_path_buf),
        ..Options::default()
    };
    let r = restore(img, &mut l, &opts).unwrap_or_else(|e| panic!("{e}"));
    let got = l.dump(root).unwrap();
    (r, differences(&expected(img), &got))
}

/// CRIU sends one descriptor a message; here a message carries up to
/// SCM_MAX_FD (253).
#[test]
fn files_travel_in_batches_of_up_to_253() {
    use fdlab::tools::bench::restore::{tree, Shape};
    let dir = support::TempDir::new("restore-batch");
    for k in 0..16 {
        dir.file(&format!("f{k}"), "");
    }
    let img = tree(Shape::Shared, 3, 600, dir.path());
    let (r, diff) = restore_on_linux(&img, None);
    assert!(diff.is_empty(), "{diff:?}");
    // Two processes receive 600 files each: 3 messages each (253 + 253 + 94).
    assert_eq!((r.files_sent, r.messages), (1200, 6));
    let mut m = ModelBackend::new();
    let r = restore(&img, &mut m, &Options::default()).unwrap();
    assert_eq!((r.files_sent, r.messages), (1200, 6));
}

/// CRIU makes the lowest pid the master of an epoll, and fails when that
/// process does not hold what the epoll watches (its issue 1366). Here the
/// epoll's master gets the target served like any slave.
#[test]
fn an_epoll_master_gets_targets_only_another_process_holds() {
    use fdlab::tools::restore::plan;
    let img = image_of(&repo("tests/fixtures/trees/epoll-web.fds"));
    // The epoll that watches the socket, and the socket only c holds.
    let (ep, sock) = img
        .files
        .iter()
        .find_map(|f| match &f.object {
            Object::Epoll { registrations } => registrations
                .iter()
                .find(|r| matches!(img.files[r.file].object, Object::Socket { .. }))
                .map(|r| (f.id as u32, r.file as u32)),
            _ => None,
        })
        .unwrap();
    let p = plan(&img, &Options::default()).unwrap();
    let who = |name: &str| {
        p.programs
            .iter()
            .position(|(prog, _)| prog.name == name)
            .unwrap()
    };
    let (pp, cc) = (who("p"), who("c"));
    let master_of = |f: u32| {
        p.programs
            .iter()
            .position(|(prog, _)| prog.make.iter().any(|m| m.files().contains(&f)))
            .unwrap()
    };
    assert_eq!(master_of(ep), pp, "p holds the epoll first");
    assert_eq!(master_of(sock), cc, "only c holds the socket");
    assert!(
        p.programs[pp].0.receive.contains(&sock),
        "p is served the socket"
    );
    assert!(p.programs[cc]
        .0
        .serve
        .iter()
        .any(|s| s.to == pp && s.files.contains(&sock)));
    let (_, diff) = restore_on_linux(&img, None);
    assert!(diff.is_empty(), "{diff:?}");
}

/// CRIU's dump stops at 1,024 pipes with data ("OOM storing pipe"); here
/// the only limit is the kernel's, also for a pipe made bigger with
/// F_SETPIPE_SZ and filled past the default 64 KiB.
#[test]
fn pipes_with_data_have_no_limit_of_their_own() {
    use fdlab::tools::image::{Bytes, FdImage, FileImage, PipeImage, ProcImage, TableImage};
    use fdlab_model::pipe::PipeEnd;
    let mut img = Image::new();
    for n in 0..3 {
        let mut fds = Vec::new();
        for _ in 0..500 {
            let pipe = img.pipes.len();
            img.pipes.push(PipeImage {
                id: pipe,
                data: Bytes(format!("pipe {pipe}").into_bytes()),
                capacity: None,
            });
            for end in [PipeEnd::Read, PipeEnd::Write] {
                let id = img.files.len();
                img.files.push(FileImage::pipe_end(id, pipe, end));
                fds.push(FdImage {
                    fd: fds.len() as u32,
                    file: id,
                    cloexec: false,
                });
            }
        }
        img.tables.push(TableImage { id: n, fds });
        img.processes.push(ProcImage {
            id: n,
            name: format!("p{n}"),
            parent: None,
            table: n,
            rlimit: None,
            session: None,
            ctty: None,
        });
    }
    // One big pipe: 1 MiB of capacity, 600,000 bytes queued.
    img.pipes[0].capacity = Some(1 << 20);
    img.pipes[0].data = Bytes((0..600_000u32).map(|i| (i % 251) as u8).collect());
    let img = dump::canonical(&img);
    let (r, diff) = restore_on_linux(&img, None);
    assert!(diff.is_empty(), "{diff:?}");
    assert_eq!(r.descriptors, 3000);
}

/// Two restores at once: each has its own anonymous transport, so they
/// cannot meet (CRIU's named transport sockets can, its issue 2499).
#[test]
fn concurrent_restores_do_not_collide() {
    let img = image_of(&repo("tests/fixtures/trees/queues.fds"));
    let diffs: Vec<Vec<String>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|_| s.spawn(|| restore_on_linux(&img, None).1))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(diffs.iter().all(Vec::is_empty), "{diffs:?}");
}

/// A restore that cannot finish is an error naming the files waited for
/// and who was to send them, never a hang: on the model at once, on Linux
/// after the patience runs out.
#[test]
fn a_stuck_restore_names_what_it_waits_for() {
    use fdlab::backend::LinuxBackend;
    use fdlab::tools::restore::plan;
    let img = image_of(&repo("tests/fixtures/trees/epoll-web.fds"));
    let mut p = plan(&img, &Options::default()).unwrap();
    // c, which alone holds the socket, forgets to serve it.
    let c = p
        .programs
        .iter()
        .position(|(prog, _)| prog.name == "c")
        .unwrap();
    let lost: Vec<u32> = p.programs[c]
        .0
        .serve
        .iter()
        .flat_map(|s| s.files.clone())
        .collect();
    assert!(!lost.is_empty());
    p.programs[c].0.serve.clear();
    let mut m = ModelBackend::new();
    let e = fdlab::tools::restore::run_plan(&mut m, &p)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("stuck") && e.contains(&format!("files {}", lost[0])),
        "{e}"
    );
    // On Linux: c gives up waiting after 300 ms with nothing moving.
    for (prog, _) in &mut p.programs {
        prog.patience_ms = 300;
    }
    let mut l = LinuxBackend::new(support::fdlab_bin()).unwrap();
    let e = fdlab::tools::restore::run_plan(&mut l, &p)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("nothing moved for 300 ms") && e.contains(&format!("file {} (from c)", lost[0])),
        "{e}"
    );
}

/// The property: random scenarios run on Linux, dumped from the
/// live helpers, restored on Linux and on the model, both dump as the
/// image.
#[test]
fn generated_linux_trees_round_trip_on_both_backends() {
    use fdlab::backend::LinuxBackend;
    use fdlab::tools::restore::{differences, expected};
    use proptest::strategy::{Strategy, ValueTree};

    let n = cases(12);
    let mut runner = support::runner(n);
    let mut restored_descriptors = 0;
    let (mut unpaired, mut accepted, mut waiting) = (0, 0, 0);
    for _ in 0..n {
        let ops = ops(5..40).new_tree(&mut runner).unwrap().current();
        let s = realize(&ops);
        let text = fdlab::lang::print::scenario_text(&s);
        let mut l1 = LinuxBackend::new(support::fdlab_bin()).unwrap();
        run(&s, &mut l1, false).unwrap();
        let (img, _copy, root) = dumped_with_root(&mut l1);
        let want = expected(&img);
        restored_descriptors += want.tables.iter().map(|t| t.fds.len()).sum::<usize>();
        for f in &want.files {
            if let Object::Unix { listen, .. } = &f.object {
                unpaired += 1;
                waiting += listen.as_ref().map_or(0, |l| l.pending.len());
            }
        }
        accepted += want
            .pairs
            .iter()
            .filter(|p| p.listener.iter().any(Option::is_some))
            .count();
        let opts = Options {
            root: Some(root.clone()),
            skip_unrestorable: true,
            ..Options::default()
        };
        for (name, got) in restored_on_both(&img, &root, &opts) {
            let got = got.unwrap_or_else(|e| panic!("on {name}: {e}\nscenario:\n{text}"));
            let d = differences(&want, &got);
            assert!(
                d.is_empty(),
                "on {name}:\n  {}\nscenario:\n{text}",
                d.join("\n  ")
            );
        }
    }
    // Sockets from socket(2), bound or listening, come back too; the
    // connections through a listener are rarer (see the trees' fixture).
    assert!(
        unpaired > 0,
        "no unix socket without a peer; connections through a listener {accepted}, waiting {waiting}"
    );
    // Named datagram sockets, which are skipped, take a share of the
    // generated calls.
    assert!(
        restored_descriptors > 8 * n as usize,
        "trees too small: {restored_descriptors}"
    );
}

/// Trees that a plain order of forks and clones cannot make (see
/// `tools::restore::tree`), on Linux.
#[test]
fn unusual_trees_restore_on_linux() {
    let shapes: [&[(&str, Option<usize>, usize)]; 3] = [
        &[("p1", None, 0), ("p2", Some(0), 1), ("p3", Some(1), 0)],
        &[("p1", None, 0), ("p2", Some(0), 1), ("p3", Some(0), 1)],
        &[
            ("a", None, 0),
            ("b", None, 0),
            ("c", None, 1),
            ("d", None, 1),
        ],
    ];
    for procs in shapes {
        let img = Image::of_tree(procs);
        let (r, diff) = restore_on_linux(&img, None);
        assert!(diff.is_empty(), "{procs:?}: {diff:?}");
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }
}

/// A stream socket whose peer closed with unread data owes its process one
/// `ECONNRESET`, which a read of the empty queue takes. The dump must see
/// it without taking it (a peek of the empty queue would), and the
/// restore must make it again.
#[test]
fn a_pending_reset_is_dumped_left_alone_and_restored() {
    use fdlab::backend::{Backend, LinuxBackend};
    use fdlab_model::{Call, Errno};
    let src = "spawn p\np: socketpair SOCK_STREAM = 0 1\np: write 1 \"x\" = 1\np: close 0 = 0\n";
    let s = parse("reset.fds", src).unwrap();
    let mut l = LinuxBackend::new(support::fdlab_bin()).unwrap();
    run(&s, &mut l, false).unwrap();
    let sandbox = l.sandbox().to_path_buf();
    let img = dump::from_backend(&mut l, Some(&sandbox)).unwrap();
    assert_eq!(img.pairs.len(), 1);
    assert_eq!(
        img.pairs[0].reset.iter().filter(|r| **r).count(),
        1,
        "{img:?}"
    );
    assert_eq!(img, image_of_src(src));
    // The process still gets its error, once.
    let read = Call::Read { fd: 1, len: 10 };
    assert_eq!(l.call("p", &read).unwrap(), Err(Errno::ECONNRESET));
    assert!(l.call("p", &read).unwrap().is_ok());
    // Restored on both backends, the error is there again.
    let mut m = ModelBackend::deferred();
    restore(&img, &mut m, &Options::default()).unwrap();
    assert_eq!(m.call("p", &read).unwrap(), Err(Errno::ECONNRESET), "model");
    let mut l = LinuxBackend::new(support::fdlab_bin()).unwrap();
    restore(&img, &mut l, &Options::default()).unwrap();
    assert_eq!(l.call("p", &read).unwrap(), Err(Errno::ECONNRESET), "linux");
}
