//! /proc/<pid>/cgroup: the cgroup2 line found as start-up, an OOM
//! victim's lookup and the container scan find it, and its path named.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spawnscope::{cgroupfs, systemd, unit};

fuzz_target!(|data: &[u8]| {
    // Every reader of this file reads it as UTF-8.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(path) = cgroupfs::v2_membership(text) {
        let owner = unit::parse(path.as_bytes());
        if let Some(c) = &owner.container {
            c.label();
        }
    }
    systemd::container_name(text);
});
