//! One JSON object per line: each interval, then the summary.

use std::io::{self, Write};

use super::Reporter;
use super::schema::{IntervalReport, Summary};

pub struct Json<W: Write> {
    out: W,
}

impl<W: Write> Json<W> {
    pub fn new(out: W) -> Self {
        Self { out }
    }

    fn line(&mut self, v: &impl serde::Serialize) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, v)?;
        self.out.write_all(b"\n")?;
        // Consumers (jq, the tests) read line by line while we run.
        self.out.flush()
    }
}

impl<W: Write> Reporter for Json<W> {
    fn interval(&mut self, r: &IntervalReport) -> io::Result<()> {
        self.line(r)
    }

    fn summary(&mut self, s: &Summary) -> io::Result<()> {
        self.line(s)
    }
}
