//! The HdrHistogram interval log: the standard text log (`#[StartTime]`
//! header, one CSV line per histogram: `Tag=...,start,duration,max,base64
//! of the compressed V2 encoding`), readable by the Java, Python, Go and
//! Rust HdrHistogram libraries. One line per unit and measure, spanning
//! the recording; the tag is `<measure>:<unit label>`, with the characters
//! a tag may not hold (',', space, CR, LF) and '\' escaped as `\xNN`.

use std::time::Duration;

use hdrhistogram::{
    Histogram,
    serialization::{
        Deserializer, V2DeflateSerializer,
        interval_log::{IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag},
    },
};

use super::{Data, Measure};

pub const FILE_NAME: &str = "spawnscope.hlog";

pub struct Hdr;

impl super::Exporter for Hdr {
    fn files(&self, data: &Data) -> Vec<(&'static str, Vec<u8>)> {
        vec![(FILE_NAME, write(data))]
    }
}

/// Escapes what a tag may not contain.
pub fn tag_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ',' | ' ' | '\r' | '\n' | '\\' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Undoes [`tag_escape`].
pub fn tag_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("\\x") {
        out.push_str(&rest[..i]);
        let hex = rest.get(i + 2..i + 4);
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(b) => {
                out.push(b as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push_str("\\x");
                rest = &rest[i + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The interval log of `data`.
pub fn write(data: &Data) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = V2DeflateSerializer::new();
    let start = std::time::UNIX_EPOCH + Duration::from_secs_f64(data.start_unix.max(0.0));
    let span = Duration::from_secs_f64((data.end_unix - data.start_unix).max(0.0));
    let mut b = IntervalLogWriterBuilder::new();
    b.add_comment(&format!(
        "spawnscope {} export: tags are <measure>:<unit>",
        env!("CARGO_PKG_VERSION")
    ));
    for m in Measure::ALL {
        b.add_comment(&format!("{} in {}", m.name(), m.unit()));
    }
    b.add_comment("memory_used in bytes, one value per trace interval");
    b.with_start_time(start);
    let mut w = b
        .begin_log_with(&mut out, &mut ser)
        .expect("writing to memory");
    for (label, u) in &data.units {
        for (m, h) in &u.hists {
            if h.is_empty() {
                continue;
            }
            let tag = format!("{}:{}", m.name(), tag_escape(label));
            w.write_histogram(
                h,
                Duration::ZERO,
                span,
                Some(Tag::new(&tag).expect("escaped")),
            )
            .expect("writing to memory");
        }
    }
    if !data.memory_hist.is_empty() {
        w.write_histogram(
            &data.memory_hist,
            Duration::ZERO,
            span,
            Some(Tag::new(MEMORY_TAG).expect("plain")),
        )
        .expect("writing to memory");
    }
    out
}

/// The system's memory used (bytes), one value per `trace` interval.
pub const MEMORY_TAG: &str = "memory_used:(system)";

/// One histogram read back from a log.
#[derive(Debug, Clone)]
pub struct Entry {
    pub measure: Option<Measure>,
    pub unit: String,
    pub start: Duration,
    pub duration: Duration,
    pub hist: Histogram<u64>,
}

/// Reads an interval log written by [`write`] (or any with such tags).
pub fn read(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let mut de = Deserializer::new();
    let mut out = Vec::new();
    for e in IntervalLogIterator::new(bytes) {
        let e = e.map_err(|e| format!("interval log: {e:?}"))?;
        let LogEntry::Interval(h) = e else { continue };
        let tag = h.tag().map(|t| t.as_str()).unwrap_or("");
        let (m, unit) = tag.split_once(':').unwrap_or(("", tag));
        let raw = base64_decode(h.encoded_histogram())?;
        let hist: Histogram<u64> = de
            .deserialize(&mut &raw[..])
            .map_err(|e| format!("histogram {tag}: {e:?}"))?;
        out.push(Entry {
            measure: Measure::parse(m),
            unit: tag_unescape(unit),
            start: h.start_timestamp(),
            duration: h.duration(),
            hist,
        });
    }
    Ok(out)
}

fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| format!("base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::{Data, tests::fixture};

    #[test]
    fn tags_escape_what_a_tag_may_not_hold() {
        let raw = "a b,c\\d\ne@web";
        let t = tag_escape(raw);
        assert_eq!(t, "a\\x20b\\x2cc\\x5cd\\x0ae@web");
        assert!(Tag::new(&t).is_some());
        assert_eq!(tag_unescape(&t), raw);
        assert_eq!(tag_unescape("x\\xzz"), "x\\xzz", "not an escape: kept");
    }

    #[test]
    fn round_trip_gives_identical_histograms() {
        let d = Data::from_recording(&fixture()).unwrap();
        let log = write(&d);
        let text = String::from_utf8(log.clone()).unwrap();
        assert!(text.contains("#[StartTime: "), "{text}");
        let back = read(&log).unwrap();
        let mut n = 0;
        for (label, u) in &d.units {
            for (m, h) in u.hists.iter().filter(|(_, h)| !h.is_empty()) {
                let e = back
                    .iter()
                    .find(|e| e.measure == Some(*m) && &e.unit == label)
                    .unwrap_or_else(|| panic!("{label} {m:?} missing"));
                assert_eq!(&e.hist, h, "{label} {m:?}");
                assert_eq!(e.hist.value_at_quantile(0.99), h.value_at_quantile(0.99));
                assert_eq!(e.start, Duration::ZERO);
                n += 1;
            }
        }
        assert_eq!(back.len(), n, "nothing else in the log");
        assert_eq!(
            n, 3,
            "lifetime, exec interval and exec rate of '/' (no unit there restarts)"
        );
    }

    #[test]
    fn memory_series_is_a_histogram_of_its_own() {
        let mut d = Data::from_recording(&fixture()).unwrap();
        for v in [100u64 << 20, 120 << 20, 140 << 20] {
            d.memory_hist.record(v).unwrap();
        }
        let back = read(&write(&d)).unwrap();
        let m = back
            .iter()
            .find(|e| e.measure.is_none() && e.unit == "(system)")
            .expect("the memory line");
        assert_eq!(m.hist, d.memory_hist);
        assert_eq!(m.hist.len(), 3);
    }

    #[test]
    fn damaged_logs_are_errors() {
        assert!(read(b"Tag=x,0.0,1.0,1.0,not-base64!\n").is_err());
        assert!(
            read(b"Tag=x,0.0,1.0,1.0,QUJD\n").is_err(),
            "not a histogram"
        );
    }
}
