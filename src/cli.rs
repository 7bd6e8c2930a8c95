//! The command line: `fdlab run`, `check` and `fuzz`. It parses arguments,
//! calls the tools, and prints what they return through the render floor.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::backend::api::BackendError;
use crate::backend::linux::backend::{helper_path, LinuxBackend};
use crate::backend::model::ModelBackend;
use crate::backend::registry::by_name;
use crate::lang;
use crate::render::picture::Picture;
use crate::render::{dot, json, svg, text};
use crate::tools::error::Error;
use crate::tools::inspect::{self, Filters, Target};
use crate::tools::{bench, check, compare, fuzz, run};
use fdlab_model::kind::FileType;

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
        /// Also draw the final topology (processes and their tables, open
        /// files, objects) as SVG, into FILE (`-`: standard output).
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
        /// The same picture as Graphviz DOT.
        #[arg(long, value_name = "FILE")]
        dot: Option<PathBuf>,
        /// With `--backend linux`: keep the scenario's processes alive after
        /// the run, and print their pids (on standard error), so that they
        /// can be looked at from outside (`fdlab inspect --tree PID`, `ls -l
        /// /proc/PID/fd`). They end when standard input ends (Ctrl-D) or on
        /// Ctrl-C.
        #[arg(long)]
        hold: bool,
    },
    /// Show who shares which open file in live processes: every descriptor
    /// of each process, the open files they name (grouped: one open file,
    /// every descriptor of it, in every process), the objects several open
    /// files reach (two opens of one path), the tables processes share, the
    /// other end of every pipe, unix socket and terminal, and what each
    /// epoll watches, even under numbers closed since. Sharing is found with
    /// kcmp(2), which needs ptrace access to each process (the same user, or
    /// root).
    ///
    /// Processes keep running while they are inspected unless `--freeze`
    /// stops them: a process that exits, or a descriptor that closes,
    /// meanwhile is left out and named in the warnings. Exit 0 when
    /// everything asked for was inspected, 1 when the result is partial
    /// (warnings), 2 when it could not be made (no such process).
    #[command(
        after_help = "Examples:\n  fdlab inspect $$                    this shell\n  \
                      fdlab inspect --tree 1234 --shared   a process tree, only what is shared\n  \
                      fdlab inspect --all --kind pipe      every pipe this user can see\n  \
                      fdlab inspect --tree 1234 --json     the topology, as `fdlab run --json` prints it"
    )]
    Inspect {
        /// Processes to inspect.
        pids: Vec<i32>,
        /// A process and all its descendants.
        #[arg(long, value_name = "PID", conflicts_with = "all")]
        tree: Option<i32>,
        /// Every process this user may inspect.
        #[arg(long)]
        all: bool,
        /// Each thread as a process of its own (by default threads are
        /// folded into their process).
        #[arg(long)]
        threads: bool,
        /// Stop the processes (SIGSTOP) while they are inspected, so that
        /// the snapshot is consistent; they are resumed afterwards, also on
        /// an error or Ctrl-C.
        #[arg(long)]
        freeze: bool,
        /// Show only these processes' descriptors (sharing is still found
        /// among all the inspected ones).
        #[arg(long = "pid", value_name = "PID")]
        only_pids: Vec<i32>,
        /// Show only open files whose target matches this glob (`*`, `?`,
        /// `[...]`, and `\\` before a character that stands for itself),
        /// e.g. '/tmp/*' or 'pipe:*'.
        #[arg(long, value_name = "GLOB")]
        path: Option<String>,
        /// Show only open files of this kind.
        #[arg(long, value_enum)]
        kind: Vec<KindName>,
        /// Show only what is shared: open files with several descriptors,
        /// objects several open files reach, shared tables.
        #[arg(long)]
        shared: bool,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
        /// Also draw the processes, their tables, open files and objects
        /// as SVG, into FILE (`-`: standard output).
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
        /// The same picture as Graphviz DOT.
        #[arg(long, value_name = "FILE")]
        dot: Option<PathBuf>,
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
    /// Measure fdlab beside the outside tools that do the same job, on trees
    /// it builds itself, in one run: report ratios, the machines are noisy.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
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

#[derive(Subcommand)]
enum BenchWhat {
    /// `fdlab inspect` on a reference tree (by default 100 processes of
    /// 1,000 descriptors: a fifth inherited from one parent, seven tenths
    /// separate opens of the same paths in every process, a tenth dups),
    /// split into reading /proc and kcmp, with kcmp calls per descriptor,
    /// beside `lsof -p` and `lsfd -p` on the same processes; and a tree
    /// with no repeated key, which must cost no kcmp call between files.
    Inspect {
        #[arg(long, default_value_t = 100)]
        processes: usize,
        /// Descriptors per process (at most 1000).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(10..=1000))]
        fds: u32,
        /// Inspections of the tree; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KindName {
    Regular,
    Directory,
    Chardev,
    Pipe,
    Socket,
    Epoll,
    Eventfd,
    /// Anything else: inet sockets, timerfds, signalfds, block devices.
    Other,
}

impl KindName {
    fn file_type(self) -> FileType {
        match self {
            KindName::Regular => FileType::Regular,
            KindName::Directory => FileType::Directory,
            KindName::Chardev => FileType::Chardev,
            KindName::Pipe => FileType::Pipe,
            KindName::Socket => FileType::Socket,
            KindName::Epoll => FileType::Epoll,
            KindName::Eventfd => FileType::Eventfd,
            KindName::Other => FileType::Unknown,
        }
    }
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

/// Runs the command line; returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run {
            file,
            backend,
            json,
            trace,
            every_step,
            hold,
            svg,
            dot,
        } => {
            if hold && backend != BackendName::Linux {
                return fail("--hold keeps real processes alive: it needs --backend linux");
            }
            let pictures = Pictures { svg, dot };
            run_one(&file, backend, json, trace, every_step, hold, &pictures)
        }
        Cmd::Inspect {
            pids,
            tree,
            all,
            threads,
            freeze,
            only_pids,
            path,
            kind,
            shared,
            json,
            svg,
            dot,
        } => {
            let target =
                match (tree, all, pids.is_empty()) {
                    (Some(root), _, true) => Target::Tree(root),
                    (None, true, true) => Target::All,
                    (None, false, false) => Target::Pids(pids),
                    (None, false, true) => return fail(
                        "inspect what? give PIDs, --tree PID or --all (see fdlab inspect --help)",
                    ),
                    _ => return fail("give PIDs, --tree PID or --all, one of them"),
                };
            let delay = std::env::var("FDLAB_INSPECT_DELAY_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .map_or(std::time::Duration::ZERO, std::time::Duration::from_millis);
            let req = inspect::Request {
                target,
                threads,
                freeze,
                filters: Filters {
                    pids: only_pids,
                    path,
                    kinds: kind.iter().map(|k| k.file_type()).collect(),
                    shared,
                },
                workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
                delay,
            };
            match inspect::inspect(&req) {
                Ok(ins) => {
                    let pic = Picture::of(&ins.topology, "fdlab inspect");
                    if let Err(e) = draw(&pic, svg.as_deref(), dot.as_deref()) {
                        return fail(e);
                    }
                    finish(json, &ins, !ins.partial, || text::inspection(&ins))
                }
                Err(e) => fail(e),
            }
        }
        Cmd::Check { paths, json } => check_all(paths, json),
        Cmd::Bench {
            what:
                BenchWhat::Inspect {
                    processes,
                    fds,
                    runs,
                    json,
                },
        } => {
            let shape = bench::TreeShape {
                processes: processes.max(1),
                fds: fds as usize,
            };
            match bench::inspect_bench(shape, runs, &|m| eprintln!("fdlab bench: {m}")) {
                Ok(r) => finish(json, &r, true, || text::inspect_bench(&r)),
                Err(e) => fail(Error::from(e)),
            }
        }
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
    let r = fuzz::fuzz(cases, seed, len, &helper_path());
    if let Some(f) = &r.failure {
        if let Err(e) = std::fs::write(out, text::finding(f)) {
            eprintln!("fdlab: cannot write {}: {e}", out.display());
        }
    }
    print!("{}", text::fuzz_summary(&r, &out.display().to_string()));
    if r.failure.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
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
    hold: bool,
    pictures: &Pictures,
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
            let mut l = by_name("linux")?;
            let m = Box::new(ModelBackend::deferred());
            compare::run_both(&scenario, m, l.as_mut(), every_step)
        })();
        let c = match c {
            Ok(c) => c,
            Err(e) => return fail(Error::from(e)),
        };
        if let Err(e) = pictures.draw(&c.linux.topology, file) {
            return fail(e);
        }
        return finish(json, &c, c.passed(), || text::comparison(&c));
    }
    if hold {
        return run_and_hold(&scenario, json, pictures, file);
    }
    let name = if backend == BackendName::Linux {
        "linux"
    } else {
        "model"
    };
    let report = by_name(name).and_then(|mut b| run::run(&scenario, b.as_mut(), trace));
    let report = match report {
        Ok(r) => r,
        Err(e) => return fail(Error::from(e)),
    };
    if let Err(e) = pictures.draw(&report.topology, file) {
        return fail(e);
    }
    finish(json, &report, report.passed(), || text::report(&report))
}

