//! `spawnscope export`: a `trace --record` file read into histograms and
//! rendered in every format (HdrHistogram log, JSON, Prometheus text,
//! SVG). Slow per input: walking 3-digit histograms dominates; the
//! `recording` target covers the reading alone, much faster.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spawnscope::export::{Data, Exporter, hdr::Hdr, json::Json, prom::Prom, svg::Svg};
use spawnscope_fuzz::{assert_one_line, write};

fuzz_target!(|data: &[u8]| {
    let path = write("recording.jsonl", data);
    match Data::from_recording(&path) {
        Ok(d) => {
            let exporters: [&dyn Exporter; 4] = [&Hdr, &Json, &Prom, &Svg];
            for x in exporters {
                x.files(&d);
            }
        }
        Err(e) => assert_one_line(&e.to_string()),
    }
});
