//! Concurrent drill-downs in the kernel. The probe is loaded in this
//! process as the sentinel loads it (counters only, drill-down code kept),
//! and driven through `spawnscope::kernel::Probe`:
//! - two slots stream the exec and exit records of two different cgroups
//!   at once, and nothing of a cgroup no slot follows;
//! - a cgroup created at a slot's path afterwards (a unit's restart)
//!   joins that slot in the kernel, and is streamed from its first exec;
//! - ending one slot stops its cgroups' records and leaves the other
//!   slot streaming;
//! - a drill-down refused for a full map leaves its slot empty.

use std::{collections::BTreeMap, os::unix::fs::MetadataExt, path::Path};

use spawnscope::{
    events::{self, Event},
    kernel::{KernelError, LoadOptions, Probe, ProbeLog},
};
use spawnscope_common::{DEFAULT_MAX_CGROUPS, DRILL_MAX_IDS, DRILL_PATH_MAX, DRILL_SLOTS};
use spawnscope_tests::{TestCgroup, command_in, remove_cgroup, require_root};

/// Exec and exit records streamed, by cgroup id.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Seen {
    execs: u32,
    exits: u32,
}

/// Every record waiting in the event ring, counted by cgroup.
fn drain(probe: &mut Probe) -> BTreeMap<u64, Seen> {
    let mut seen: BTreeMap<u64, Seen> = BTreeMap::new();
    probe.drain_events(|bytes| match events::decode(bytes) {
        Some(Event::Exec(e)) => seen.entry(e.cgroup_id).or_default().execs += 1,
        Some(Event::Exit(e)) => seen.entry(e.cgroup_id).or_default().exits += 1,
        _ => {}
    });
    seen
}

/// Runs `/bin/true` `n` times in the cgroup `dir`. Its exec and its exit
/// happen there, and both records are in the ring once wait(2) returns.
fn run_in(dir: &Path, n: u32) {
    for _ in 0..n {
        assert!(command_in(dir, "/bin/true").status().unwrap().success());
    }
}

fn id_of(dir: &Path) -> u64 {
    std::fs::metadata(dir).unwrap().ino()
}

/// A cgroup directory below `parent`: its path and its path from the
/// cgroup2 root, as the kernel hands it to cgroup_mkdir.
fn unit(parent: &TestCgroup, name: &str) -> (std::path::PathBuf, String) {
    let dir = parent.path.join(name);
    std::fs::create_dir(&dir).unwrap();
    let rel = format!("{}/{name}", parent.rel);
    assert!(
        rel.len() <= DRILL_PATH_MAX,
        "{rel}: longer than a drill-down can follow; run from a shallower cgroup"
    );
    (dir, rel)
}

/// Removes and re-creates the cgroup `dir` (a unit's restart): its new id.
fn recreate(dir: &Path) -> u64 {
    let old = id_of(dir);
    remove_cgroup(dir);
    std::fs::create_dir(dir).unwrap();
    let new = id_of(dir);
    assert_ne!(old, new, "a new cgroup has a new id");
    new
}

