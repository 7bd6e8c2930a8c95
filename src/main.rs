//! The `fdlab` command, and the hidden `fdlab __helper` mode that runs
//! scenario processes for the Linux backend.
//!
//! The binary is `#![no_main]`: the helper mode must start before Rust's
//! runtime setup, which reopens descriptors 0, 1 and 2 on `/dev/null` when
//! they are closed (see `fdlab::linux::helper`).

#![no_main]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use fdlab::backend::{self, BackendError};
use fdlab::{check, compare, lang, run, Error};

#[derive(Parser)]
#[command(
    name = "fdlab",
    version,
    about = "Teaches and checks how operating systems keep file descriptors",
    long_about = "fdlab runs .fds scenarios (processes, descriptor tables, open files, \
                  SCM_RIGHTS, epoll) on a model of the BSD descriptor layer and on real \
                  Linux processes, prints what happened, strace style, with the resulting \
                  topology, and compares the two.\n\n\
                  Start with `fdlab check` (the built-in corpus on every backend) or \
                  `fdlab run scenarios/fork-shares-offset.fds --backend both`."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one scenario and print each call, failed expectations and the
    /// final topology. Exit 0 when every expectation holds (and, with
    /// `--backend both`, the backends agree), 1 otherwise, 2 when the
    /// scenario is invalid or a backend cannot run it.
    Run {
        /// The .fds file.
        file: PathBuf,
        /// Where to run it: the model, real Linux processes, or both in
        /// lockstep, compared step by step.
        #[arg(long, value_enum, default_value_t = BackendName::Model)]
        backend: BackendName,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
        /// Under each call, print the file(9) calls the model made, with
        /// each file's count before and after (model only).
        #[arg(long)]
        trace: bool,
        /// With `--backend both`: compare the topologies after every step,
        /// not only at the end.
        #[arg(long)]
        every_step: bool,
    },
    /// Generate random scenarios, run each on the model and on Linux in
    /// lockstep, and compare every step's result and topology. A
    /// disagreement shrinks to a minimal scenario, written as a .fds file
    /// whose expectations are Linux's answers. Exit 0 when all agree.
    Fuzz {
        /// How many scenarios.
        #[arg(long, default_value_t = 1000)]
        cases: u32,
        /// The random seed (default: from the clock; printed either way).
        #[arg(long)]
        seed: Option<u64>,
        /// The most operations per scenario.
        #[arg(long, default_value_t = 40)]
        len: usize,
        /// Where to write a minimal failing scenario.
        #[arg(long, default_value = "fuzz-failure.fds")]
        out: PathBuf,
    },
    /// Run the scenario corpus on every backend and print a table: one column
    /// per backend and whether model and Linux agree. Exit 0 when all pass
    /// and agree, 1 otherwise.
    Check {
        /// Scenario files or folders (default: the project's scenarios/).
        paths: Vec<PathBuf>,
        /// Print the rows as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendName {
    /// The model of the BSD descriptor layer (fdlab-model).
    Model,
    /// Real processes on this Linux kernel, observed with /proc and kcmp.
    Linux,
    /// Both, in lockstep: every step's result and the topologies compared.
    Both,
}

/// The C entry point: `fdlab __helper ...` goes to the helper before any
/// runtime setup; everything else is the command line.
#[no_mangle]
pub extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__helper") {
        fdlab::linux::helper::main(&args[2..]);
    }
    // SIGPIPE as Rust programs have it: a closed stdout is an error, not a
    // silent death.
    // SAFETY: installs SIG_IGN, which runs no code in this process.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let code = cli_main();
    // ExitCode has no public numeric value; report() prints nothing.
    if code == ExitCode::SUCCESS {
        0
    } else if code == ExitCode::from(1) {
        1
    } else {
        2
    }
}

fn cli_main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run {
            file,
            backend,
            json,
            trace,
            every_step,
        } => run_one(&file, backend, json, trace, every_step),
        Cmd::Check { paths, json } => check_all(paths, json),
        Cmd::Fuzz {
            cases,
            seed,
            len,
            out,
        } => fuzz(cases, seed, len, &out),
    }
}

