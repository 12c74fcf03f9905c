//! A journal file, read as `postmortem --file` reads it: opened and
//! mapped, its boots listed, every entry walked into the report (rendered
//! as text, JSON and SVG), one boot's last minute read as the clean
//! shutdown check reads it, and field values looked up through the DATA
//! hash table as the restart history looks them up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spawnscope::{
    journal::{self, Filter, Which},
    postmortem::{Analyzer, SourceInfo},
};
use spawnscope_fuzz::{assert_one_line, write};

fuzz_target!(|data: &[u8]| {
    let path = write("system.journal", data);
    let mut j = match journal::open(&Which::Files(vec![path])) {
        Ok(j) => j,
        Err(e) => return assert_one_line(&e.to_string()),
    };
    let boots = match j.boots() {
        Ok(b) => b,
        Err(e) => return assert_one_line(&e.to_string()),
    };
    let mut a = Analyzer::new(None);
    // A value the file holds, to look up below.
    let mut first_unit: Option<Vec<u8>> = None;
    let stats = match j.read(&Filter::default(), &mut |e| {
        if first_unit.is_none() {
            first_unit = e.get("_SYSTEMD_UNIT").map(<[u8]>::to_vec);
        }
        a.push(e)
    }) {
        Ok(s) => s,
        Err(e) => return assert_one_line(&e.to_string()),
    };
    for p in &stats.problems {
        assert_one_line(&p.to_string());
    }
    let report = a.finish(SourceInfo {
        files: stats.files,
        entries: stats.entries,
        bytes: stats.bytes,
        problems: stats
            .problems
            .iter()
            .map(|p| (p.path.display().to_string(), p.what.clone()))
            .collect(),
    });
    report.to_text();
    report.to_json();
    report.to_svg();
    if let Some(b) = boots.last() {
        let last_minute = Filter {
            boot: Some(b.id),
            since_us: Some(b.last_us.saturating_sub(60_000_000)),
            until_us: None,
        };
        let _ = j.read(&last_minute, &mut |e| {
            e.get("MESSAGE_ID");
        });
    }
    let mut wanted = vec![b"N_RESTARTS=1".to_vec()];
    if let Some(unit) = first_unit {
        wanted.push([b"_SYSTEMD_UNIT=".as_slice(), &unit].concat());
    }
    for payload in wanted {
        let stats = j.matching(&payload, &Filter::default(), &mut |e| {
            e.get("UNIT");
            e.get("MESSAGE_ID");
            e.realtime_us();
        });
        for p in &stats.problems {
            assert_one_line(&p.to_string());
        }
    }
});
