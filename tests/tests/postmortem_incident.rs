//! The incident at full size: 421,491 restart cycles of
//! serial-getty@ttyS0.service over 48.7 days, an OOM kill, the journal's
//! last entry, a 20-day gap and the next boot, written by systemd's own
//! systemd-journal-remote. `spawnscope postmortem --directory` reproduces
//! every number of it exactly. The release binary does the reading, as an
//! operator would run it (the debug build takes ten times as long).

use std::{process::Command, sync::OnceLock};

use serde_json::Value;
use spawnscope_tests::{
    dist::{Arch, Unpacked, unpack},
    journal::{IncidentTruth, incident_journal},
};

/// One journal and one release binary for the binary's tests (making the
/// journal takes a while).
fn fixture() -> Option<&'static (tempfile::TempDir, IncidentTruth, Unpacked)> {
    static F: OnceLock<Option<(tempfile::TempDir, IncidentTruth, Unpacked)>> = OnceLock::new();
    F.get_or_init(|| {
        let bin = unpack(Arch::X86_64, "postmortem_incident")?;
        let dir = tempfile::tempdir().unwrap();
        let truth = incident_journal(dir.path())?;
        Some((dir, truth, bin))
    })
    .as_ref()
}

fn us(u: u64) -> f64 {
    u as f64 / 1e6
}

fn close(a: &Value, b: f64, what: &str) {
    let a = a
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number: {a}"));
    assert!(
        (a - b).abs() <= 1e-6 * b.abs().max(1.0),
        "{what}: {a} != {b}"
    );
}

#[test]
fn postmortem_reproduces_the_incident() {
    let Some((dir, truth, bin)) = fixture() else {
        return;
    };
    let out_dir = tempfile::tempdir().unwrap();
    let svg = out_dir.path().join("timeline.svg");
    let out = Command::new(bin.bin())
        .args(["postmortem", "--json", "--svg"])
        .arg(&svg)
        .arg("--directory")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!(r["source"]["entries"], truth.entries_total);
    assert_eq!(r["source"]["problems"], serde_json::json!([]));

    let loops = r["loops"].as_array().unwrap();
    let l = loops
        .iter()
        .find(|l| l["unit"] == truth.unit.as_str())
        .unwrap_or_else(|| panic!("no loop of {}: {}", truth.unit, r["loops"]));
    assert_eq!(l["restarts"], truth.restarts);
    assert_eq!(l["counter_max"], truth.counter_max);
    close(
        &l["first_unix"],
        us(truth.first_restart_us),
        "first restart",
    );
    close(&l["last_unix"], us(truth.last_restart_us), "last restart");
    close(&l["span_s"], us(truth.span_us), "span");
    close(&l["rate_per_min"], truth.restarts_per_min, "rate");
    close(
        &l["longest_gap_s"],
        us(truth.longest_restart_gap_us),
        "longest gap",
    );
    let top = &l["top_errors"][0];
    assert_eq!(top["count"], truth.agetty_lines, "{top}");
    assert!(
        top["text"]
            .as_str()
            .unwrap()
            .ends_with("failed to get terminal attributes: Input/output error"),
        "{top}"
    );

    let units = r["journal_units"].as_array().unwrap();
    for (unit, n) in &truth.entries_per_unit {
        let u = units
            .iter()
            .find(|u| u["unit"] == unit.as_str())
            .unwrap_or_else(|| panic!("{unit} not in journal_units"));
        assert_eq!(u["entries"], *n, "{unit}");
    }

    let kills = r["oom_kills"].as_array().unwrap();
    assert_eq!(kills.len(), 1, "{kills:?}");
    let k = &kills[0];
    close(&k["time_unix"], us(truth.oom.time_us), "OOM kill time");
    assert_eq!(k["pid"], truth.oom.pid);
    assert_eq!(k["comm"], truth.oom.comm.as_str());
    assert_eq!(k["unit"], truth.oom.unit.as_str());

    let boots = r["range"]["boots"].as_array().unwrap();
    assert_eq!(boots.len(), truth.boots.len());
    for (b, t) in boots.iter().zip(&truth.boots) {
        assert_eq!(b["boot_id"], t.boot_id.as_str());
        assert_eq!(b["entries"], t.entries);
    }
    let gap = r["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "gap")
        .unwrap_or_else(|| panic!("no gap in {}", r["timeline"]));
    close(
        &gap["time_unix"],
        us(truth.longest_journal_gap_from_us),
        "gap start",
    );
    close(
        &gap["duration_s"],
        us(truth.longest_journal_gap_us),
        "gap length",
    );

    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(
        chart.starts_with("<svg") || chart.starts_with("<?xml"),
        "{}",
        &chart[..80.min(chart.len())]
    );
    assert!(chart.contains(&truth.unit), "the lane is named");
}

/// The text report says the same, as the operators wrote it by hand.
#[test]
fn the_text_report_names_the_loop_and_its_count() {
    let Some((dir, truth, bin)) = fixture() else {
        return;
    };
    let out = Command::new(bin.bin())
        .args(["postmortem", "--directory"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("{}: 421,491 restarts", truth.unit)),
        "{text}"
    );
    assert!(text.contains("mariadbd"), "{text}");
}

/// What trace and the sentinel look up at start in a looping unit's
/// journal, on the incident's: the count's first restart and its restart
/// at the counter systemd would hold, found by field value among 1.26 M
/// entries (the time is printed, not asserted).
#[test]
fn the_start_up_lookup_finds_the_incidents_count() {
    let Some((dir, truth, _)) = fixture() else {
        return;
    };
    let hex = &truth.boots[0].boot_id;
    let boot: [u8; 16] =
        std::array::from_fn(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap());
    let t0 = std::time::Instant::now();
    let mut j = spawnscope::journal::open(&spawnscope::journal::Which::Directory(
        dir.path().to_path_buf(),
    ))
    .unwrap();
    let span = spawnscope::history::restart_span(
        &mut j,
        boot,
        &truth.unit,
        u32::try_from(truth.counter_max).unwrap(),
    )
    .expect("the count's first restart");
    eprintln!(
        "lookup of the count's ends: {:.1} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(span.first_us, truth.first_restart_us);
    assert_eq!(span.last_us, Some(truth.last_restart_us));
}