fn fuzz(cases: u32, seed: Option<u64>, len: usize, out: &PathBuf) -> ExitCode {
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    println!("fuzzing {cases} scenarios of up to {len} operations, seed {seed}");
    let r = fdlab::fuzz::fuzz(cases, seed, len, &backend::helper_path());
    let secs = r.elapsed.as_secs_f64();
    println!(
        "{} scenarios ({} steps) in {secs:.1} s: {:.0} scenarios/s; Linux's timing mattered in {} \
         (the model followed up to {} states at once); {} stopped early",
        r.cases,
        r.steps,
        f64::from(r.cases) / secs.max(1e-9),
        r.branched,
        r.most_states,
        r.stopped_early
    );
    let c = &r.cost;
    println!(
        "time: process creation {:.1} s, control round trips {:.1} s, observation {:.1} s (of which kcmp {:.1} s), \
         the rest (the model, generation, shrinking) {:.1} s",
        c.spawn.as_secs_f64(),
        c.calls.as_secs_f64(),
        c.observe.as_secs_f64(),
        c.kcmp.as_secs_f64(),
        (secs - (c.spawn + c.calls + c.observe).as_secs_f64()).max(0.0)
    );
    if r.cost.descriptors > 0 {
        println!(
            "observation: {} kcmp calls for {} descriptors ({:.2} per descriptor; comparing all pairs: {}, {:.2} per descriptor)",
            r.cost.kcmp_calls,
            r.cost.descriptors,
            r.cost.kcmp_calls as f64 / r.cost.descriptors as f64,
            r.cost.all_pairs,
            r.cost.all_pairs as f64 / r.cost.descriptors as f64
        );
    }
    match r.failure {
        None => {
            println!("model and linux agree on every case");
            ExitCode::SUCCESS
        }
        Some((text, why)) => {
            if let Err(e) = std::fs::write(out, &text) {
                eprintln!("fdlab: cannot write {}: {e}", out.display());
            }
            println!(
                "DISAGREEMENT (minimal scenario written to {}):\n{why}\n{text}",
                out.display()
            );
            ExitCode::from(1)
        }
    }
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("fdlab: {e}");
    ExitCode::from(2)
}

fn run_one(
    file: &PathBuf,
    backend: BackendName,
    json: bool,
    trace: bool,
    every_step: bool,
) -> ExitCode {
    let src = match std::fs::read_to_string(file) {
        Ok(s) => s,
        Err(e) => {
            return fail(Error::Io {
                path: file.display().to_string(),
                source: e,
            })
        }
    };
    let scenario = match lang::parse(&file.display().to_string(), &src) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if backend == BackendName::Both {
        let c = (|| -> Result<compare::Comparison, BackendError> {
            let mut l = backend::by_name("linux")?;
            let m = Box::new(backend::ModelBackend::deferred());
            compare::run_both(&scenario, m, l.as_mut(), every_step)
        })();
        let c = match c {
            Ok(c) => c,
            Err(e) => return fail(Error::from(e)),
        };
        return finish(json, &c, c.passed(), || {
            let mut out = run::render_text(&c.linux);
            if c.states > 1 {
                out.push_str(&format!(
                    "\nLinux finishes some work later (the unix garbage collector, a pty's echo): the model \
                     followed up to {} states at once, keeping those that answered as Linux did\n",
                    c.states
                ));
            }
            if let Some((line, why)) = &c.stopped {
                out.push_str(&format!("\nthe comparison stopped at line {line}: {why}\n"));
            }
            if c.divergences.is_empty() && c.stopped.is_some() {
                out.push_str("\nmodel and linux agree on every step up to there\n");
            } else if c.divergences.is_empty() {
                out.push_str("\nmodel and linux agree on every step and on the topology\n");
            } else {
                out.push_str(&format!(
                    "\n{} divergences (model vs linux):\n",
                    c.divergences.len()
                ));
                out.push_str(&compare::render(&c.divergences));
            }
            out
        });
    }
    let name = if backend == BackendName::Linux {
        "linux"
    } else {
        "model"
    };
    let report = backend::by_name(name).and_then(|mut b| run::run(&scenario, b.as_mut(), trace));
    let report = match report {
        Ok(r) => r,
        Err(e) => return fail(Error::from(e)),
    };
    finish(json, &report, report.passed(), || run::render_text(&report))
}

/// Prints `value` as JSON, or `text()`, and exits 0 if `passed`, else 1.
fn finish<T: serde::Serialize>(
    json: bool,
    value: &T,
    passed: bool,
    text: impl FnOnce() -> String,
) -> ExitCode {
    if json {
        // Reports and rows are plain data: serializing them cannot fail.
        println!(
            "{}",
            serde_json::to_string_pretty(value).expect("plain data serializes")
        );
    } else {
        print!("{}", text());
    }
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn check_all(paths: Vec<PathBuf>, json: bool) -> ExitCode {
    let paths = if paths.is_empty() {
        let here = PathBuf::from("scenarios");
        vec![if here.is_dir() {
            here
        } else {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios")
        }]
    } else {
        paths
    };
    let mut files = Vec::new();
    for p in &paths {
        if p.is_dir() {
            match check::corpus(p) {
                Ok(f) => files.extend(f),
                Err(e) => return fail(e),
            }
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            return fail(format!("{}: no such file or folder", p.display()));
        }
    }
    if files.is_empty() {
        return fail("no .fds scenarios found");
    }
    let rows = check::check(&files);
    let passed = rows.iter().all(check::Row::passed);
    finish(json, &rows, passed, || check::render(&rows))
}
