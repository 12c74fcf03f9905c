//! The fleet, end to end, with the servers users run: Debian's Prometheus
//! scrapes six sentinels standing for six hosts (distinct `instance`
//! labels) and evaluates the shipped rules as they are; Debian's
//! Alertmanager routes what fires to a webhook receiver the test runs.
//!
//! - host-a is the packaged unit in a real systemd (the nspawn fixture);
//!   a real agetty crash-loops there. `SpawnscopeRespawnLoop` fires for
//!   host-a and that unit, reaches the webhook, and resolves once the loop
//!   is stopped.
//! - host-d is stopped, and host-f stopped as a whole with SIGSTOP: each
//!   scrape fails (refused, or timed out), and `SpawnscopeDown` fires for
//!   those two alone. host-e's poll loop is stalled (its thread held in a
//!   ptrace stop, the stop SIGSTOP makes, for that one thread; the endpoint
//!   answers on): `SpawnscopeNotPolling` fires for it alone.
//! - Every panel query of the shipped Grafana dashboard parses and returns
//!   data from this Prometheus.
//! - 10,000 transient units come and go and one unit's cgroup is made
//!   anew 3,000 times: the series Prometheus holds for each sentinel stay
//!   under the bound docs/sentinel.md gives for its `top_units`.
//!
//! The sentinels share this kernel, so each sees the others' units too
//! (the loop in host-a's container is a finding on every live sentinel);
//! the checks are on each alert's own instance.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use serde_json::Value;
use spawnscope_tests::{
    TestCgroup,
    journal::FAST_GETTY,
    prom::{self, Webhook},
    require_root,
    sentinel::{Sentinel, config},
    skip,
    systemd::{Suite, SystemdContainer},
};

const SENTINEL: &str = "spawnscope-sentinel.service";
const GETTY: &str = "serial-getty@ttyS0.service";
const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../dist/spawnscope.rules.yml");
const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../dist/sentinel.toml");
const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../dist/spawnscope.dashboard.json"
);

/// The documented bound on a sentinel's series, bar the per-manager
/// (`spawnscope_hidden_*`) and per-program (`spawnscope_bpf_*`) ones:
/// 33 per unit label (`top_units` and `other`), 7 per unit whose finding
/// was shown, 30 of the sentinel's own and 5 Prometheus adds per target.
fn bound(top_units: u64, finding_units: u64) -> u64 {
    33 * (top_units + 1) + 7 * finding_units + 30 + 5
}

/// One number per instance from an instant query's result.
fn by_instance(result: &[Value]) -> BTreeMap<String, u64> {
    result
        .iter()
        .map(|s| {
            (
                s["metric"]["instance"].as_str().unwrap_or("").to_string(),
                s["value"][1].as_str().unwrap().parse::<f64>().unwrap() as u64,
            )
        })
        .collect()
}

