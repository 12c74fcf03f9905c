//! Command-line interface.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::report::By;

pub mod help;

/// Exit codes, documented in --help, the README and docs/trace.md.
pub mod exit {
    pub const OK: i32 = 0;
    /// A runtime failure: a map could not be read, output failed, ...
    pub const FAILURE: i32 = 1;
    /// Bad command line (clap's own code).
    pub const USAGE: i32 = 2;
    /// Not root / missing CAP_BPF or CAP_PERFMON.
    pub const PRIVILEGES: i32 = 3;
    /// The kernel lacks BTF, a tracepoint, the BPF ring buffer or tp_btf,
    /// or has an unexpected layout.
    pub const UNSUPPORTED: i32 = 4;
}

/// What spawnscope needs of the machine, stated once for the top-level
/// long help and doctor's (a macro, so that `concat!` can use it).
macro_rules! requirements {
    () => {
        "Requirements: Linux 5.8 or later with BTF (CONFIG_DEBUG_INFO_BTF=y), \
         the BPF ring buffer, tp_btf (BTF-typed tracepoints) and cgroup v2 \
         (pure or hybrid); root, or CAP_BPF and CAP_PERFMON, for `trace` and \
         `sentinel`. `spawnscope doctor` checks them all."
    };
}

#[derive(Debug, Parser)]
#[command(
    name = "spawnscope",
    version,
    about = "Count process spawns (fork, exec, exit) per systemd unit with eBPF",
    long_about = concat!(
        "Count process spawns (fork, exec, exit) per systemd unit with eBPF.\n\n\
        Kernel probes on sched:sched_process_{fork,exec,exit} keep per-cgroup \
        counters in the kernel; spawnscope reads them at each interval, so the \
        cost per event is a few map updates and no wakeup. A probe on \
        cgroup:cgroup_mkdir names each cgroup as it is created, so units that \
        come and go between two readings are still named.\n\n",
        requirements!()
    ),
    after_help = help::after_help(&help::TOP)
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Trace spawns live and print counts and rates per unit, slice, cgroup or container.
    #[command(after_help = help::after_help(&help::TRACE))]
    Trace(Box<TraceArgs>),
    /// Find respawn loops in a file written by `trace --record`, without root.
    #[command(after_help = help::after_help(&help::ANALYZE))]
    Analyze(AnalyzeArgs),
    /// Write the histograms of a `trace --record` file (per unit: process
    /// lifetime, respawn interval, exec interval, exec rate) for other
    /// tools, without root.
    #[command(after_help = help::after_help(&help::EXPORT))]
    Export(ExportArgs),
    /// The incident report of a systemd journal, without root or BPF:
    /// restart loops per unit with their dominant errors, journal volume
    /// per unit, OOM kills, memory pressure and a timeline.
    #[command(after_help = help::after_help(&help::POSTMORTEM))]
    Postmortem(PostmortemArgs),
    /// Run resident: count in the kernel at almost no cost, keep totals
    /// across restarts, alert on respawn loops and memory exhaustion, and
    /// serve Prometheus metrics.
    #[command(after_help = help::after_help(&help::SENTINEL))]
    Sentinel(SentinelArgs),
    /// Check whether this machine can run `trace` and `sentinel`, and say
    /// why not.
    #[command(
        long_about = concat!(
            "Check whether this machine can run `trace` and `sentinel`, and say why not.\n\n\
            Prints one line per check: the kernel release, its BTF and the \
            tracepoint types and struct layouts the probe needs, the BPF ring \
            buffer, tp_btf programs, cgroup v2 and the memory controller, and \
            privileges. Only the kernel's own BTF is read; nothing is loaded \
            or attached.\n\n",
            requirements!()
        ),
        after_help = help::after_help(&help::DOCTOR)
    )]
    Doctor(DoctorArgs),
    /// Print a shell completion script to stdout.
    #[command(after_help = help::after_help(&help::COMPLETIONS))]
    Completions(CompletionsArgs),
    /// Write a roff man page per command into DIR (for packaging).
    #[command(hide = true)]
    Man(ManArgs),
}

/// Shells `completions` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory to write the pages into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Kernel type information (BTF) to check.
    #[arg(long, value_name = "FILE", default_value = crate::btf::VMLINUX_BTF)]
    pub btf: PathBuf,

    /// Print one JSON object instead of lines.
    #[arg(long)]
    pub json: bool,

    /// Where to find the cgroup mounts. Hidden: the tests use it to show
    /// what a cgroup-v1-only host gets.
    #[arg(long, value_name = "FILE", default_value = crate::cgroupfs::MOUNTINFO, hide = true)]
    pub mountinfo: PathBuf,
}