/// Where `fdlab run` draws its picture, if anywhere.
struct Pictures {
    svg: Option<PathBuf>,
    dot: Option<PathBuf>,
}

impl Pictures {
    /// Draws the picture of `t`, titled by the scenario `file`.
    fn draw(&self, t: &fdlab_model::Topology, file: &std::path::Path) -> Result<(), Error> {
        if self.svg.is_none() && self.dot.is_none() {
            return Ok(());
        }
        let name = file.file_name().map_or_else(
            || file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        draw(
            &Picture::of(t, &name),
            self.svg.as_deref(),
            self.dot.as_deref(),
        )
    }
}

/// Runs `scenario` on Linux, prints the report, then keeps its processes
/// alive until standard input ends, saying their pids on standard error.
fn run_and_hold(
    scenario: &lang::Scenario,
    json: bool,
    pictures: &Pictures,
    file: &std::path::Path,
) -> ExitCode {
    let mut b = match LinuxBackend::new(&helper_path()) {
        Ok(b) => b,
        Err(e) => return fail(Error::from(e)),
    };
    let report = match run::run(scenario, &mut b, false) {
        Ok(r) => r,
        Err(e) => return fail(Error::from(e)),
    };
    if let Err(e) = pictures.draw(&report.topology, file) {
        return fail(e);
    }
    let code = finish(json, &report, report.passed(), || text::report(&report));
    let held: Vec<String> = report
        .topology
        .processes
        .iter()
        .filter_map(|p| b.pid_of(&p.name).map(|pid| format!("{}={pid}", p.name)))
        .collect();
    eprintln!(
        "fdlab: holding {} (sandbox {}); end of input (Ctrl-D) or Ctrl-C ends them",
        held.join(" "),
        b.sandbox().display()
    );
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
    drop(b);
    code
}

/// Writes the picture as SVG and DOT where asked (`-`: standard output).
///
/// Errors: a file cannot be written.
fn draw(
    pic: &Picture,
    svg_to: Option<&std::path::Path>,
    dot_to: Option<&std::path::Path>,
) -> Result<(), Error> {
    for (to, text) in [
        (svg_to, svg_to.map(|_| svg::svg(pic))),
        (dot_to, dot_to.map(|_| dot::dot(pic))),
    ] {
        let (Some(path), Some(text)) = (to, text) else {
            continue;
        };
        if path == std::path::Path::new("-") {
            print!("{text}");
        } else {
            std::fs::write(path, text).map_err(|e| Error::Io {
                path: path.display().to_string(),
                source: e,
            })?;
        }
    }
    Ok(())
}

/// Prints `value` as JSON, or `text()`, and exits 0 if `passed`, else 1.
fn finish<T: serde::Serialize>(
    json: bool,
    value: &T,
    passed: bool,
    text: impl FnOnce() -> String,
) -> ExitCode {
    if json {
        println!("{}", json::pretty(value));
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
    finish(json, &rows, passed, || text::check_table(&rows))
}
