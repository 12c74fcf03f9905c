//! The /proc files the memory sampler reads: meminfo, pressure/memory,
//! slabinfo, <pid>/statm and <pid>/stat, and the head of a journal file
//! it sizes. Every parser gets every input: a seed of one file is a
//! mutation source for the others.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spawnscope::memory;
use spawnscope_fuzz::assert_one_line;

fn check<T>(r: Result<T, memory::MemError>) {
    if let Err(e) = r {
        assert_one_line(&e.to_string());
    }
}

fuzz_target!(|data: &[u8]| {
    check(memory::parse_journal_header(data, "x.journal"));
    check(memory::parse_journal_object_size(data, "x.journal"));
    // The sampler reads these files as UTF-8.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check(memory::parse_meminfo(text, "/proc/meminfo"));
    check(memory::parse_psi(text, "/proc/pressure/memory"));
    check(memory::parse_slabinfo(text, "/proc/slabinfo"));
    check(memory::parse_statm(text, "statm", 4096));
    check(memory::parse_stat_identity(text, "stat"));
});