#[derive(Debug, Args)]
pub struct SentinelArgs {
    /// Configuration file. Default: /etc/spawnscope/sentinel.toml if it
    /// exists, else the built-in defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Validate the configuration, print "FILE: valid" and exit.
    #[arg(long)]
    pub check_config: bool,

    /// Capacity of the per-cgroup counter maps (live cgroups; removed ones
    /// are folded into their unit and freed).
    #[arg(long, value_name = "N", default_value_t = spawnscope_common::DEFAULT_MAX_CGROUPS,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_cgroups: u32,

    /// Kernel type information (BTF) to read struct layouts from.
    #[arg(long, value_name = "FILE", default_value = crate::btf::VMLINUX_BTF)]
    pub btf: PathBuf,

    /// Log the probe's rare diagnostic events (a failed kernel read,
    /// drill-downs following a unit into a new cgroup) on stderr, as
    /// "spawnscope: probe: ..." lines. Off, that code is removed when the
    /// probe loads and costs nothing.
    #[arg(long)]
    pub probe_log: bool,

    /// Do not read systemd's managers (the host's and each container's)
    /// at start: restart totals then start at zero for units never seen,
    /// and loops are found from restarts seen live only.
    #[arg(long)]
    pub no_systemd: bool,

    /// Where to find the cgroup mounts (hidden, for tests).
    #[arg(long, value_name = "FILE", default_value = crate::cgroupfs::MOUNTINFO, hide = true)]
    pub mountinfo: PathBuf,
}

