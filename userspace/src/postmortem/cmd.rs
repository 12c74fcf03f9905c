//! `spawnscope postmortem`: the journal's incident report, from the files
//! journald wrote, without root beyond read access and without BPF.

use std::{
    io::{self, Write},
    path::PathBuf,
};

use crate::{
    cli::{BootSpec, PostmortemArgs},
    journal::{self, Boot, Filter, Journal, JournalError, Which},
};

use super::{Analyzer, SourceInfo};

#[derive(Debug, thiserror::Error)]
pub enum PostmortemError {
    #[error("{0}")]
    Journal(#[from] JournalError),
    #[error("the journal holds {count} boot(s); there is no boot {spec}")]
    NoSuchBoot { spec: String, count: usize },
    #[error("no boot {0} in the journal")]
    NoSuchBootId(String),
    #[error("--since is after --until")]
    EmptyRange,
    #[error("no journal file could be read: {0}")]
    Unreadable(String),
    #[error("cannot write {path}: {source}")]
    Svg {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the report: {0}")]
    Output(#[source] io::Error),
}

impl PostmortemError {
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Self::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

fn hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// The boot `spec` names, counted as journalctl counts: 0 the last, -1 the
/// one before, 1 the first.
fn pick(spec: BootSpec, boots: &[Boot]) -> Result<[u8; 16], PostmortemError> {
    match spec {
        BootSpec::Id(id) => boots
            .iter()
            .find(|b| b.id == id)
            .map(|b| b.id)
            .ok_or_else(|| PostmortemError::NoSuchBootId(hex(&id))),
        BootSpec::Offset(n) => {
            let count = boots.len();
            let i = if n <= 0 {
                (count as i64 - 1).checked_add(n)
            } else {
                Some(n - 1)
            };
            i.filter(|&i| i >= 0 && (i as usize) < count)
                .map(|i| boots[i as usize].id)
                .ok_or(PostmortemError::NoSuchBoot {
                    spec: n.to_string(),
                    count,
                })
        }
    }
}

/// journald's "Journal stopped" (SD_MESSAGE_JOURNAL_STOP): written as the
/// journal is closed at a clean shutdown.
const JOURNAL_STOP: &[u8] = b"d93fb3c9c24d451a97cea615ce59c00b";

/// Whether `boot` ended with journald's own stop message in its last
/// minute of entries: a boot that did not was cut short (a crash, a hard
/// reset, a freeze).
fn ended_cleanly(j: &mut Journal, boot: &Boot) -> Result<bool, PostmortemError> {
    let mut stopped = false;
    j.read(
        &Filter {
            boot: Some(boot.id),
            since_us: Some(boot.last_us.saturating_sub(60_000_000)),
            until_us: None,
        },
        &mut |e| {
            if e.get("MESSAGE_ID") == Some(JOURNAL_STOP) {
                stopped = true;
            }
        },
    )?;
    Ok(stopped)
}

/// Which boot the report covers when none is asked for: every boot in
/// copied files; on this machine, the current boot, or the one before it
/// when that one was cut short and this one is less than a day old.
fn default_boot(
    j: &mut Journal,
    boots: &[Boot],
    now_us: u64,
) -> Result<Option<[u8; 16]>, PostmortemError> {
    let [.., prev, cur] = boots else {
        return Ok(boots.last().map(|b| b.id));
    };
    if now_us.saturating_sub(cur.first_us) < 86_400_000_000 && !ended_cleanly(j, prev)? {
        eprintln!(
            "spawnscope: the boot before this one ended without a clean shutdown: reporting on it (--boot 0 for this boot)"
        );
        return Ok(Some(prev.id));
    }
    Ok(Some(cur.id))
}

pub fn run(args: &PostmortemArgs) -> Result<(), PostmortemError> {
    let which = match (&args.directory, args.file.is_empty()) {
        (Some(d), _) => Which::Directory(d.clone()),
        (None, false) => Which::Files(args.file.clone()),
        (None, true) => Which::Default,
    };
    let to_us = |t: f64| (t * 1e6) as u64;
    if let (Some(s), Some(u)) = (args.since, args.until)
        && s > u
    {
        return Err(PostmortemError::EmptyRange);
    }
    let mut j = journal::open(&which)?;
    let boots = j.boots()?;
    let now_unix = crate::clock::now_unix();
    let boot = match args.boot {
        Some(spec) => Some(pick(spec, &boots)?),
        None if which == Which::Default => default_boot(&mut j, &boots, to_us(now_unix))?,
        None => None,
    };
    let filter = Filter {
        boot,
        since_us: args.since.map(to_us),
        until_us: args.until.map(to_us),
    };
    // "now" closes the last gap only for this machine's running boot.
    let live =
        which == Which::Default && boot.is_some_and(|b| Some(b) == boots.last().map(|l| l.id));
    let mut a = Analyzer::new(live.then_some(now_unix));
    let stats = j.read(&filter, &mut |e| a.push(e))?;
    if stats.files == 0 {
        let why: Vec<String> = stats.problems.iter().map(ToString::to_string).collect();
        return Err(PostmortemError::Unreadable(why.join("; ")));
    }
    for p in &stats.problems {
        eprintln!("spawnscope: warning: {p}");
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
    if let Some(path) = &args.svg {
        std::fs::write(path, report.to_svg()).map_err(|source| PostmortemError::Svg {
            path: path.clone(),
            source,
        })?;
    }
    let text = if args.json {
        report.to_json()
    } else {
        report.to_text()
    };
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| {
            if text.ends_with('\n') {
                Ok(())
            } else {
                out.write_all(b"\n")
            }
        })
        .and_then(|()| out.flush())
        .map_err(PostmortemError::Output)
}
