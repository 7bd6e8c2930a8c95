//! The command line: `fdlab run`, `check`, `fuzz`, `inspect`, `dump`,
//! `restore` and `bench`. It parses arguments, calls the tools, and prints
//! what they return through the render floor.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::backend::api::BackendError;
use crate::backend::linux::backend::{helper_path, LinuxBackend};
use crate::backend::model::ModelBackend;
use crate::lang;
use crate::render::picture::Picture;
use crate::render::{dot, html, json, svg, text};
use crate::tools::error::Error;
use crate::tools::image::{self, Image};
use crate::tools::inspect::{self, Filters, Target};
use crate::tools::restore::{self, RestoreError};
use crate::tools::{bench, check, compare, dump, fuzz, run};
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
    #[command(after_long_help = lang::reference())]
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
        /// Write an HTML page into FILE that steps through the run: the
        /// picture after every statement, with what it answered, beside
        /// the scenario (arrow keys step). One backend: model or linux.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// With `--backend linux`: keep the scenario's processes alive after
        /// the run, and print their pids (on standard error), so that they
        /// can be looked at from outside (`fdlab inspect --tree PID`, `ls -l
        /// /proc/PID/fd`). They end when standard input ends (Ctrl-D) or on
        /// Ctrl-C.
        #[arg(long)]
        hold: bool,
        /// After the run, dump the scenario's processes into an image
        /// (from Linux with `--backend linux` or `both`, else from the
        /// model), paths relative to the scenario's folder; the files the
        /// scenario made are saved beside it, in IMAGE.files, where
        /// `fdlab restore IMAGE` finds them.
        #[arg(long, value_name = "IMAGE")]
        dump: Option<PathBuf>,
    },
    /// Dump live processes into an image: the process tree and the tables
    /// they share, every descriptor (number, close-on-exec, open file),
    /// every open file (kind, path, access mode and status flags, offset;
    /// pipes with the bytes queued in them; socket pairs with the messages
    /// queued on them and the files in flight in those; epoll interest
    /// lists with the numbers registrations were made under and the files
    /// they were made for; eventfd counters), and what cannot be restored,
    /// with the reason. Nothing is taken from the processes: pipes are
    /// read with tee(2), socket queues with MSG_PEEK, which takes ptrace
    /// attach access (root, or kernel.yama.ptrace_scope 0).
    ///
    /// Exit 0 when everything was read, 1 when something could not be (it
    /// is listed), 2 when no image could be made.
    #[command(
        after_help = "Examples:\n  fdlab dump --tree 1234 -o tree.json   a process and its descendants\n  \
                      fdlab dump 1234 1240 --freeze         two processes, stopped while read\n  \
                      fdlab restore tree.json --verify      make the tree again, and check it"
    )]
    Dump {
        /// Processes to dump.
        pids: Vec<i32>,
        /// A process and all its descendants.
        #[arg(long, value_name = "PID")]
        tree: Option<i32>,
        /// Where to write the image (default: standard output).
        #[arg(short, long, value_name = "IMAGE")]
        output: Option<PathBuf>,
        /// Stop the processes (SIGSTOP) while they are read, and resume
        /// them after, also on an error or Ctrl-C.
        #[arg(long)]
        freeze: bool,
    },
    /// Restore an image (from `fdlab dump` or `fdlab run --dump`): make the
    /// process tree again, with its shared tables, every descriptor at its
    /// number, the sharing of open files within and across processes,
    /// close-on-exec, access modes, status flags, offsets, pipes and socket
    /// pairs with what was queued in them and the files in flight, epoll
    /// registrations under their numbers, eventfd counters.
    ///
    /// Each open file is made once, by its master, and sent to every other
    /// process that holds it over a unix socket, up to 253 a message; work
    /// that needs files from elsewhere (a queued message that carries
    /// files, an epoll registration) waits until they are there. Restore
    /// never creates or truncates a file, and opens paths only under
    /// `--root` when it is given. A failure ends every process it made.
    ///
    /// Exit 0 when restored (and with `--verify`, equal to the image; with
    /// `--backend both`, the same on both), 1 when a verification differs,
    /// 2 when the image is invalid or the restore failed.
    #[command(
        after_help = "Examples:\n  fdlab run scenarios/scm-rights-in-flight.fds --backend linux --dump x.json\n  \
                      fdlab restore x.json --backend both --verify   restore it on Linux and on the model\n  \
                      fdlab restore x.json --backend linux --plan    each process's schedule\n  \
                      fdlab restore x.json --backend linux --hold    keep the tree to look at it"
    )]
    Restore {
        /// The image.
        image: PathBuf,
        /// Where to restore: the model, real Linux processes, or both (the
        /// two restored trees must agree).
        #[arg(long, value_enum, default_value_t = BackendName::Model)]
        backend: BackendName,
        /// Dump the restored tree and compare it with the image.
        #[arg(long)]
        verify: bool,
        /// With `--backend linux`: keep the restored processes alive, and
        /// print their pids (on standard error), until standard input ends
        /// (Ctrl-D) or Ctrl-C.
        #[arg(long)]
        hold: bool,
        /// Open the image's paths under this folder only (an absolute path
        /// is taken below it). Default: the folder beside the image
        /// (IMAGE.files) for an image with relative paths.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Print each process's schedule: every open step and its answer,
        /// what it served to whom, what waited for what.
        #[arg(long)]
        plan: bool,
        /// Restore an image with parts that cannot be restored, leaving
        /// them out.
        #[arg(long)]
        skip_unrestorable: bool,
        /// On the model: under each process's schedule, every system call
        /// of the restore and the file(9) calls it made (falloc, FREF,
        /// FRELE, fdinstall...), with each file's count.
        #[arg(long)]
        trace: bool,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
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
    ///
    /// After a call Linux is read only where the call may have changed
    /// something; with FDLAB_CHECK_OBSERVATION=1 in the environment every
    /// such reading is also checked against one that reads everything.
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
        /// How long Linux's deferred work (the unix garbage collector) may
        /// take at the end of a scenario, in milliseconds, before what it
        /// has not done counts as a disagreement.
        #[arg(long, value_name = "MS", default_value_t = 2000)]
        settle_ms: u64,
        /// Scenarios compared at once (default: twice the cores, since a
        /// scenario mostly waits for its processes). The seed gives the
        /// same scenarios and the same verdicts whatever the number.
        #[arg(long, value_name = "N")]
        jobs: Option<usize>,
        /// Plant a known bug in the model, to see whether (and how fast)
        /// fuzzing finds it. Only in builds with the `mutants` feature.
        #[cfg(feature = "mutants")]
        #[arg(long, value_enum)]
        plant: Option<Plant>,
    },
    /// Print the scenario language: its statements, every call with how it
    /// is written, and the expectations (the book's chapter "The scenario
    /// language" explains each).
    Language,
    /// Measure fdlab beside the outside tools that do the same job, on trees
    /// it builds itself, in one run: report ratios, the machines are noisy.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
    /// Run the scenario corpus on every backend and print a table: one column
    /// per backend and whether model and Linux agree. Exit 0 when all pass
    /// and agree, 1 otherwise.
    ///
    /// With --exercise NAME: the book's exercise NAME. Alone, it prints the
    /// task; with a FILE, the kernel judges the answer in it (exit 0:
    /// right, 1: not yet).
    #[command(
        after_help = "Examples:\n  fdlab check\n  fdlab check scenarios/dup-shares-offset.fds\n  fdlab check --exercise one-offset-two-numbers\n  fdlab check --exercise one-offset-two-numbers my-answer.fds"
    )]
    Check {
        /// Scenario files or folders (default: the project's scenarios/);
        /// with --exercise, the answer's file.
        paths: Vec<PathBuf>,
        /// Print the rows (or the verdict) as JSON.
        #[arg(long)]
        json: bool,
        /// An exercise of the book, by name (`list`: every exercise).
        #[arg(long, value_name = "NAME")]
        exercise: Option<String>,
    },
}