#[test]
fn two_slots_stream_at_once_follow_restarts_and_end_apart() {
    if !require_root("drill_slots") {
        return;
    }
    let parent = TestCgroup::new("drill-slots");
    let (a, a_rel) = unit(&parent, "a.service");
    let (b, b_rel) = unit(&parent, "b.service");
    let (c, _) = unit(&parent, "c.service");
    let mut probe = Probe::load(&LoadOptions {
        btf_path: spawnscope::btf::VMLINUX_BTF.into(),
        max_cgroups: DEFAULT_MAX_CGROUPS,
        events: None,
        exit_flavour: None,
        drill_buffer: Some(1 << 20),
        cgroup_removals: false,
        cgroup_buffer: None,
        lazy_cgroups: false,
        lazy_events: false,
        probe_log: ProbeLog::Off,
    })
    .unwrap_or_else(|e| panic!("load the probe: {e}"));
    let (ia, ib, ic) = (id_of(&a), id_of(&b), id_of(&c));

    // Not drilling: nothing is streamed.
    run_in(&a, 1);
    assert_eq!(drain(&mut probe), BTreeMap::new());

    // Slots 0 and 5 at once; c.service in none.
    let last = DRILL_SLOTS - 1;
    probe.drill(0, a_rel.as_bytes(), &[ia]).unwrap();
    probe.drill(5, b_rel.as_bytes(), &[ib]).unwrap();
    let mut ids = probe.drill_ids().unwrap();
    ids.sort();
    let mut want = vec![(ia, 0), (ib, 5)];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(
        (
            probe.drill_slot_of(ia),
            probe.drill_slot_of(ib),
            probe.drill_slot_of(ic)
        ),
        (Some(0), Some(5), None)
    );
    assert!(matches!(
        probe.drill(DRILL_SLOTS, b"/x.service", &[]),
        Err(KernelError::DrillSlot(s)) if s == DRILL_SLOTS
    ));
    run_in(&a, 2);
    run_in(&b, 3);
    run_in(&c, 1);
    let seen = drain(&mut probe);
    assert_eq!(
        seen,
        BTreeMap::from([
            (ia, Seen { execs: 2, exits: 2 }),
            (ib, Seen { execs: 3, exits: 3 }),
        ]),
        "a.service {ia}, b.service {ib}, c.service {ic}"
    );

    // a.service restarts: its new cgroup joins slot 0 as it is created,
    // and its first exec is streamed.
    let ia2 = recreate(&a);
    assert_eq!(probe.drill_slot_of(ia2), Some(0), "joined in the kernel");
    run_in(&a, 1);
    run_in(&b, 1);
    assert_eq!(
        drain(&mut probe),
        BTreeMap::from([
            (ia2, Seen { execs: 1, exits: 1 }),
            (ib, Seen { execs: 1, exits: 1 }),
        ])
    );

    // A third slot, the last, follows c.service by its id alone (its
    // path matches no cgroup).
    probe.drill(last, b"/nowhere.service", &[ic]).unwrap();
    assert_eq!(probe.drill_slot_of(ic), Some(last));

    // Slot 0 ends: a.service is no longer streamed, nor followed into a
    // new cgroup; b.service and c.service still are.
    probe.drill_off(0).unwrap();
    assert_eq!(probe.drill_slot_of(ia), None);
    assert_eq!(probe.drill_slot_of(ia2), None);
    let ia3 = recreate(&a);
    assert_eq!(probe.drill_slot_of(ia3), None, "slot 0 is off");
    run_in(&a, 2);
    run_in(&b, 2);
    run_in(&c, 1);
    assert_eq!(
        drain(&mut probe),
        BTreeMap::from([
            (ib, Seen { execs: 2, exits: 2 }),
            (ic, Seen { execs: 1, exits: 1 }),
        ])
    );
    let ib2 = recreate(&b);
    assert_eq!(probe.drill_slot_of(ib2), Some(5), "slot 5 still follows");

    // More cgroups than the map holds: refused, and the slot is left
    // empty rather than half made; the others keep theirs.
    let too_many: Vec<u64> = (1..=u64::from(DRILL_MAX_IDS))
        .map(|i| u64::MAX - i)
        .collect();
    assert!(probe.drill(1, b"/full.service", &too_many).is_err());
    let mut ids = probe.drill_ids().unwrap();
    ids.sort();
    let mut want = vec![(ib, 5), (ib2, 5), (ic, last)];
    want.sort();
    assert_eq!(ids, want);

    // All off: nothing is streamed, nothing is left in the map.
    probe.drill_off(5).unwrap();
    probe.drill_off(last).unwrap();
    assert_eq!(probe.drill_ids().unwrap(), Vec::new());
    run_in(&a, 1);
    run_in(&b, 1);
    run_in(&c, 1);
    assert_eq!(drain(&mut probe), BTreeMap::new());
    let snap = probe.snapshot().unwrap();
    assert_eq!(snap.dropped.exec + snap.dropped.exit, 0, "nothing dropped");
}
