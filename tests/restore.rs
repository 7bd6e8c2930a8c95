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

use support::{cases, repo};

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
    let mut again = dump::from_model(b.world());
    again.unrestorable = img.unrestorable.clone();
    if again != *img {
        return Err(format!(
            "the restored tree differs:\n  dumped   {}\n  restored {}",
            serde_json::to_string(img).unwrap(),
            serde_json::to_string(&again).unwrap()
        ));
    }
    Ok(())
}

/// The image of the corpus scenario at `path`, run on the model.
fn image_of(path: &std::path::Path) -> fdlab::tools::image::Image {
    let src = std::fs::read_to_string(path).unwrap();
    let s = parse(&path.display().to_string(), &src).unwrap();
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
    use proptest::test_runner::{Config, TestCaseError, TestRng, TestRunner};
    use std::cell::Cell;

    let n = cases(48);
    let config = Config {
        cases: n,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::deterministic_rng(config.rng_algorithm);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let seen = Cell::new([0u32; 4]);
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
    // files in flight, epoll registrations (data in pipes is rare here:
    // the corpus has it).
    let c = seen.get();
    for (i, what) in ["processes", "a shared table", "files in flight", "an epoll"]
        .iter()
        .enumerate()
    {
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

/// The image of the scenario at `path` run on Linux, dumped from the live
/// helpers.
fn linux_image_of(path: &std::path::Path) -> Result<Image, String> {
    use fdlab::backend::LinuxBackend;
    let src = std::fs::read_to_string(path).unwrap();
    let s = parse(&path.display().to_string(), &src).unwrap();
    let mut l = LinuxBackend::new(support::fdlab_bin()).unwrap();
    run(&s, &mut l, false).map_err(|e| e.to_string())?;
    let procs = l.processes();
    let pids: Vec<i32> = procs.iter().map(|p| p.1).collect();
    let cap = l.capture(&pids, l.fds()).map_err(|e| e.to_string())?;
    let sandbox = l.sandbox().to_path_buf();
    let name = |p: &fdlab::backend::linux::capture::CapturedProc| {
        procs
            .iter()
            .find(|(_, pid)| *pid == p.pid)
            .unwrap()
            .0
            .clone()
    };
    Ok(dump::from_capture(&cap, name, Some(&sandbox)))
}

#[test]
fn linux_dumps_equal_model_dumps() {
    let mut failures = Vec::new();
    let trees = corpus(&repo("tests/fixtures/trees")).unwrap();
    for path in corpus(&repo("scenarios")).unwrap().into_iter().chain(trees) {
        let m = image_of(&path);
        match linux_image_of(&path) {
            Ok(l) if l == m => {}
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
    use fdlab::tools::restore::{differences, expected, numbers, Target};
    let mut failures = Vec::new();
    let trees = corpus(&repo("tests/fixtures/trees")).unwrap();
    for path in corpus(&repo("scenarios")).unwrap().into_iter().chain(trees) {
        let src = std::fs::read_to_string(&path).unwrap();
        let s = parse(&path.display().to_string(), &src).unwrap();
        let mut l1 = LinuxBackend::new(support::fdlab_bin()).unwrap();
        run(&s, &mut l1, false).unwrap();
        let root = l1.sandbox().to_path_buf();
        let img = l1.dump(Some(&root)).unwrap();
        let want = expected(&img);
        let opts = Options {
            root: Some(root.clone()),
            skip_unrestorable: true,
        };
        let (floor, _) = numbers(&img);
        let mut l2 = LinuxBackend::with_floor(support::fdlab_bin(), floor).unwrap();
        let mut m = ModelBackend::new();
        for (name, got) in [
            (
                "linux",
                restore(&img, &mut l2, &opts).and_then(|_| l2.dump(Some(&root))),
            ),
            (
                "model",
                restore(&img, &mut m, &opts).and_then(|_| m.dump(None)),
            ),
        ] {
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
