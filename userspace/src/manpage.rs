//! Man pages, one per command, from the clap definition and the help data
//! in [`crate::cli::help`]. The output depends on nothing but this binary
//! (no date, no environment), so that release artifacts are reproducible.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use clap::CommandFactory;
use clap_mangen::{
    Man,
    roff::{Roff, bold, roman},
};

use crate::cli::{
    Cli,
    help::{self, Doc},
};

#[derive(Debug, thiserror::Error)]
pub enum ManError {
    #[error("cannot create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("subcommand {0} has no examples or exit statuses to document")]
    Undocumented(String),
}

/// One page: its file name and roff text.
pub struct Page {
    pub file_name: String,
    pub roff: Vec<u8>,
}

/// Every page: `spawnscope.1`, then `spawnscope-<sub>.1` per visible
/// subcommand.
pub fn pages() -> Result<Vec<Page>, ManError> {
    // No `help` subcommand: `--help` is an option here.
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = vec![page(&cmd, &help::TOP)];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let (_, doc) = help::SUBCOMMANDS
            .iter()
            .find(|(name, _)| *name == sub.get_name())
            .ok_or_else(|| ManError::Undocumented(sub.get_name().to_string()))?;
        out.push(page(sub, doc));
    }
    Ok(out)
}

fn page(cmd: &clap::Command, doc: &Doc) -> Page {
    // clap_mangen would print the after-help text as one filled paragraph
    // (an "EXTRA" section), running the examples together; the same data
    // is rendered below as proper man sections instead. The version goes
    // into the title line, not a section after them.
    let stripped = cmd.clone().after_help(None::<&str>).version(None::<&str>);
    // No date: the page must not change from one build to the next. An
    // empty argument would vanish from the .TH line and shift the source
    // into the date's place, hence a quoted empty one (roff leaves
    // arguments without spaces unquoted).
    let man = Man::new(stripped)
        .date("\"\"")
        .source(format!("spawnscope {}", env!("CARGO_PKG_VERSION")));
    let file_name = man.get_filename();
    let mut roff = Vec::new();
    // Rendering into a Vec cannot fail.
    let _ = man.render(&mut roff);
    let _ = sections(doc).to_writer(&mut roff);
    Page { file_name, roff }
}

/// The help data's sections, EXAMPLES and EXIT STATUS as roff.
fn sections(doc: &Doc) -> Roff {
    let mut r = Roff::new();
    for s in doc.sections {
        r.control("SH", [s.title.to_uppercase().as_str()]);
        preformatted(&mut r, s.body);
    }
    r.control("SH", ["EXAMPLES"]);
    for e in doc.examples {
        r.control("PP", []);
        r.text([roman(e.what)]);
        preformatted(&mut r, &e.command_line());
    }
    r.control("SH", ["EXIT STATUS"]);
    for x in doc.exit {
        r.control("TP", []);
        r.text([bold(x.code.to_string())]);
        r.text([roman(x.meaning)]);
    }
    r
}

/// An indented block whose line breaks are kept.
fn preformatted(r: &mut Roff, text: &str) {
    r.control("RS", ["4"]);
    r.control("nf", []);
    for line in text.lines() {
        r.text([roman(line)]);
    }
    r.control("fi", []);
    r.control("RE", []);
}

/// Writes every page into `dir`, created if missing; returns the paths.
pub fn write_all(dir: &Path) -> Result<Vec<PathBuf>, ManError> {
    std::fs::create_dir_all(dir).map_err(|source| ManError::Create {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for p in pages()? {
        let path = dir.join(&p.file_name);
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(&p.roff))
            .map_err(|source| ManError::Write {
                path: path.clone(),
                source,
            })?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(p: &Page) -> String {
        String::from_utf8(p.roff.clone()).unwrap()
    }

    #[test]
    fn one_page_per_visible_command() {
        let names: Vec<String> = pages().unwrap().into_iter().map(|p| p.file_name).collect();
        assert_eq!(
            names,
            [
                "spawnscope.1",
                "spawnscope-trace.1",
                "spawnscope-analyze.1",
                "spawnscope-export.1",
                "spawnscope-postmortem.1",
                "spawnscope-sentinel.1",
                "spawnscope-doctor.1",
                "spawnscope-completions.1",
            ]
        );
    }

    #[test]
    fn pages_carry_examples_and_exit_status() {
        let pages = pages().unwrap();
        let sentinel = text(&pages[5]);
        assert!(sentinel.contains(".SH CONFIGURATION\n"), "{sentinel}");
        assert!(sentinel.contains(".SH SIGNALS\n"), "{sentinel}");
        // The glob keeps its quotes, and roff does not turn them into
        // typographic ones.
        let trace = text(&pages[1]);
        assert!(
            trace.contains(r"\-\-unit \*(Aqserial\-getty@*\*(Aq"),
            "{trace}"
        );
        for p in &pages {
            let t = text(p);
            assert!(t.starts_with(".ie \\n(.g .ds Aq"), "{}", p.file_name);
            assert!(t.contains(".SH EXAMPLES\n"), "{}", p.file_name);
            assert!(t.contains(".SH \"EXIT STATUS\"\n"), "{}", p.file_name);
            assert!(!t.contains(".SH EXTRA"), "{}: {t}", p.file_name);
            assert!(
                t.contains(&format!(
                    ".TH {} 1 \"\" \"spawnscope {}\"",
                    p.file_name.trim_end_matches(".1"),
                    env!("CARGO_PKG_VERSION")
                )),
                "{}: {t}",
                p.file_name
            );
        }
        let analyze = text(&pages[2]);
        assert!(analyze.contains(".TP\n\\fB2\\fR\n"), "{analyze}");
        assert!(!analyze.contains(".TP\n\\fB3\\fR\n"), "{analyze}");
    }
}