#[derive(Subcommand)]
enum BenchWhat {
    /// `fdlab restore` on real processes, end to end without `--verify`:
    /// a tree of processes sharing every descriptor by fork (10 x 1,000
    /// by default), and a mixed one (100 x 1,000: a fifth inherited, three
    /// fifths separate opens, a tenth dups, a tenth pipe ends with bytes
    /// queued): wall time, descriptors per second, messages, descriptors
    /// per message; beside each restore, its floor: the system calls no
    /// restore of that tree can avoid, made by a program that does nothing
    /// else. With `--criu SCRIPT`, CRIU restores the shared shape in the
    /// same run (`SCRIPT shared PROCESSES FDS` prints its restore time in
    /// seconds on its last line).
    Restore {
        #[arg(long, default_value_t = 10)]
        shared_processes: usize,
        #[arg(long, default_value_t = 100)]
        mixed_processes: usize,
        /// Descriptors per process.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(10..=10000))]
        fds: u32,
        /// Restores of each tree; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(long, value_name = "SCRIPT")]
        criu: Option<PathBuf>,
        /// The floor of one tree, in a process of its own (used by the
        /// bench): SHAPE PROCESSES FDS DIR.
        #[arg(long, hide = true, num_args = 4, value_names = ["SHAPE", "PROCESSES", "FDS", "DIR"])]
        floor_side: Option<Vec<String>>,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
    /// What one descriptor adds to `fork` (its copy, and its close when the
    /// child exits), in the kernel and in the model, side by side: the
    /// difference between forking a process that holds --fds descriptors
    /// and one that holds one, in alternating batches; and what a snapshot
    /// of the model's world (`World::clone`) costs with --fds descriptors.
    #[command(after_help = "Example:\n  fdlab bench fork --fds 1024 --rounds 2000")]
    Fork {
        /// Descriptors held by the loaded process.
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(2..=10000))]
        fds: u32,
        /// Forks in each batch (7 batches of each shape; the median counts).
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
        rounds: u32,
        /// The kernel's side, in a process of its own (used by the bench).
        #[arg(long, hide = true)]
        kernel_side: bool,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
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
            html,
            dump,
        } => {
            if trace && backend == BackendName::Linux {
                return fail(
                    "--trace shows the model's file(9) calls: it needs --backend model or both",
                );
            }
            if every_step && backend != BackendName::Both {
                return fail("--every-step compares model and Linux after each step: it needs --backend both");
            }
            if hold && backend != BackendName::Linux {
                return fail("--hold keeps real processes alive: it needs --backend linux");
            }
            if html.is_some() && (hold || backend == BackendName::Both) {
                return fail("--html steps through one backend's run: it needs --backend model or linux, without --hold");
            }
            if hold && dump.is_some() {
                return fail(
                    "--hold and --dump: dump the held processes with `fdlab dump --tree PID`",
                );
            }
            let pictures = Pictures { svg, dot, html };
            let opts = RunOptions {
                json,
                trace,
                every_step,
                hold,
                dump,
            };
            run_one(&file, backend, &opts, &pictures)
        }
        Cmd::Dump {
            pids,
            tree,
            output,
            freeze,
        } => {
            let target = match (tree, pids.is_empty()) {
                (Some(root), true) => Target::Tree(root),
                (None, false) => Target::Pids(pids),
                (None, true) => {
                    return fail("dump what? give PIDs or --tree PID (see fdlab dump --help)")
                }
                (Some(_), false) => return fail("give PIDs or --tree PID, not both"),
            };
            dump_live(&target, freeze, output.as_deref())
        }
        Cmd::Restore {
            image,
            backend,
            verify,
            hold,
            root,
            plan,
            skip_unrestorable,
            trace,
            json,
        } => {
            if hold && backend != BackendName::Linux {
                return fail("--hold keeps real processes alive: it needs --backend linux");
            }
            if trace && backend == BackendName::Linux {
                return fail(
                    "--trace shows the model's file(9) calls: it needs --backend model or both",
                );
            }
            let how = RestoreHow {
                verify,
                hold,
                plan: plan || trace,
                trace,
                json,
            };
            restore_image(&image, backend, root, skip_unrestorable, &how)
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
        Cmd::Check {
            paths,
            json,
            exercise: Some(name),
        } => check_exercise(&name, &paths, json),
        Cmd::Check { paths, json, .. } => check_all(paths, json),
        Cmd::Language => {
            print!("{}", lang::reference());
            ExitCode::SUCCESS
        }
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
        Cmd::Bench {
            what:
                BenchWhat::Restore {
                    shared_processes,
                    mixed_processes,
                    fds,
                    runs,
                    criu,
                    floor_side,
                    json,
                },
        } => {
            use crate::tools::bench::restore::{floor_side as floor, restore_bench, Shape};
            if let Some(args) = floor_side {
                let shape = if args[0] == "shared" {
                    Shape::Shared
                } else {
                    Shape::Mixed
                };
                let n = |s: &str| s.parse::<usize>().unwrap_or(1);
                return match floor(shape, n(&args[1]), n(&args[2]), Path::new(&args[3])) {
                    Ok(seconds) => {
                        println!("{seconds}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(format!("the floor: {e}")),
                };
            }
            // Ctrl-C stops between restores, and the bench's folder goes.
            crate::backend::linux::kernel::catch_interrupt();
            let fds = fds as usize;
            let shapes = [
                (Shape::Shared, shared_processes.max(1), fds),
                (Shape::Mixed, mixed_processes.max(1), fds),
            ];
            match restore_bench(&shapes, runs, criu.as_deref(), &|m| {
                eprintln!("fdlab bench: {m}")
            }) {
                Ok(r) => finish(json, &r, true, || text::restore_bench(&r)),
                Err(crate::tools::bench::restore::BenchError::Interrupted) => {
                    eprintln!("fdlab bench: interrupted; nothing is left behind");
                    ExitCode::from(130)
                }
                Err(e) => fail(e),
            }
        }
        Cmd::Bench {
            what:
                BenchWhat::Fork {
                    fds,
                    rounds,
                    kernel_side,
                    json,
                },
        } => {
            use crate::tools::bench::fork;
            if kernel_side {
                return match fork::kernel_side(fds, rounds) {
                    Ok((base, loaded)) => {
                        println!("{base} {loaded}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(format!("the kernel's side: {e}")),
                };
            }
            match fork::fork_bench(fds, rounds) {
                Ok(r) => finish(json, &r, true, || text::fork_bench(&r)),
                Err(e) => fail(e.to_string()),
            }
        }
        Cmd::Fuzz {
            cases,
            seed,
            len,
            out,
            settle_ms,
            jobs,
            #[cfg(feature = "mutants")]
            plant,
        } => {
            #[cfg(feature = "mutants")]
            let model = move || plant.map_or_else(ModelBackend::deferred, Plant::model);
            #[cfg(not(feature = "mutants"))]
            let model = ModelBackend::deferred;
            let settle = std::time::Duration::from_millis(settle_ms);
            let jobs = jobs
                .unwrap_or_else(|| 2 * std::thread::available_parallelism().map_or(1, |n| n.get()));
            if jobs == 0 {
                return fail("--jobs 0: at least one scenario must run at a time");
            }
            fuzz(cases, seed, len, jobs, &out, &model, settle)
        }
    }
}

/// The model bugs `fdlab fuzz --plant` can plant.
#[cfg(feature = "mutants")]
#[derive(Clone, Copy, ValueEnum)]
enum Plant {
    /// The unix collector also frees sockets a named socket's queue holds.
    GcOverEager,
    /// `dup` forgets the reference its new slot must hold.
    DupForgetsRef,
    /// `exec` closes close-on-exec descriptors in a table it still shares.
    ExecKeepsShared,
}

#[cfg(feature = "mutants")]
impl Plant {
    /// A model with the bug, its invariants unchecked as in a release build:
    /// the comparison with Linux alone must find it.
    fn model(self) -> ModelBackend {
        use fdlab_model::mutant::Mutant;
        let mut m = ModelBackend::deferred();
        m.world_mut().plant(match self {
            Plant::GcOverEager => Mutant::GcOverEager,
            Plant::DupForgetsRef => Mutant::DupForgetsRef,
            Plant::ExecKeepsShared => Mutant::ExecKeepsShared,
        });
        m.world_mut().set_checked(false);
        m
    }
}

fn fuzz(
    cases: u32,
    seed: Option<u64>,
    len: usize,
    jobs: usize,
    out: &PathBuf,
    model: &(dyn Fn() -> ModelBackend + Sync),
    settle: std::time::Duration,
) -> ExitCode {
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    println!("fuzzing {cases} scenarios of up to {len} operations, seed {seed}, {jobs} at a time");
    // A bar on standard error, drawn only on a terminal; Ctrl-C stops the
    // run where it is and still prints the summary (a second one kills).
    let bar = indicatif::ProgressBar::new(u64::from(cases));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} scenarios, {per_sec}, {eta} left {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    crate::backend::linux::kernel::catch_interrupt();
    // Not a terminal (a CI log): a plain line every 30 seconds instead.
    let plain = !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let started = std::time::Instant::now();
    let last_line = std::cell::Cell::new(started);
    let progress = |p: fuzz::Progress| {
        if p.shrinking {
            bar.set_message(format!("shrinking a disagreement ({} tried)", p.done));
        } else {
            bar.set_position(u64::from(p.done));
        }
        if plain && last_line.get().elapsed() >= std::time::Duration::from_secs(30) {
            last_line.set(std::time::Instant::now());
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "fdlab fuzz: {} of {cases} scenarios in {secs:.0} s ({:.0}/s){}",
                p.done,
                f64::from(p.done) / secs.max(1e-9),
                if p.shrinking {
                    ", shrinking a disagreement"
                } else {
                    ""
                }
            );
        }
    };
    let watch = fuzz::Watch {
        progress: &progress,
        stop: &crate::backend::linux::kernel::interrupted,
    };
    let r = fuzz::fuzz(
        cases,
        seed,
        len,
        jobs,
        &helper_path(),
        model,
        settle,
        &watch,
    );
    bar.finish_and_clear();
    if let Some(f) = r.failure.as_ref().filter(|f| !text::finding(f).is_empty()) {
        if let Err(e) = std::fs::write(out, text::finding(f)) {
            eprintln!("fdlab: cannot write {}: {e}", out.display());
        }
    }
    print!("{}", text::fuzz_summary(&r, &out.display().to_string()));
    if r.failure.is_none() && r.interrupted {
        // As a shell reports a command that SIGINT ended.
        ExitCode::from(130)
    } else if r.failure.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("fdlab: {e}");
    ExitCode::from(2)
}

/// How `fdlab run` runs and prints.
struct RunOptions {
    json: bool,
    trace: bool,
    every_step: bool,
    hold: bool,
    dump: Option<PathBuf>,
}

fn run_one(file: &Path, backend: BackendName, o: &RunOptions, pictures: &Pictures) -> ExitCode {
    let RunOptions {
        json,
        trace,
        every_step,
        hold,
        ref dump,
    } = *o;
    let scenario = match lang::load(file) {
        Ok(s) => s,
        // Bad input: `file:line:col: message`, as compilers say it.
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if backend == BackendName::Both {
        let c = (|| -> Result<(compare::Comparison, LinuxBackend), BackendError> {
            let mut l = LinuxBackend::new(&helper_path())?;
            let m = Box::new(ModelBackend::deferred());
            Ok((compare::run_both(&scenario, m, &mut l, every_step)?, l))
        })();
        let (c, mut l) = match c {
            Ok(c) => c,
            Err(e) => return fail(Error::from(e)),
        };
        let flights = match pictures.flights(&mut l, &c.linux.topology) {
            Ok(f) => f,
            Err(e) => return fail(e),
        };
        if let Err(e) = pictures.draw(&c.linux.topology, &flights, file) {
            return fail(e);
        }
        if let Some(to) = dump {
            if let Err(e) = dump_linux_run(&mut l, to) {
                return fail(e);
            }
        }
        return finish(json, &c, c.passed(), || text::comparison(&c));
    }
    if hold {
        return run_and_hold(&scenario, json, pictures, file);
    }
    // The topology after every statement only for a page that shows it.
    let filmed = pictures.html.is_some();
    let go = |b: &mut dyn crate::backend::Backend| -> Filmed {
        let r = if filmed {
            run::run_frames(&scenario, b, trace)
        } else {
            run::run(&scenario, b, trace).map(|r| (r, Vec::new()))
        };
        let (r, frames) = r.map_err(|e| Error::from(e).to_string())?;
        let flights = pictures.flights(b, &r.topology)?;
        Ok((r, frames, flights))
    };
    type Filmed = Result<(run::Report, Vec<run::Frame>, Vec<run::Flight>), String>;
    let report: Filmed = if backend == BackendName::Linux {
        (|| {
            let mut l =
                LinuxBackend::new(&helper_path()).map_err(|e| Error::from(e).to_string())?;
            let r = go(&mut l)?;
            if let Some(to) = dump {
                dump_linux_run(&mut l, to)?;
            }
            Ok(r)
        })()
    } else {
        (|| {
            let mut m = ModelBackend::new();
            let r = go(&mut m)?;
            if let Some(to) = dump {
                dump_model_run(&m, to)?;
            }
            Ok(r)
        })()
    };
    let (report, frames, flights) = match report {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if let Err(e) = pictures
        .draw(&report.topology, &flights, file)
        .and_then(|()| pictures.film(&report, &frames, file))
    {
        return fail(e);
    }
    finish(json, &report, report.passed(), || text::report(&report))
}

/// `fdlab run --dump` on Linux: the image of the scenario's processes,
/// paths relative to its sandbox, whose files are saved beside it.
fn dump_linux_run(l: &mut LinuxBackend, to: &Path) -> Result<(), String> {
    let sandbox = l.sandbox().to_path_buf();
    let img = restore::Target::dump(l, Some(&sandbox)).map_err(|e| e.to_string())?;
    save_run_image(&img, to, |dir| dump::save_sandbox(&sandbox, dir))
}

/// `fdlab run --dump` on the model.
fn dump_model_run(m: &ModelBackend, to: &Path) -> Result<(), String> {
    let img = dump::from_model(m.world());
    save_run_image(&img, to, |dir| dump::save_model_files(m.world(), dir))
}

/// Writes a run's image, and its files beside it when it names any.
fn save_run_image(
    img: &Image,
    to: &Path,
    save: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<(), String> {
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    dump::write_image(img, to).map_err(|e| io(to, e))?;
    if img.relative_path().is_some() && to != Path::new("-") {
        let dir = dump::files_dir(to);
        save(&dir).map_err(|e| io(&dir, e))?;
    }
    Ok(())
}

/// `fdlab dump`: the image of live processes, and a summary on standard
/// error.
fn dump_live(target: &Target, freeze: bool, output: Option<&Path>) -> ExitCode {
    let d = match dump::live(target, freeze, &helper_path()) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let to = output.unwrap_or(Path::new("-"));
    if let Err(e) = dump::write_image(&d.image, to) {
        return fail(format!("{}: {e}", to.display()));
    }
    let name = if to == Path::new("-") {
        "standard output".to_string()
    } else {
        to.display().to_string()
    };
    eprint!("{}", text::dumped(&d, &name));
    if d.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// How `fdlab restore` reports.
struct RestoreHow {
    verify: bool,
    hold: bool,
    plan: bool,
    trace: bool,
    json: bool,
}

/// `fdlab restore`: reads and validates the image, restores it on the
/// backends asked for, and reports.
fn restore_image(
    path: &Path,
    backend: BackendName,
    root: Option<PathBuf>,
    skip_unrestorable: bool,
    how: &RestoreHow,
) -> ExitCode {
    let file = path.display().to_string();
    let text_in = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return fail(Error::Io {
                path: file,
                source: e,
            })
        }
    };
    let img = match image::parse(&file, &text_in) {
        Ok(i) => i,
        Err(e) => return fail(e),
    };
    let root = match restore::root_for(&img, path, root) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let opts = restore::Options {
        root,
        skip_unrestorable,
        verbose: how.plan,
        trace: false,
    };
    let mut outcomes = Vec::new();
    let mut held = None;
    if matches!(backend, BackendName::Model | BackendName::Both) {
        let traced = restore::Options {
            trace: how.trace,
            ..opts.clone()
        };
        match restore::restore_on(&img, &mut ModelBackend::new(), &traced, how.verify) {
            Ok(o) => outcomes.push(o),
            Err(e) => return fail(format!("{file}: restoring on the model: {e}")),
        }
    }
    if matches!(backend, BackendName::Linux | BackendName::Both) {
        let (floor, _) = restore::numbers(&img);
        let r = LinuxBackend::with_floor(&helper_path(), floor)
            .map_err(RestoreError::from)
            .and_then(|mut l| Ok((restore::restore_on(&img, &mut l, &opts, how.verify)?, l)));
        match r {
            Ok((o, l)) => {
                outcomes.push(o);
                held = Some(l);
            }
            Err(e) => return fail(format!("{file}: restoring on Linux: {e}")),
        }
    }
    let mut passed = outcomes
        .iter()
        .all(|o| o.differences.as_ref().is_none_or(Vec::is_empty));
    let mut disagreement = None;
    if let [m, l] = &outcomes[..] {
        if let Some(d) = compare::topology_diff(&m.topology, &l.topology) {
            passed = false;
            disagreement = Some(d);
        }
    }
    let report = RestoreReport {
        image: file,
        outcomes,
        disagreement,
    };
    let code = finish(how.json, &report, passed, || {
        let mut out: String = report
            .outcomes
            .iter()
            .map(|o| text::restore_outcome(o, how.plan))
            .collect::<Vec<_>>()
            .join("\n");
        if let Some((m, l)) = &report.disagreement {
            out.push_str(&format!(
                "\nTHE BACKENDS DISAGREE: the model restored\n{m}\nLinux restored\n{l}\n"
            ));
        }
        out
    });
    if how.hold {
        if let Some(l) = held.as_ref() {
            hold_until_eof(l);
        }
    }
    drop(held);
    code
}

/// What `fdlab restore` did, on each backend.
#[derive(serde::Serialize)]
struct RestoreReport {
    image: String,
    outcomes: Vec<restore::Outcome>,
    /// With `--backend both`, the two restored topologies when they differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    disagreement: Option<(String, String)>,
}

/// Says which processes are held, and waits until standard input ends.
fn hold_until_eof(b: &LinuxBackend) {
    let held: Vec<String> = b
        .processes()
        .iter()
        .map(|(n, pid)| format!("{n}={pid}"))
        .collect();
    eprintln!(
        "fdlab: holding {} (sandbox {}); end of input (Ctrl-D) or Ctrl-C ends them",
        held.join(" "),
        b.sandbox().display()
    );
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
}

/// Where `fdlab run` draws its picture, if anywhere.
struct Pictures {
    svg: Option<PathBuf>,
    dot: Option<PathBuf>,
    html: Option<PathBuf>,
}

/// A picture's title: the scenario file's name.
fn title_of(file: &std::path::Path) -> String {
    file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

impl Pictures {
    /// Writes the page that steps through `frames`, if asked for one.
    fn film(
        &self,
        r: &run::Report,
        frames: &[run::Frame],
        file: &std::path::Path,
    ) -> Result<(), Error> {
        let Some(to) = &self.html else {
            return Ok(());
        };
        let source = std::fs::read_to_string(file).ok();
        let page = html::scenario_page(r, frames, &title_of(file), source.as_deref());
        write_out(to, &page)
    }

    /// The files in flight in `b`'s queues, whose topology is `t`, when a
    /// picture is drawn; none otherwise.
    fn flights(
        &self,
        b: &mut dyn crate::backend::Backend,
        t: &fdlab_model::Topology,
    ) -> Result<Vec<run::Flight>, String> {
        if self.svg.is_none() && self.dot.is_none() {
            return Ok(Vec::new());
        }
        run::flights_now(b, t).map_err(|e| Error::from(e).to_string())
    }

    /// Draws the picture of `t` with the files in flight `flights`, titled
    /// by the scenario `file`.
    fn draw(
        &self,
        t: &fdlab_model::Topology,
        flights: &[run::Flight],
        file: &std::path::Path,
    ) -> Result<(), Error> {
        if self.svg.is_none() && self.dot.is_none() {
            return Ok(());
        }
        draw(
            &Picture::of(t, &title_of(file)).with_flights(flights),
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
    if let Err(e) = pictures.draw(&report.topology, &[], file) {
        return fail(e);
    }
    let code = finish(json, &report, report.passed(), || text::report(&report));
    hold_until_eof(&b);
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
        write_out(path, &text)?;
    }
    Ok(())
}

/// Writes `text` to `path` (`-`: standard output).
///
/// Errors: the file cannot be written.
fn write_out(path: &std::path::Path, text: &str) -> Result<(), Error> {
    if path == std::path::Path::new("-") {
        print!("{text}");
        return Ok(());
    }
    std::fs::write(path, text).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })
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

/// `fdlab check --exercise NAME [FILE]`: the task, or the kernel's
/// verdict on an answer.
fn check_exercise(name: &str, paths: &[PathBuf], json: bool) -> ExitCode {
    use crate::tools::exercise::{find, judge, EXERCISES};
    let names = || {
        EXERCISES
            .iter()
            .map(|e| format!("  {:<32} ({})", e.name, e.chapter))
            .collect::<Vec<_>>()
            .join("\n")
    };
    if name == "list" {
        println!("The book's exercises (and their chapters):\n{}", names());
        return ExitCode::SUCCESS;
    }
    let Some(ex) = find(name) else {
        return fail(format!(
            "no exercise `{name}`; `fdlab check --exercise list` lists them"
        ));
    };
    let file = match paths {
        [] => {
            print!("{}", ex.task());
            println!("\nAnswer in a file, then: fdlab check --exercise {name} FILE");
            return ExitCode::SUCCESS;
        }
        [file] => file,
        _ => return fail("--exercise judges one answer: give one FILE"),
    };
    let shown = file.display().to_string();
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => return fail(format!("{shown}:1:1: cannot read it: {e}")),
    };
    let v = match judge(ex, &shown, &text) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    finish(json, &v, v.right, || text::exercise_verdict(&v))
}

fn check_all(paths: Vec<PathBuf>, json: bool) -> ExitCode {
    let paths = if paths.is_empty() {
        let here = PathBuf::from("scenarios");
        if !here.is_dir() {
            return fail(
                "no scenarios/ folder here: run `fdlab check` at the top of the repository, \
                 or name the scenarios or folders to check",
            );
        }
        vec![here]
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
        } else {
            // A missing or unreadable file is the row's error, with the
            // others checked all the same.
            files.push(p.clone());
        }
    }
    if files.is_empty() {
        return fail("no .fds scenarios found");
    }
    let rows = check::check(&files);
    let passed = rows.iter().all(check::Row::passed);
    for e in rows.iter().filter_map(|r| r.invalid.as_ref()) {
        eprintln!("{e}");
    }
    let code = finish(json, &rows, passed, || text::check_table(&rows));
    if rows.iter().any(|r| r.invalid.is_some()) {
        // Bad input: exit 2, as every command does, after the others ran.
        return ExitCode::from(2);
    }
    code
}
