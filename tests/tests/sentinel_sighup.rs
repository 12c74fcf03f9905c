//! SIGHUP reloads the configuration file. A bad file is logged, with the
//! key at fault, and the old configuration stays in force; a good one
//! takes effect at once.

use std::time::Duration;

use spawnscope_tests::{
    TestCgroup, require_root,
    sentinel::{Sentinel, config},
};

/// Distinct `unit` labels of spawnscope_spawns_total.
fn units(text: &str) -> Vec<String> {
    let mut u: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("spawnscope_spawns_total{") && l.contains("kind=\"exec\""))
        .map(|l| l.split('"').nth(1).unwrap().to_string())
        .collect();
    u.dedup();
    u
}

#[test]
fn bad_config_on_sighup_keeps_the_old_one() {
    if !require_root("sentinel_sighup") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = TestCgroup::named("hup-a", ".service");
    let b = TestCgroup::named("hup-b", ".service");
    let mut s = Sentinel::start(dir.path(), &config(dir.path(), "top_units = 50\n"));
    for cg in [&a, &b] {
        assert!(cg.command("/bin/true").status().unwrap().success());
    }
    s.wait_metrics(Duration::from_secs(20), "both units", |m| {
        [&a, &b].iter().all(|cg| {
            let u = cg.path.file_name().unwrap().to_str().unwrap();
            m.contains_key(&format!(
                "spawnscope_spawns_total{{unit=\"{u}\",kind=\"exec\"}}"
            ))
        })
    });
    let ours: Vec<String> = [&a, &b]
        .iter()
        .map(|cg| cg.path.file_name().unwrap().to_str().unwrap().to_string())
        .collect();

    // An unknown key: refused, old configuration kept, still serving.
    std::fs::write(
        &s.config,
        config(dir.path(), "top_units = 1\ntop_unitz = 2\n"),
    )
    .unwrap();
    s.signal(libc::SIGHUP);
    let refused = s.wait_line(
        Duration::from_secs(10),
        "SIGHUP: keeping the old configuration",
    );
    assert!(refused.starts_with("<3>spawnscope: SIGHUP: keeping the old configuration: "));
    assert!(refused.contains("top_unitz"), "names the key: {refused}");
    let polls =
        s.wait_metrics(Duration::from_secs(5), "a poll", |_| true)["spawnscope_polls_total"];
    s.wait_metrics(Duration::from_secs(10), "polls after the refusal", |m| {
        m["spawnscope_polls_total"] >= polls + 2.0
    });
    // Under top_units = 1 at most one of the two would keep its own label;
    // the host's other units come and go and are not this test's.
    let after = units(&s.scrape());
    assert!(
        ours.iter().all(|u| after.contains(u)),
        "top_units still 50: both {ours:?} in {after:?}"
    );

    // A good file: top_units = 1 leaves one unit and "other".
    std::fs::write(&s.config, config(dir.path(), "top_units = 1\n")).unwrap();
    s.signal(libc::SIGHUP);
    s.wait_line(
        Duration::from_secs(10),
        "SIGHUP: configuration reloaded from",
    );
    let m = s.wait_metrics(Duration::from_secs(10), "one unit and other", |m| {
        m.keys()
            .filter(|k| k.starts_with("spawnscope_spawns_total{") && k.contains("kind=\"exec\""))
            .count()
            == 2
    });
    assert!(m.contains_key("spawnscope_spawns_total{unit=\"other\",kind=\"exec\"}"));
    s.signal(libc::SIGTERM);
    let (code, stderr) = s.wait();
    assert_eq!(code, Some(0), "{stderr}");
}
