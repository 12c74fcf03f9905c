//! A cgroup path (from the kernel, or a recording) named as a systemd
//! unit, slice, user and container, and rendered as outputs render it.
#![no_main]

use std::{ffi::OsStr, os::unix::ffi::OsStrExt, path::Path};

use libfuzzer_sys::fuzz_target;
use spawnscope::unit;

fuzz_target!(|data: &[u8]| {
    let owner = unit::parse(data);
    serde_json::to_string(&owner).expect("an owner serialises");
    if let Some(c) = &owner.container {
        let label = c.label();
        assert!(c.matches(&label), "a container matches its own label");
    }
    if let Some(u) = &owner.unit {
        unit::unescape(u);
    }
    unit::display_rel(Path::new(OsStr::from_bytes(data)));
    if let Ok(s) = std::str::from_utf8(data) {
        unit::is_unit_name(s);
        unit::unescape(s);
    }
});
