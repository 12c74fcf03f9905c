//! `trace --for … --json`: one valid JSON object per line, each with its
//! schema version, intervals then a summary, with the documented fields,
//! and this machine's own activity.

use serde_json::Value;
use spawnscope_tests::{
    RunningKernel, Tracer, own_cgroup, require_root, row_with_id, spawn_true, summary,
};

const COUNTER_FIELDS: [&str; 9] = [
    "forks",
    "threads",
    "execs",
    "exits",
    "exit_clean",
    "exit_failed",
    "exit_signaled",
    "exit_core_dumped",
    "thread_exits",
];

fn assert_counters(v: &Value) {
    for f in COUNTER_FIELDS {
        assert!(v[f].is_u64(), "counter {f} missing in {v}");
    }
    let by_class: u64 = [
        "exit_clean",
        "exit_failed",
        "exit_signaled",
        "exit_core_dumped",
    ]
    .iter()
    .map(|f| v[f].as_u64().unwrap())
    .sum();
    assert_eq!(
        v["exits"].as_u64().unwrap(),
        by_class,
        "exits is the sum of its classes: {v}"
    );
}

#[test]
fn timed_json_trace_reports_own_activity() {
    if !require_root("json_output") {
        return;
    }
    let Some(kernel) = RunningKernel::get("json_output") else {
        return;
    };
    let (own, own_id) = own_cgroup();

    let tracer = Tracer::start(&["--for", "2s", "--interval", "500ms"]);
    spawn_true(20);
    let (code, lines, stderr) = tracer.finish();
    assert_eq!(code, Some(0), "{stderr}");

    // Every line names the schema of its object.
    for l in &lines {
        assert_eq!(l["schema"], spawnscope::output::schema::SCHEMA, "{l}");
    }
    let (before, rest) = lines.split_at(lines.len() - 1);
    // The host's own activity may add a finding or a memory warning
    // between the intervals (they are JSON lines too); nothing else.
    for l in before {
        assert!(
            [
                "interval",
                "finding",
                "memory_warning",
                "oom_kill",
                "memcg_oom_kill"
            ]
            .contains(&l["type"].as_str().unwrap_or_default()),
            "unexpected line before the summary: {l}"
        );
    }
    let intervals: Vec<&Value> = before.iter().filter(|l| l["type"] == "interval").collect();
    // Ticks every 500 ms of the run; the last tick is the summary. A loaded
    // host may stretch the run, never the interval, so count by the run's
    // own length.
    let ticks = rest[0]["duration_s"].as_f64().unwrap() / 0.5 - 1.0;
    assert!(
        (intervals.len() as f64 - ticks).abs() <= 1.5,
        "{} intervals in a run of {} s",
        intervals.len(),
        rest[0]["duration_s"]
    );
    for i in intervals {
        assert!(i["elapsed_s"].as_f64().unwrap() > 0.0);
        assert!(i["interval_s"].as_f64().unwrap() > 0.0);
        assert_counters(&i["overflow"]);
        assert_eq!(i["by"], "unit");
        for row in i["rows"].as_array().unwrap() {
            assert_row_shape(row);
            assert_counters(&row["interval"]);
            for r in ["forks_per_s", "execs_per_s", "exits_per_s", "threads_per_s"] {
                assert!(row["rate"][r].is_f64(), "{r} in {row}");
            }
        }
    }
    let s = summary(rest);
    assert!(
        (1.9..10.0).contains(&s["duration_s"].as_f64().unwrap()),
        "{s}"
    );
    assert_counters(&s["totals"]);
    assert_eq!(
        s["exit_program"],
        kernel.auto_exit_program(),
        "{}",
        kernel.release
    );
    assert_eq!(s["by"], "unit");
    assert_eq!(s["matched"], Value::Null, "no filter given");
    assert_eq!(
        s["attribution_warning"],
        Value::Null,
        "this host has cgroup2"
    );
    for row in s["rows"].as_array().unwrap() {
        assert_row_shape(row);
        assert!(row.get("interval").is_none() && row.get("rate").is_none());
    }
    let mine = row_with_id(s, own_id);
    assert!(
        mine["cgroups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["path"] == own.as_str()),
        "{mine}"
    );
    assert!(mine["total"]["execs"].as_u64().unwrap() >= 20, "{mine}");
    assert!(
        mine["total"]["exit_clean"].as_u64().unwrap() >= 20,
        "{mine}"
    );
    // Totals are the sum of all rows plus overflow.
    let sum: u64 = s["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["total"]["execs"].as_u64().unwrap())
        .sum();
    assert_eq!(
        s["totals"]["execs"].as_u64().unwrap(),
        sum + s["overflow"]["execs"].as_u64().unwrap()
    );
}

/// Every row names its group, carries the owner fields (null where they do
/// not apply) and the cgroups it is made of.
fn assert_row_shape(row: &Value) {
    assert!(row["group"].is_string(), "{row}");
    for f in [
        "unit",
        "slice",
        "template",
        "instance",
        "user",
        "user_manager",
        "container",
    ] {
        assert!(row.get(f).is_some(), "field {f} missing in {row}");
    }
    let members = row["cgroups"].as_array().unwrap();
    assert!(!members.is_empty(), "{row}");
    for m in members {
        assert!(m["path"].is_string() || m["path"].is_null(), "{m}");
        assert!(!m["ids"].as_array().unwrap().is_empty(), "{m}");
    }
    assert_counters(&row["total"]);
}
