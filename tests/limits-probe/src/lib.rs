//! What both limits objects share: the macro that puts one set's body on
//! fork, exec and exit. The cgroup-storage set is an object of its own, so
//! that the others load on kernels without that map type (before 6.2).
#![no_std]

/// Defines `<set>_fork`, `<set>_exec` and `<set>_exit`, each calling its
/// body with the task the tracepoint is about: the child at fork (its
/// second argument), the current task at exec and exit (their first).
#[macro_export]
macro_rules! set {
    ($fork:ident, $exec:ident, $exit:ident, $body:ident) => {
        $crate::set!($fork, $exec, $exit, $body, $body, $body);
    };
    ($fork:ident, $exec:ident, $exit:ident, $at_fork:ident, $at_exec:ident, $at_exit:ident) => {
        #[::aya_ebpf::macros::btf_tracepoint(function = "sched_process_fork")]
        pub fn $fork(ctx: ::aya_ebpf::programs::BtfTracePointContext) -> i32 {
            $at_fork(ctx.arg(1));
            0
        }
        #[::aya_ebpf::macros::btf_tracepoint(function = "sched_process_exec")]
        pub fn $exec(ctx: ::aya_ebpf::programs::BtfTracePointContext) -> i32 {
            $at_exec(ctx.arg(0));
            0
        }
        #[::aya_ebpf::macros::btf_tracepoint(function = "sched_process_exit")]
        pub fn $exit(ctx: ::aya_ebpf::programs::BtfTracePointContext) -> i32 {
            $at_exit(ctx.arg(0));
            0
        }
    };
}
