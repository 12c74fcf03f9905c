//! A workload with an exactly known spawn profile. It checks every child's
//! fate itself and exits non-zero if any differs from what was asked, so a
//! test that trusts its counts can trust the workload too.
//!
//! usage: spawn-workload [--clean N] [--failed N] [--killed N]
//!                       [--fork-only N] [--threads N] [--core N]
//!
//! --clean N      N × fork+exec /bin/true            (exit 0)
//! --failed N     N × fork+exec /bin/false           (exit 1)
//! --killed N     N × fork, child SIGKILLs itself    (no exec)
//! --fork-only N  N × fork, child _exit(0)           (no exec)
//! --threads N    N threads started and joined
//! --into-cgroup DIR --into N
//!                N × clone3(CLONE_INTO_CGROUP) into the cgroup2 directory
//!                DIR, child _exit(0) (no exec)
//! --core N       N × fork, child aborts with RLIMIT_CORE raised to its hard
//!                limit (no exec);
//!                run it in a scratch directory: the kernel writes the core
//!                files where core_pattern says.
//! --fail-after MS
//!                spawn nothing: sleep MS milliseconds, then exit 1 (a
//!                service that crashes soon after it starts, in one exec)
//! --hold-mib N  spawn nothing: allocate and touch N MiB at once, then
//!                hold it without growing, forever
//! --leak-mib-per-s N
//!                spawn nothing: allocate and touch N MiB every second, in
//!                1 MiB steps, forever (until something kills it)

use std::process::{Command, ExitCode};

fn wait_status(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: waiting for our own child with a valid out-pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid, "waitpid({pid}) failed");
    status
}

/// Forks a child that runs `child` (async-signal-safe calls only) and
/// returns its wait status.
fn fork_with(child: fn() -> !) -> i32 {
    // SAFETY: single-threaded at this point (threads are joined before and
    // started after the fork phases), and the child only makes raw syscalls.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        child();
    }
    wait_status(pid)
}

fn die_by_sigkill() -> ! {
    // SAFETY: raw syscalls in a forked child.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
        libc::_exit(99)
    }
}

fn exit_zero() -> ! {
    // SAFETY: _exit in a forked child.
    unsafe { libc::_exit(0) }
}

fn dump_core() -> ! {
    // SAFETY: raw syscalls in a forked child.
    unsafe {
        // Up to the hard limit only: raising that needs CAP_SYS_RESOURCE.
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_CORE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_CORE, &lim);
        libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
        libc::signal(libc::SIGABRT, libc::SIG_DFL);
        libc::kill(libc::getpid(), libc::SIGABRT);
        libc::_exit(98)
    }
}

/// clone3 with CLONE_INTO_CGROUP: the child is born in `cgroup_fd`'s cgroup.
fn clone_into(cgroup_fd: i32) -> i32 {
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    // struct clone_args up to and including `cgroup` (CLONE_ARGS_SIZE_VER2).
    let mut args = [0u64; 11];
    args[0] = CLONE_INTO_CGROUP;
    args[4] = libc::SIGCHLD as u64;
    args[10] = cgroup_fd as u64;
    // SAFETY: clone3 without CLONE_VM is a fork; the child only calls _exit.
    let pid = unsafe { libc::syscall(libc::SYS_clone3, args.as_mut_ptr(), size_of_val(&args)) };
    assert!(pid >= 0, "clone3: {}", std::io::Error::last_os_error());
    if pid == 0 {
        exit_zero();
    }
    wait_status(pid as libc::pid_t)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut n = std::collections::HashMap::new();
    let mut into_dir = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--into-cgroup" {
            into_dir = it.next().cloned();
            continue;
        }
        let Some(v) = it.next().and_then(|v| v.parse::<u32>().ok()) else {
            eprintln!("spawn-workload: {flag} needs a count");
            return ExitCode::from(2);
        };
        n.insert(flag.trim_start_matches("--").to_string(), v);
    }
    let count = |k: &str| n.get(k).copied().unwrap_or(0);
    if let Some(&mib) = n.get("hold-mib") {
        let held: Vec<Vec<u8>> = (0..mib).map(|_| vec![1u8; 1 << 20]).collect();
        loop {
            std::hint::black_box(&held);
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    if let Some(&rate) = n.get("leak-mib-per-s") {
        let step = std::time::Duration::from_secs(1) / rate.max(1);
        let mut held: Vec<Vec<u8>> = Vec::new();
        loop {
            // Touch every page, so the memory is really charged.
            held.push(vec![1u8; 1 << 20]);
            std::hint::black_box(&held);
            std::thread::sleep(step);
        }
    }
    if let Some(&ms) = n.get("fail-after") {
        std::thread::sleep(std::time::Duration::from_millis(ms.into()));
        return ExitCode::from(1);
    }
    let mut wrong = 0u32;

    for _ in 0..count("clean") {
        let s = Command::new("/bin/true").status().expect("spawn /bin/true");
        wrong += (s.code() != Some(0)) as u32;
    }
    for _ in 0..count("failed") {
        let s = Command::new("/bin/false")
            .status()
            .expect("spawn /bin/false");
        wrong += (s.code() != Some(1)) as u32;
    }
    for _ in 0..count("killed") {
        let s = fork_with(die_by_sigkill);
        wrong += !(libc::WIFSIGNALED(s) && libc::WTERMSIG(s) == libc::SIGKILL) as u32;
    }
    for _ in 0..count("fork-only") {
        let s = fork_with(exit_zero);
        wrong += !(libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == 0) as u32;
    }
    for _ in 0..count("core") {
        let s = fork_with(dump_core);
        wrong += !(libc::WIFSIGNALED(s) && libc::WCOREDUMP(s)) as u32;
    }
    if count("into") > 0 {
        let dir = into_dir.expect("--into needs --into-cgroup DIR");
        let f = std::fs::File::open(&dir).expect("open cgroup directory");
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
        for _ in 0..count("into") {
            let s = clone_into(fd);
            wrong += !(libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == 0) as u32;
        }
    }
    let threads: Vec<_> = (0..count("threads"))
        .map(|i| std::thread::spawn(move || i))
        .collect();
    for t in threads {
        t.join().expect("thread panicked");
    }

    if wrong > 0 {
        eprintln!("spawn-workload: {wrong} child(ren) did not end as asked");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
