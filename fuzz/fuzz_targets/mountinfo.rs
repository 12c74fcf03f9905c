//! /proc/self/mountinfo, read for the cgroup mounts as `trace`, the
//! sentinel and `doctor` read it, and the cgroup2 mount's root used as the
//! cgroup namer uses it.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use spawnscope::cgroupfs::{self, CgroupNames};
use spawnscope_fuzz::assert_one_line;

fuzz_target!(|data: &[u8]| {
    let mounts = match cgroupfs::parse_mountinfo(data, Path::new("/proc/self/mountinfo")) {
        Ok(m) => m,
        Err(e) => return assert_one_line(&e.to_string()),
    };
    cgroupfs::attribution_warning(&mounts);
    for m in mounts.iter().filter(|m| m.fstype == "cgroup2") {
        // What the kernel reports for a cgroup below this mount's root.
        let mut kernel_path = m.root.trim_end_matches('/').as_bytes().to_vec();
        kernel_path.extend_from_slice(b"/system.slice/a.service");
        let mut names = CgroupNames::new(Some(m), 4);
        names.learn(7, &kernel_path);
        names.resolve(7);
        names.id_of_path("/system.slice/a.service");
    }
});
