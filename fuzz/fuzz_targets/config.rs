//! The sentinel's configuration file (TOML), parsed and validated as
//! `sentinel --config` and a reload read it.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use spawnscope::sentinel::config::Config;
use spawnscope_fuzz::assert_one_line;

fuzz_target!(|data: &[u8]| {
    // Config::load reads the file as UTF-8; anything else fails there.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Config::parse(text, Path::new("/etc/spawnscope/sentinel.toml")) {
        assert_one_line(&e.to_string());
    }
});
