//! The container journal fixture's truth holds together: a real journald
//! in a booted container stored what the units did (restart counts that
//! reach what systemd's NRestarts says, the logger's every line, agetty's
//! real error text, the kernel's OOM kill where the host allows one).
//! This proves the fixture, not `spawnscope postmortem`.

use spawnscope_tests::{
    journal::{FAST_RESTARTS, LOGGER_LINES, container_journal, journalctl},
    systemd::Suite,
};

fn container_journal_is_self_consistent(suite: Suite) {
    let Some(j) = container_journal(suite) else {
        return;
    };
    eprintln!(
        "container journal ({}): {} entries ({} kernel), {:.1}s in the container, {:.1}s in all; \
         fast getty {} restarts, slow getty {}; OOM: {:?}; per unit {:?}",
        suite.name(),
        j.entries_total,
        j.kernel_entries,
        j.container_time.as_secs_f64(),
        j.took.as_secs_f64(),
        j.getty_restarts,
        j.slow_getty_restarts,
        j.oom,
        j.unit_entries
    );
    assert!(j.getty_nrestarts >= FAST_RESTARTS, "{}", j.getty_nrestarts);
    // journalctl -u shows agetty's line and systemd's restart line for
    // every restart, at least.
    assert!(
        j.unit_entries[&j.getty_unit] >= 2 * j.getty_restarts,
        "{:?}",
        j.unit_entries
    );
    // The incident's message template, from the real agetty.
    assert!(
        j.slow_getty_error.contains("ttyS9"),
        "{}",
        j.slow_getty_error
    );
    assert_eq!(j.getty_error, "not enough arguments");
    assert_eq!(j.logger_lines, LOGGER_LINES);
    assert!(j.unit_entries[&j.logger_unit] > LOGGER_LINES);
    // The restart line for the final count is in the journal.
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
    let boots = journalctl(&j.dir, &["--list-boots", "-o", "json"]);
    assert!(boots.contains(&j.boot_id), "{boots}");
    match &j.oom {
        Ok(oom) => {
            assert_eq!(oom.comm, "tail", "{oom:?}");
            assert!(oom.message.contains("Killed process"), "{oom:?}");
            assert!(j.kernel_entries > 0);
        }
        Err(why) => eprintln!("no OOM kill in this journal: {why}"),
    }
}

#[test]
fn container_journal_is_self_consistent_bookworm() {
    container_journal_is_self_consistent(Suite::Bookworm);
}

#[test]
fn container_journal_is_self_consistent_trixie() {
    container_journal_is_self_consistent(Suite::Trixie);
}
