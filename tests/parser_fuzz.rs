//! No input makes the parser panic, and whatever it accepts runs on the model
//! without panicking and leaves every invariant holding.

use fdlab::backend::ModelBackend;
use fdlab::lang::parse;
use fdlab::tools::run::run;
use proptest::prelude::*;

/// Lines that are valid, so that mutations of them reach deep into the parser.
const SEEDS: &[&str] = &[
    "spawn p1 stdio",
    "spawn p2",
    "p1: open notes.txt O_RDWR|O_CREAT|O_APPEND 0600 = 3",
    "p1: fork p3",
    "p1: clone_files p4",
    "p1: dup2 0 5 = 5",
    "p1: fcntl 1 F_DUPFD_CLOEXEC 4",
    "p1: fcntl 0 F_SETFL O_APPEND|O_NONBLOCK",
    "p1: close_range 3 ~0 CLOSE_RANGE_CLOEXEC|CLOSE_RANGE_UNSHARE",
    "p1: write 1 \"a\\n\\x41\" = 3",
    "p1: read 0 5 = \"\"",
    "p1: lseek 0 -1 SEEK_END = EINVAL",
    "p1: socketpair SOCK_DGRAM|SOCK_CLOEXEC",
    "p1: sendfds 3 0 1 2",
    "p1: recvfds 4 MSG_CMSG_CLOEXEC",
    "p1: epoll_create EPOLL_CLOEXEC",
    "p1: epoll_ctl 3 EPOLL_CTL_ADD 0 EPOLLIN|EPOLLOUT",
    "expect p1:0 same p1:5",
    "expect p1 apart p2",
    "expect p1 fds 0 1 2",
    "expect p1:3 watches p1:0 as 7",
    "p1: exec",
    "p2: exit",
    "p1: rlimit 4",
    "p1: pipe O_CLOEXEC = 6 7",
];

fn mutated_line() -> impl Strategy<Value = String> {
    (
        proptest::sample::select(SEEDS),
        any::<u16>(),
        any::<char>(),
        0..4u8,
    )
        .prop_map(|(seed, at, c, how)| {
            let mut chars: Vec<char> = seed.chars().collect();
            let i = at as usize % (chars.len() + 1);
            match how {
                0 => chars.insert(i, c),
                1 if i < chars.len() => {
                    chars.remove(i);
                }
                2 => chars.truncate(i),
                _ => {}
            }
            chars.into_iter().collect()
        })
}

fn scenario_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![4 => mutated_line(), 1 => any::<String>()],
        0..25,
    )
    .prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn parser_never_panics_and_accepted_scenarios_run(src in scenario_text()) {
        if let Ok(s) = parse("fuzz.fds", &src) {
            let mut b = ModelBackend::new();
            run(&s, &mut b, true).unwrap();
            fdlab_model::invariants::check_all(b.world()).unwrap();
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse("fuzz.fds", &String::from_utf8_lossy(&bytes));
    }
}
