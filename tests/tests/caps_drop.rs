//! After loading, the sentinel drops every capability it no longer needs.
//! `caps::drop_to(&[])`, run by root, leaves no capability in any set
//! (bounding included, so no exec can regain one) and the kernel then
//! refuses to create a BPF map that the same process created just before
//! the drop.

use std::process::Command;

use spawnscope_tests::require_root;

#[test]
fn dropping_capabilities_leaves_none() {
    if !require_root("caps_drop") {
        return;
    }
    let bin = spawnscope_tests::workload_bin().with_file_name("drop-caps");
    let out = Command::new(&bin).output().expect("run drop-caps");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k} ")))
            .unwrap_or_else(|| panic!("no {k}: {text}"))
            .to_string()
    };
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(get(set), "0000000000000000", "{set}: {text}");
    }
    // The control: the same call succeeded in the same process before
    // the drop, so the refusal below is the drop's doing.
    assert_eq!(get("bpf_map_create_before"), "ok", "{text}");
    assert_eq!(
        get("bpf_map_create"),
        format!("errno {}", libc::EPERM),
        "{text}"
    );
}
