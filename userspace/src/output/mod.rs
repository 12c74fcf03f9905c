//! Output formats, one module each behind [`Reporter`].

use std::io;

use self::schema::{IntervalReport, Summary};

pub mod json;
pub mod schema;
pub mod table;

pub trait Reporter {
    /// Called once per `--interval` tick.
    fn interval(&mut self, r: &IntervalReport) -> io::Result<()>;
    /// Called once at the end, including after Ctrl-C or SIGTERM.
    fn summary(&mut self, s: &Summary) -> io::Result<()>;
}
