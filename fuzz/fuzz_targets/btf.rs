//! Kernel BTF (`--btf FILE`, /sys/kernel/btf/vmlinux), read as loading
//! the probe reads it: spawnscope's parser, the kernel layout and the
//! tracepoint checks `doctor` makes, then, for a blob those accept, the
//! stub of attach points made for aya, which aya must parse and find each
//! typedef in at the id spawnscope found it at.
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
    if let Err(e) = layout::from_btf(&btf) {
        return assert_one_line(&e.to_string());
    }
    match btf.attach_ids(&layout::TRACEPOINTS) {
        Ok(ids) => {
            let stub = spawnscope::btf::attach_stub(&ids);
            let aya = aya::Btf::parse(&stub, aya::Endianness::default())
                .expect("aya parses the attach stub");
            for (tp, id) in ids {
                let name = format!("btf_trace_{tp}");
                assert_eq!(
                    aya.id_by_type_name_kind(&name, aya_obj::btf::BtfKind::Typedef)
                        .ok(),
                    Some(id),
                    "{name}"
                );
            }
        }
        Err(e) => assert_one_line(&e.to_string()),
    }
});