#[test]
fn prometheus_and_alertmanager_alert_on_a_fleet_of_sentinels() {
    if !require_root("prometheus_fleet") {
        return;
    }
    for bin in [prom::PROMETHEUS, prom::ALERTMANAGER] {
        if !std::path::Path::new(bin).exists() {
            skip(&format!(
                "prometheus_fleet: {bin} is missing (cargo xtask setup installs it)"
            ));
            return;
        }
    }
    let Some((ct, _)) = SystemdContainer::boot_for_shipped_sentinel("fleet", Suite::Bookworm)
    else {
        return;
    };
    let shipped = std::fs::read_to_string(CONFIG)
        .unwrap()
        .replace("listen = \"127.0.0.1:9479\"", "listen = \"127.0.0.1:0\"")
        .replace("interval = \"5s\"", "interval = \"1s\"");
    assert!(
        shipped.contains("top_units = 50")
            && shipped.contains("listen = \"127.0.0.1:0\"")
            && shipped.contains("interval = \"1s\""),
        "{shipped}"
    );
    std::fs::create_dir_all(ct.guest_path("/etc/spawnscope")).unwrap();
    std::fs::write(ct.guest_path("/etc/spawnscope/sentinel.toml"), shipped).unwrap();
    ct.run(&["systemctl", "start", SENTINEL]);
    let host_a = ct.sentinel_serving(SENTINEL);

    let dirs: Vec<tempfile::TempDir> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let top = [("host-a", 50u64), ("host-b", 5), ("host-c", 20)];
    let start = |i: usize, top_units: u64| {
        let d = dirs[i].path();
        Sentinel::start(d, &config(d, &format!("top_units = {top_units}\n")))
    };
    let b = start(0, 5);
    let c = start(1, 20);
    let d = start(2, 20);
    let e = start(3, 20);
    let f = start(4, 20);

    let work = tempfile::tempdir().unwrap();
    let hook = Webhook::start();
    let am = prom::alertmanager(
        work.path(),
        &format!(
            "route:\n  receiver: hook\n  group_by: [alertname, instance, unit]\n  group_wait: 1s\n  \
             group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    \
             webhook_configs:\n      - url: '{}'\n        send_resolved: true\n",
            hook.url()
        ),
    );
    let target = |addr: std::net::SocketAddr, name: &str| {
        format!("      - targets: ['{addr}']\n        labels: {{instance: {name}}}\n")
    };
    let prometheus = prom::prometheus(
        work.path(),
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files: ['{RULES}']\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{}']\n\
             scrape_configs:\n  - job_name: spawnscope\n    static_configs:\n{}{}{}{}{}{}",
            am.addr,
            target(host_a, "host-a"),
            target(b.addr, "host-b"),
            target(c.addr, "host-c"),
            target(d.addr, "host-d"),
            target(e.addr, "host-e"),
            target(f.addr, "host-f"),
        ),
    );
    let p = prometheus.addr;
    let deadline = Instant::now() + Duration::from_secs(60);
    while prom::query(p, "sum(up{job=\"spawnscope\"})")
        .first()
        .is_none_or(|s| s["value"][1] != "6")
    {
        assert!(Instant::now() < deadline, "six targets never all up");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The two stale sentinels first: their rules' clocks run meanwhile.
    let t_stale = Instant::now();
    d.signal(libc::SIGTERM);
    let (code, stderr) = d.wait();
    assert_eq!(code, Some(0), "{stderr}");
    let stalled = e.stop_poll_loop();
    f.signal(libc::SIGSTOP);

    // A real agetty, crash-looping in host-a.
    ct.install_unit(GETTY, FAST_GETTY);
    let t_loop = Instant::now();
    ct.run(&["systemctl", "start", GETTY]);
    let label = format!("{GETTY} @{}", ct.name);
    let loop_labels = [
        ("alertname", "SpawnscopeRespawnLoop"),
        ("instance", "host-a"),
        ("unit", label.as_str()),
    ];
    let (fired, alert) = hook.wait_for(Duration::from_secs(120), "firing", &loop_labels);
    assert_eq!(alert["labels"]["kind"], "respawn_loop", "{alert}");
    assert_eq!(alert["labels"]["job"], "spawnscope", "{alert}");

    // Every dashboard query, as Grafana would send it for all instances,
    // while the loop is open.
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap()).unwrap();
    let mut queries = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$instance", ".+")
                .replace("$__rate_interval", "1m");
            let deadline = Instant::now() + Duration::from_secs(30);
            while prom::query(p, &expr).is_empty() {
                assert!(
                    Instant::now() < deadline,
                    "panel {}: no data for {expr}",
                    panel["title"]
                );
                std::thread::sleep(Duration::from_millis(500));
            }
            queries += 1;
        }
    }
    let restarts: u64 = ct.show(GETTY, &["NRestarts"])["NRestarts"].parse().unwrap();
    let t_stop = Instant::now();
    ct.run(&["systemctl", "stop", GETTY]);

    // Churn, counted as series: before, during and after. The series the
    // sentinels serve, not those the rules make (ALERTS, with the same
    // job and instance).
    let series = |sel: &str| {
        by_instance(&prom::query(
            p,
            &format!(
                "count by (instance) (last_over_time({{job=\"spawnscope\",__name__!~\"ALERTS.*\"{sel}}}[1h]))"
            ),
        ))
    };
    // host-b's restarts and lost cgroup records, summed over its units
    // (labelled or in "other").
    let tally = || {
        let one = |expr: &str| {
            prom::query(p, expr).first().map_or(0.0, |s| {
                s["value"][1].as_str().unwrap().parse::<f64>().unwrap()
            })
        };
        (
            one("sum(spawnscope_unit_restarts_total{instance=\"host-b\"})"),
            one("sum(spawnscope_probe_errors_total{instance=\"host-b\",kind=\"names_lost\"})"),
        )
    };
    let before = series("");
    let (restarts0, lost0) = tally();
    // In batches of 40 units (80 cgroup records), each given time to be
    // read: a sentinel's cgroup ring holds about 240.
    let batch = || std::thread::sleep(Duration::from_millis(100));
    let looping = TestCgroup::named("fleet-loop", ".slice");
    for i in 0..3000 {
        looping.run_transient("respawn.service");
        if i % 40 == 39 {
            batch();
        }
    }
    // Scraped since: the re-created unit's restarts were counted, not
    // merely survived (2,999, less any creation whose record was lost;
    // other units restarting meanwhile only add).
    std::thread::sleep(Duration::from_secs(3));
    let (restarts1, lost1) = tally();
    eprintln!(
        "host-b: {} restarts counted, {} cgroup records lost, while one unit was made anew 3000 times",
        restarts1 - restarts0,
        lost1 - lost0
    );
    assert!(
        restarts1 - restarts0 + (lost1 - lost0) >= 2999.0,
        "host-b counted {} restarts and lost {} records",
        restarts1 - restarts0,
        lost1 - lost0
    );
    let units = TestCgroup::named("fleet-units", ".slice");
    for i in 0..10_000 {
        units.run_transient(&format!("fleet-u{i}.service"));
        if i % 40 == 39 {
            batch();
        }
    }
    // Two more scrapes of every churned unit's last counts.
    std::thread::sleep(Duration::from_secs(3));
    let after = series("");
    let hidden = series(",__name__=~\"spawnscope_hidden_.*\"");
    let bpf = series(",__name__=~\"spawnscope_bpf_run.*\"");
    let managers = by_instance(&prom::query(
        p,
        "count by (instance) (count by (instance, container, what) (last_over_time(spawnscope_hidden_bytes[1h])))",
    ));
    let finding_units = by_instance(&prom::query(
        p,
        "count by (instance) (count by (instance, unit) (last_over_time(spawnscope_finding[1h])))",
    ));
    let head = prom::head_series(p);
    eprintln!(
        "series per sentinel before the churn {before:?}, after {after:?}; hidden {hidden:?} \
         over {managers:?} (instance, container, what); bpf {bpf:?}; units with findings \
         {finding_units:?}; Prometheus's head: {head} series"
    );
    for (instance, t) in top {
        let n = after[instance];
        let h = hidden.get(instance).copied().unwrap_or(0);
        // Three families per (container, what): bytes, growth, per restart.
        assert!(
            h <= 3 * managers.get(instance).copied().unwrap_or(0),
            "{instance}: {h} hidden series"
        );
        let f = finding_units.get(instance).copied().unwrap_or(0);
        let max = bound(t, f);
        let own = n - h - bpf.get(instance).copied().unwrap_or(0);
        assert!(
            own <= max,
            "{instance} (top_units {t}): {own} series, bound {max}"
        );
    }

    // The loop's alert resolves once the finding closes.
    let (resolved, _) = hook.wait_for(Duration::from_secs(180), "resolved", &loop_labels);
    // The stale sentinels' alerts, each for its own instance only.
    let (down, _) = hook.wait_for(
        Duration::from_secs(240),
        "firing",
        &[("alertname", "SpawnscopeDown"), ("instance", "host-d")],
    );
    let (sigstopped, _) = hook.wait_for(
        Duration::from_secs(240),
        "firing",
        &[("alertname", "SpawnscopeDown"), ("instance", "host-f")],
    );
    let (not_polling, a) = hook.wait_for(
        Duration::from_secs(240),
        "firing",
        &[
            ("alertname", "SpawnscopeNotPolling"),
            ("instance", "host-e"),
        ],
    );
    assert!(
        a["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("has not polled for"),
        "{a}"
    );
    for n in hook.all() {
        for (name, own) in [
            ("SpawnscopeDown", ["host-d", "host-f"]),
            ("SpawnscopeNotPolling", ["host-e", "host-e"]),
        ] {
            for x in n.alerts("firing", &[("alertname", name)]) {
                let i = x["labels"]["instance"].as_str().unwrap_or("");
                assert!(own.contains(&i), "{x}");
            }
        }
    }
    drop(stalled);
    eprintln!(
        "fleet: loop started -> firing at the webhook {:.1} s (rule: no for); stopped after \
         {restarts} restarts -> resolved {:.1} s (the finding closes after 60 s without a \
         restart); host-d stopped -> SpawnscopeDown {:.1} s (for: 2m); host-f SIGSTOPped -> \
         SpawnscopeDown {:.1} s; host-e's loop stalled -> SpawnscopeNotPolling {:.1} s (stale \
         past 60 + 3 x 0.5 s, for: 1m); {queries} dashboard queries answered",
        (fired - t_loop).as_secs_f64(),
        (resolved - t_stop).as_secs_f64(),
        (down - t_stale).as_secs_f64(),
        (sigstopped - t_stale).as_secs_f64(),
        (not_polling - t_stale).as_secs_f64(),
    );
    f.signal(libc::SIGCONT);
    drop((b, c, e, f));
    ct.shutdown();
}
