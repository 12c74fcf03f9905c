//! Writes the incident's journal at full size into DIR (see
//! `spawnscope_tests::journal::incident_journal`) and prints its truth as
//! JSON: what `cargo xtask bench postmortem` reads.

use std::{path::PathBuf, process::ExitCode};

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: incident-journal DIR");
        return ExitCode::from(2);
    };
    let Some(t) = spawnscope_tests::journal::incident_journal(&dir) else {
        eprintln!(
            "incident-journal: the journal tools are missing (cargo xtask test installs them)"
        );
        return ExitCode::FAILURE;
    };
    let truth = serde_json::json!({
        "unit": t.unit,
        "restarts": t.restarts,
        "entries": t.entries_total,
        "files": t.files.len(),
        "seconds": t.took.as_secs_f64(),
        "from_cache": t.from_cache,
    });
    println!("{truth}");
    ExitCode::SUCCESS
}
