//! `spawnscope postmortem` against a journal a real journald wrote in a
//! booted container (bookworm, systemd 252): a real agetty loop restarting
//! hundreds of times, a unit that logs 20,000 lines, and a memory cgroup
//! OOM kill of a unit's process, read after power-off from the journal
//! directory. Its counts are systemd's and journalctl's, exactly. The first
//! test proves the fixture itself.

use std::{process::Command, sync::OnceLock};

use serde_json::Value;
use spawnscope_tests::{
    journal::{ContainerJournal, FAST_RESTARTS, LOGGER_LINES, container_journal, journalctl},
    spawnscope_bin,
    systemd::Suite,
};

fn fixture() -> Option<&'static ContainerJournal> {
    static F: OnceLock<Option<ContainerJournal>> = OnceLock::new();
    F.get_or_init(|| container_journal(Suite::Bookworm))
        .as_ref()
}

fn report(j: &ContainerJournal) -> &'static Value {
    static R: OnceLock<Value> = OnceLock::new();
    R.get_or_init(|| {
        let out = Command::new(spawnscope_bin())
            .args(["postmortem", "--json", "--directory"])
            .arg(&j.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    })
}

fn loop_of<'a>(r: &'a Value, unit: &str) -> &'a Value {
    r["loops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["unit"] == unit)
        .unwrap_or_else(|| panic!("no loop of {unit}: {}", r["loops"]))
}

#[test]
fn the_container_journal_holds_what_its_truth_says() {
    let Some(j) = fixture() else {
        return;
    };
    assert!(j.getty_nrestarts >= FAST_RESTARTS, "{}", j.getty_nrestarts);
    assert!(
        j.slow_getty_error.contains("ttyS9"),
        "{}",
        j.slow_getty_error
    );
    assert_eq!(j.getty_error, "not enough arguments");
    assert_eq!(j.logger_lines, LOGGER_LINES);
    let last = journalctl(
        &j.dir,
        &[
            "-o",
            "cat",
            &format!("UNIT={}", j.getty_unit),
            &format!("N_RESTARTS={}", j.getty_restarts),
        ],
    );
    assert_eq!(
        last.trim(),
        format!(
            "{}: Scheduled restart job, restart counter is at {}.",
            j.getty_unit, j.getty_restarts
        )
    );
    let oom = j.oom.as_ref().expect("an OOM kill on this host");
    assert!(oom.message.contains("Killed process"), "{oom:?}");
}

#[test]
fn restarts_are_systemds_count_exactly() {
    let Some(j) = fixture() else {
        return;
    };
    let l = loop_of(report(j), &j.getty_unit);
    // The journal's last restart line is the counter systemd reached; its
    // NRestarts, read just before the stop, may trail it by the one
    // restart that slipped in between.
    assert_eq!(l["restarts"], j.getty_restarts, "{l}");
    assert_eq!(l["counter_last"], j.getty_restarts, "{l}");
    let n = l["restarts"].as_u64().unwrap();
    assert!((j.getty_nrestarts..=j.getty_nrestarts + 1).contains(&n));
    let slow = loop_of(report(j), &j.slow_getty_unit);
    assert_eq!(slow["restarts"], j.slow_getty_restarts, "{slow}");
}

#[test]
fn entries_per_unit_are_journalctls() {
    let Some(j) = fixture() else {
        return;
    };
    let units = report(j)["journal_units"].as_array().unwrap();
    for (unit, n) in &j.unit_entries {
        let got = units
            .iter()
            .find(|u| u["unit"] == unit.as_str())
            .map(|u| u["entries"].as_u64().unwrap());
        assert_eq!(got, Some(*n), "{unit}");
    }
}

#[test]
fn the_dominant_error_is_agettys_real_line() {
    let Some(j) = fixture() else {
        return;
    };
    let top = &loop_of(report(j), &j.slow_getty_unit)["top_errors"][0];
    assert!(
        top["example"]
            .as_str()
            .unwrap()
            .ends_with(j.slow_getty_error.as_str()),
        "{top} vs {}",
        j.slow_getty_error
    );
    let top = &loop_of(report(j), &j.getty_unit)["top_errors"][0];
    assert!(
        top["text"]
            .as_str()
            .unwrap()
            .ends_with("not enough arguments"),
        "{top}"
    );
    // journald names the unit of a line only while its writer lives: as
    // many as journalctl finds under the unit, not one per start.
    let logged = journalctl(
        &j.dir,
        &["-o", "cat", &format!("_SYSTEMD_UNIT={}", j.getty_unit)],
    )
    .lines()
    .filter(|l| *l == "not enough arguments")
    .count() as u64;
    assert_eq!(top["count"], logged, "{top}");
}

#[test]
fn the_oom_victim_is_named_with_its_unit() {
    let Some(j) = fixture() else {
        return;
    };
    let oom = j.oom.as_ref().expect("an OOM kill on this host");
    let kills = report(j)["oom_kills"].as_array().unwrap();
    let k = kills
        .iter()
        .find(|k| k["pid"] == oom.pid)
        .unwrap_or_else(|| panic!("no kill of pid {} in {kills:?}", oom.pid));
    assert_eq!(k["comm"], oom.comm.as_str());
    assert_eq!(k["unit"], oom.unit.as_str(), "{k}");
}