/// Export formats (one file each in --out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum ExportFormat {
    /// HdrHistogram interval log (spawnscope.hlog): compressed V2
    /// histograms, tagged <measure>:<unit>.
    Hdr,
    /// JSON (spawnscope-histograms.json): count, percentiles and
    /// non-empty buckets per unit and measure, exit classes.
    Json,
    /// Prometheus text exposition (spawnscope.prom): histograms with
    /// _bucket/_sum/_count and counters per unit.
    Prom,
    /// SVG charts, one file each (spawnscope-{lifetime,interval,exec-rate,
    /// memory}.svg): distributions of the top units, rate and memory over
    /// time.
    Svg,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A recording made with `spawnscope trace --record FILE`.
    #[arg(value_name = "RECORDING")]
    pub file: PathBuf,

    /// Format to write; repeat for several. Default: every format.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Vec<ExportFormat>,

    /// Directory to write into (created if missing). Files are replaced
    /// atomically: a reader never sees a half-written one.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExitProgram {
    Auto,
    GroupDead,
    Legacy,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30s, 1m, 500ms)"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Stop after this long (e.g. 30s, 5m, 1h). Default: until Ctrl-C or SIGTERM.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// How often to read the counters and print a report.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,

    /// Print one JSON object per line (each interval, then a summary) instead of tables.
    #[arg(long)]
    pub json: bool,

    /// Rows shown per table (JSON always has all of them).
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub top: u32,

    /// Group rows by systemd unit, slice, cgroup or container. Units are
    /// kept apart per container and per user manager; a restarted unit's
    /// successive cgroups add up in its one row.
    #[arg(long, value_enum, value_name = "WHAT", default_value = "unit")]
    pub by: By,

    /// Only count units whose name matches GLOB (shell pattern as
    /// `systemctl list-units` takes it: `serial-getty@*`, `*.scope`).
    /// Repeatable; a cgroup matching any is kept.
    #[arg(long = "unit", value_name = "GLOB", value_parser = non_empty)]
    pub units: Vec<String>,

    /// Only count cgroups of this container: a machine name (nspawn,
    /// machined), a container id or a prefix of it of 12 or more characters,
    /// or a pod uid. Repeatable.
    #[arg(long = "container", value_name = "NAME", value_parser = non_empty)]
    pub containers: Vec<String>,

    /// Stream one line per exec and per process exit (binary, argv, parent,
    /// exit status, lifetime) instead of per-interval tables; a status line
    /// with drop counts is printed each interval.
    #[arg(long)]
    pub events: bool,

    /// With --events: also stream forks (parent and child).
    #[arg(long, requires = "events")]
    pub forks: bool,

    /// With --events: only processes whose comm matches GLOB. Repeatable.
    #[arg(long = "comm", value_name = "GLOB", value_parser = non_empty, requires = "events")]
    pub comms: Vec<String>,

    /// With --events: only exits that failed (non-zero status or a signal).
    /// Exit filters hide execs and forks.
    #[arg(long, requires = "events")]
    pub failed: bool,

    /// With --events: only exits of processes that lived at least this long.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "events")]
    pub min_lifetime: Option<Duration>,

    /// With --events: only exits of processes that lived at most this long.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "events")]
    pub max_lifetime: Option<Duration>,

    /// Write every event (unfiltered) and each interval's counters to FILE,
    /// as versioned JSON lines, for offline analysis. Implies event capture.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    /// At the end (also on Ctrl-C / SIGTERM), write the histograms in
    /// every `spawnscope export` format into DIR (created if missing).
    /// Implies event capture; without --record the events go to a
    /// temporary file in DIR, removed afterwards.
    #[arg(long, value_name = "DIR")]
    pub export: Option<PathBuf>,

    /// Size of the per-event ring buffer in bytes (a power of two, at least
    /// 4096). Hidden: the tests shrink it to prove the drop accounting.
    #[arg(long, value_name = "BYTES", hide = true,
          default_value_t = spawnscope_common::DEFAULT_EVENT_BUFFER_BYTES,
          value_parser = parse_ring_size)]
    pub event_buffer: u32,

    /// How often to sample memory (system-wide and every memory cgroup's
    /// usage and limit) for the exhaustion forecast.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub mem_interval: Duration,

    /// Warn when memory (the system's, or a cgroup's up to its limit) is
    /// forecast to run out within this time.
    #[arg(long, value_name = "DURATION", default_value = "60m", value_parser = parse_duration)]
    pub mem_warn_before: Duration,

    /// Warn when the system's memory pressure (PSI "full avg10": every
    /// running task stalled on memory at once) stays above this
    /// percentage for --psi-for.
    #[arg(long, value_name = "PERCENT", default_value_t = 10.0, value_parser = parse_percent)]
    pub psi_warn: f64,

    /// How long memory pressure must stay above --psi-warn.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub psi_for: Duration,

    /// Do not look for respawn loops. Detection needs every exec and exit
    /// (a ring buffer and a little CPU per event); without it, and without
    /// --events or --record, only the in-kernel counters run.
    #[arg(long)]
    pub no_detect: bool,

    /// Do not read systemd's managers (the host's and each container's)
    /// at start: loops are then found from live restarts only.
    #[arg(long)]
    pub no_systemd: bool,

    /// Capacity of the in-kernel per-cgroup map. Events from cgroups beyond it
    /// are still counted, in an "overflow" bucket.
    #[arg(long, value_name = "N", default_value_t = spawnscope_common::DEFAULT_MAX_CGROUPS,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_cgroups: u32,

    /// Kernel type information (BTF) to read struct layouts from.
    #[arg(long, value_name = "FILE", default_value = crate::btf::VMLINUX_BTF)]
    pub btf: PathBuf,

    /// Log the probe's rare diagnostic events (a failed kernel read, a
    /// missing struct layout) on stderr, as "spawnscope: probe: ..."
    /// lines. Off, that code is removed when the probe loads and costs
    /// nothing.
    #[arg(long)]
    pub probe_log: bool,

    /// Which exit program to load. `auto` picks `group-dead` when the kernel's
    /// sched_process_exit passes group_dead (6.16+), else `legacy`. Hidden:
    /// it exists so the tests can prove the legacy program on a new kernel.
    #[arg(long, value_enum, default_value = "auto", hide = true)]
    pub exit_program: ExitProgram,

    /// Where to find the cgroup mounts. Hidden: the tests use it to show
    /// what a cgroup-v1-only host gets.
    #[arg(long, value_name = "FILE", default_value = crate::cgroupfs::MOUNTINFO, hide = true)]
    pub mountinfo: PathBuf,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// A recording made with `spawnscope trace --record FILE`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Print one JSON object with every finding instead of text.
    #[arg(long)]
    pub json: bool,

    /// Skip (and count) lines that are not valid records instead of
    /// stopping at the first one.
    #[arg(long)]
    pub lenient: bool,
}

#[derive(Debug, Args)]
pub struct PostmortemArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,

    /// Also draw the timeline (restart rates, boots, memory warnings, OOM
    /// kills, gaps) as an SVG file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,

    /// Which boot: 0 is the last in the journal, -1 the one before, 1 the
    /// first; or a boot ID (32 hex digits, as `journalctl --list-boots`
    /// shows). Default: on this machine's journal, the current boot, or the
    /// one before it when that one ended without a clean shutdown and this
    /// one began less than a day ago; with --directory or --file, every
    /// boot in the files.
    #[arg(long, value_name = "N|ID", allow_hyphen_values = true, value_parser = parse_boot)]
    pub boot: Option<BootSpec>,

    /// Read the journal files in DIR (and in its subdirectories one level
    /// down, as a copied /var/log/journal holds them) instead of this
    /// machine's journal.
    #[arg(long, value_name = "DIR", conflicts_with = "file")]
    pub directory: Option<PathBuf>,

    /// Read these journal files instead of this machine's journal.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub file: Vec<PathBuf>,

    /// Only entries at or after this time: "2026-03-04", "2026-03-04
    /// 10:45", "2026-03-04T10:45:00Z" (UTC), or a Unix time in seconds.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<f64>,

    /// Only entries before this time (same forms as --since).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<f64>,
}

