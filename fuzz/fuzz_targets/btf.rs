//! Kernel BTF (`--btf FILE`, /sys/kernel/btf/vmlinux), read as loading
//! the probe reads it: spawnscope's parser, the kernel layout and the
//! tracepoint checks `doctor` makes, then, for a blob those accept, aya's
//! parser, which resolves the programs' attach points.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spawnscope::{btf::Btf, layout};
use spawnscope_fuzz::assert_one_line;

fuzz_target!(|data: &[u8]| {
    let btf = match Btf::parse(data, "/fuzz/btf") {
        Ok(b) => b,
        Err(e) => return assert_one_line(&e.to_string()),
    };
    for tp in layout::TRACEPOINTS
        .iter()
        .chain([&layout::RMDIR_TRACEPOINT])
    {
        let _ = btf.tracepoint_arg_count(tp);
    }
    let _ = layout::oom_flavour(&btf);
    match layout::from_btf(&btf) {
        Ok(_) => {
            let _ = aya::Btf::parse(data, aya::Endianness::default());
        }
        Err(e) => assert_one_line(&e.to_string()),
    }
});
