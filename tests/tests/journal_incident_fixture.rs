//! The incident journal fixture holds what its truth says: journalctl,
//! reading the files systemd-journal-remote wrote, finds the same entries,
//! boots, per-unit counts, restart line and OOM kill. This proves the
//! fixture, not `spawnscope postmortem`. Needs no root (as root the
//! generated files are cached under /var/cache/spawnscope-tests).

use std::{path::Path, sync::OnceLock};

use serde_json::Value;
use spawnscope_tests::journal::{
    INCIDENT_UNIT, IncidentTruth, MID_RESTART_SCHEDULED, incident_journal, journalctl,
    journalctl_unit_count,
};

/// One journal for the binary's tests (generating it takes a while).
fn fixture() -> Option<&'static (tempfile::TempDir, IncidentTruth)> {
    static F: OnceLock<Option<(tempfile::TempDir, IncidentTruth)>> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let truth = incident_journal(dir.path())?;
        eprintln!(
            "incident journal: {} entries in {} file(s), {:.1}s ({})",
            truth.entries_total,
            truth.files.len(),
            truth.took.as_secs_f64(),
            if truth.from_cache {
                "copied from the cache"
            } else {
                "generated"
            }
        );
        eprintln!("{truth:#?}");
        Some((dir, truth))
    })
    .as_ref()
}

fn json_lines(dir: &Path, args: &[&str]) -> Vec<Value> {
    let mut a = vec!["-o", "json"];
    a.extend_from_slice(args);
    journalctl(dir, &a)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn journalctl_headers_count_every_entry_of_the_truth() {
    let Some((dir, truth)) = fixture() else {
        return;
    };
    // Each entry is in exactly one file: the files' "Entry objects" add up
    // to the journal's entries (reading them all back takes minutes).
    let header = journalctl(dir.path(), &["--header"]);
    let per_file: Vec<u64> = header
        .lines()
        .filter_map(|l| l.strip_prefix("Entry objects: "))
        .map(|n| n.trim().parse().unwrap())
        .collect();
    assert_eq!(per_file.len(), truth.files.len(), "{header}");
    assert_eq!(per_file.iter().sum::<u64>(), truth.entries_total);
    // The incident report's count, which the fixture is built to.
    assert_eq!(truth.restarts, 421_491);
    // systemd-journal-remote compresses (large fields only: none here is).
    assert!(header.contains("COMPRESSED-"), "{header}");
}

/// Lines of `journalctl --directory DIR -u UNIT -o cat`: one per entry,
/// every MESSAGE here being a single line; `-o json` takes minutes over
/// the loop's 1.26 M entries, `cat` seconds.
fn unit_lines(dir: &Path, unit: &str) -> u64 {
    let mut child = std::process::Command::new("journalctl")
        .arg("--directory")
        .arg(dir)
        .args(["--no-pager", "-o", "cat", "-u", unit])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let r = std::io::BufReader::with_capacity(1 << 20, child.stdout.take().unwrap());
    let n = std::io::BufRead::split(r, b'\n').count() as u64;
    assert!(child.wait().unwrap().success());
    n
}

#[test]
fn journalctl_unit_counts_match_the_truth() {
    let Some((dir, truth)) = fixture() else {
        return;
    };
    for (unit, want) in &truth.entries_per_unit {
        // init.scope: PID 1's own lines, half the journal; the restart
        // lines are counted for the getty already.
        if unit == "init.scope" {
            continue;
        }
        let got = if *want > 10_000 {
            unit_lines(dir.path(), unit)
        } else {
            journalctl_unit_count(dir.path(), unit)
        };
        assert_eq!(got, *want, "journalctl -u {unit}");
    }
    assert_eq!(
        truth.entries_per_unit[INCIDENT_UNIT],
        1 + 3 * truth.restarts,
        "{truth:?}"
    );
}

#[test]
fn journalctl_lists_the_two_boots() {
    let Some((dir, truth)) = fixture() else {
        return;
    };
    let boots = json_lines(dir.path(), &["--list-boots"]);
    // `--list-boots -o json` prints one JSON array.
    let boots = boots[0].as_array().expect("an array of boots").clone();
    assert_eq!(boots.len(), truth.boots.len(), "{boots:?}");
    assert_eq!(truth.boots.len(), 2);
    for (got, want) in boots.iter().zip(&truth.boots) {
        assert_eq!(got["boot_id"], want.boot_id.as_str());
        assert_eq!(got["first_entry"], want.first_us);
        assert_eq!(got["last_entry"], want.last_us);
    }
}

#[test]
fn the_last_restart_line_has_systemds_fields() {
    let Some((dir, truth)) = fixture() else {
        return;
    };
    let n = truth.counter_max.to_string();
    let lines = json_lines(
        dir.path(),
        &[
            &format!("MESSAGE_ID={MID_RESTART_SCHEDULED}"),
            &format!("N_RESTARTS={n}"),
        ],
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
    let e = &lines[0];
    assert_eq!(e["UNIT"], INCIDENT_UNIT);
    assert_eq!(e["_PID"], "1");
    assert_eq!(e["_COMM"], "systemd");
    assert_eq!(e["PRIORITY"], "6");
    assert_eq!(
        e["MESSAGE"],
        format!("{INCIDENT_UNIT}: Scheduled restart job, restart counter is at {n}.")
    );
    assert_eq!(e["__REALTIME_TIMESTAMP"], truth.last_restart_us.to_string());
    assert_eq!(e["_BOOT_ID"], truth.boots[0].boot_id.as_str());
}

#[test]
fn journalctl_finds_the_oom_kill_in_the_kernel_lines() {
    let Some((dir, truth)) = fixture() else {
        return;
    };
    let lines = json_lines(dir.path(), &["_TRANSPORT=kernel", "--grep=^Out of memory"]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let e = &lines[0];
    assert_eq!(e["__REALTIME_TIMESTAMP"], truth.oom.time_us.to_string());
    let m = e["MESSAGE"].as_str().unwrap();
    assert!(
        m.starts_with(&format!(
            "Out of memory: Killed process {} ({})",
            truth.oom.pid, truth.oom.comm
        )),
        "{m}"
    );
    assert_eq!(truth.oom.unit, "mariadb.service");
}