/// A boot, as `--boot` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootSpec {
    /// Counted like journalctl: 0 the last, -1 the one before; 1 the first.
    Offset(i64),
    Id([u8; 16]),
}

fn parse_boot(s: &str) -> Result<BootSpec, String> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(BootSpec::Offset(n));
    }
    if let Some(id) = crate::journal::parse_id128(s) {
        return Ok(BootSpec::Id(id));
    }
    Err(
        "must be a number (0 the last boot, -1 the one before, 1 the first) or a 32-digit boot ID"
            .into(),
    )
}

/// "2026-03-04", "2026-03-04 10:45[:00]", "2026-03-04T10:45:00Z" (UTC), or
/// Unix seconds; → Unix seconds.
fn parse_time(s: &str) -> Result<f64, String> {
    let bad = || {
        format!(
            "{s:?} is not a time: use 2026-03-04, \"2026-03-04 10:45\", 2026-03-04T10:45:00Z (UTC) or Unix seconds"
        )
    };
    if let Ok(t) = s.parse::<f64>()
        && t.is_finite()
        && t >= 0.0
    {
        return Ok(t);
    }
    let s2 = s.trim_end_matches('Z').replace('T', " ");
    let (date, time) = s2.split_once(' ').unwrap_or((&s2, "00:00:00"));
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let ([y, m, day], [h, min, sec @ ..]) = (d.as_slice(), t.as_slice()) else {
        return Err(bad());
    };
    let sec = match sec {
        [] => 0,
        [s] => *s,
        _ => return Err(bad()),
    };
    if !(1..=12).contains(m)
        || !(1..=31).contains(day)
        || !(0..24).contains(h)
        || !(0..60).contains(min)
        || !(0..=60).contains(&sec)
        || *y < 1970
    {
        return Err(bad());
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if *m <= 2 { y - 1 } else { *y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok((days * 86_400 + h * 3600 + min * 60 + sec) as f64)
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let p: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if !(0.0..=100.0).contains(&p) {
        return Err("must be between 0 and 100".into());
    }
    Ok(p)
}

fn parse_ring_size(s: &str) -> Result<u32, String> {
    let n: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if n < 4096 || !n.is_power_of_two() {
        return Err("must be a power of two, at least 4096".into());
    }
    Ok(n)
}

fn non_empty(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.contains('\0') {
        return Err("must not contain a NUL byte".into());
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn postmortem_times_are_utc_dates_or_unix_seconds() {
        assert_eq!(parse_time("2026-01-13"), Ok(1_768_262_400.0));
        assert_eq!(parse_time("2026-01-13 09:00"), Ok(1_768_294_800.0));
        assert_eq!(parse_time("2026-03-04T10:50:00Z"), Ok(1_772_621_400.0));
        assert_eq!(parse_time("1772621400"), Ok(1_772_621_400.0));
        for bad in [
            "yesterday",
            "2026-13-01",
            "2026-03-04 25:00",
            "2026-03",
            "-5",
        ] {
            let e = parse_time(bad).unwrap_err();
            assert!(e.contains("is not a time"), "{bad}: {e}");
        }
    }

    #[test]
    fn postmortem_boots_are_offsets_or_ids() {
        assert_eq!(parse_boot("-1"), Ok(BootSpec::Offset(-1)));
        assert_eq!(parse_boot("0"), Ok(BootSpec::Offset(0)));
        let id = "5b0c9e3c-7a0d-4f1e-8a3b-2c4d5e6f7a8b";
        let Ok(BootSpec::Id(b)) = parse_boot(id) else {
            panic!("{id}")
        };
        assert_eq!((b[0], b[15]), (0x5b, 0x8b));
        assert!(parse_boot("last").is_err());
    }

    /// Splits a command line as a POSIX shell would for the forms the
    /// examples use: plain words, single quotes, a trailing `> FILE`.
    fn shell_words(line: &str) -> (Vec<String>, Option<String>) {
        let (cmd, redirect) = match line.split_once(" > ") {
            Some((c, r)) => (c, Some(r.to_string())),
            None => (line, None),
        };
        let mut words = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        let mut in_word = false;
        for c in cmd.chars() {
            match c {
                '\'' => {
                    quoted = !quoted;
                    in_word = true;
                }
                ' ' if !quoted => {
                    if in_word {
                        words.push(std::mem::take(&mut cur));
                    }
                    in_word = false;
                }
                c => {
                    cur.push(c);
                    in_word = true;
                }
            }
        }
        assert!(!quoted, "unbalanced quote in {line:?}");
        if in_word {
            words.push(cur);
        }
        (words, redirect)
    }

    fn docs() -> Vec<(&'static str, &'static help::Doc)> {
        let mut all = vec![("spawnscope", &help::TOP)];
        all.extend(help::SUBCOMMANDS);
        all
    }

    /// Every example's command line, as printed, is one this spawnscope
    /// accepts (or names the unit file the project ships).
    #[test]
    fn examples_parse() {
        for (name, doc) in docs() {
            assert!(
                (2..=3).contains(&doc.examples.len()) || name == "spawnscope",
                "{name}"
            );
            for e in doc.examples {
                let line = e.command_line();
                let (mut words, redirect) = shell_words(&line);
                assert_eq!(redirect.as_deref(), e.stdout, "{line}");
                if words.first().map(String::as_str) == Some("sudo") {
                    words.remove(0);
                }
                match e.program {
                    help::Program::Spawnscope => {
                        assert_eq!(words[0], "spawnscope", "{line}");
                        if name != "spawnscope" {
                            assert_eq!(words[1], name, "{name}'s example runs another command");
                        }
                        if let Err(err) = Cli::try_parse_from(&words) {
                            panic!("{line}: {err}");
                        }
                    }
                    help::Program::Systemctl => {
                        assert_eq!(words[0], "systemctl", "{line}");
                        let unit = words.last().unwrap();
                        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                            .join("../dist")
                            .join(unit);
                        assert!(shipped.is_file(), "{line}: no {}", shipped.display());
                    }
                }
            }
        }
    }

    #[test]
    fn quoting_keeps_globs_from_the_shell() {
        let e = &help::TRACE.examples[2];
        assert_eq!(
            e.command_line(),
            "sudo spawnscope trace --events --failed --unit 'serial-getty@*'"
        );
        assert_eq!(shell_words("a 'b c*' d > f").0, ["a", "b c*", "d"]);
    }

    /// Each command lists the exit codes it can return, and no other.
    #[test]
    fn exit_codes_per_command() {
        use exit::*;
        let want: [(&str, &[i32]); 8] = [
            ("spawnscope", &[OK, FAILURE, USAGE, PRIVILEGES, UNSUPPORTED]),
            ("trace", &[OK, FAILURE, USAGE, PRIVILEGES, UNSUPPORTED]),
            ("analyze", &[OK, FAILURE, USAGE]),
            ("export", &[OK, FAILURE, USAGE]),
            ("postmortem", &[OK, FAILURE, USAGE]),
            ("sentinel", &[OK, FAILURE, USAGE, PRIVILEGES, UNSUPPORTED]),
            ("doctor", &[OK, FAILURE, USAGE, PRIVILEGES, UNSUPPORTED]),
            ("completions", &[OK, FAILURE, USAGE]),
        ];
        let mut cmd = Cli::command();
        cmd.build();
        for ((name, doc), (want_name, codes)) in docs().into_iter().zip(want) {
            assert_eq!(name, want_name);
            let got: Vec<i32> = doc.exit.iter().map(|x| x.code).collect();
            assert_eq!(got, codes, "{name}");
            let c = if name == "spawnscope" {
                &cmd
            } else {
                cmd.find_subcommand(name).unwrap()
            };
            let text = c.get_after_help().unwrap().to_string();
            let status = text.split("Exit status:\n").nth(1).unwrap();
            let listed: Vec<i32> = status
                .lines()
                .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
                .collect();
            assert_eq!(listed, codes, "{name}'s --help");
            assert!(text.contains("Examples:\n"), "{name}");
        }
    }

    /// The man pages cover exactly the visible subcommands.
    #[test]
    fn every_visible_subcommand_is_documented() {
        let cmd = Cli::command();
        let visible: Vec<&str> = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| s.get_name())
            .collect();
        let documented: Vec<&str> = help::SUBCOMMANDS.iter().map(|(n, _)| *n).collect();
        assert_eq!(visible, documented);
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(
            parse_duration("0s")
                .unwrap_err()
                .contains("greater than zero")
        );
        assert!(parse_duration("soon").unwrap_err().contains("examples"));
    }
}
