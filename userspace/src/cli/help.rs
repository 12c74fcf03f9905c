//! Examples, exit statuses and other prose of each command, kept as data so
//! that `--help`, the man pages and the tests that run the examples' command
//! lines all come from one place.

use super::exit;

/// The program an example runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    Spawnscope,
    /// For the sentinel's shipped unit, dist/spawnscope-sentinel.service.
    Systemctl,
}

impl Program {
    pub fn name(self) -> &'static str {
        match self {
            Self::Spawnscope => "spawnscope",
            Self::Systemctl => "systemctl",
        }
    }
}

/// One example command line.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    /// What it does, one sentence ending in a colon.
    pub what: &'static str,
    /// Run through sudo.
    pub sudo: bool,
    pub program: Program,
    /// The arguments after the program name, unquoted.
    pub args: &'static [&'static str],
    /// Where the shell sends stdout (`> FILE`), written as is so that
    /// `~` and `$` keep their shell meaning.
    pub stdout: Option<&'static str>,
}

const fn ex(what: &'static str, args: &'static [&'static str]) -> Example {
    Example {
        what,
        sudo: false,
        program: Program::Spawnscope,
        args,
        stdout: None,
    }
}

impl Example {
    const fn sudo(self) -> Self {
        Self { sudo: true, ..self }
    }

    const fn to(self, file: &'static str) -> Self {
        Self {
            stdout: Some(file),
            ..self
        }
    }

    const fn program(self, program: Program) -> Self {
        Self { program, ..self }
    }

    /// The command line as it is typed into a POSIX shell.
    pub fn command_line(&self) -> String {
        let mut words = Vec::new();
        if self.sudo {
            words.push("sudo".to_string());
        }
        words.push(self.program.name().to_string());
        words.extend(self.args.iter().map(|a| shell_quote(a)));
        if let Some(file) = self.stdout {
            words.push(format!("> {file}"));
        }
        words.join(" ")
    }
}

/// Quotes a word for a POSIX shell when it holds anything but plain
/// characters (a glob such as `serial-getty@*` must reach spawnscope
/// unexpanded).
fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// One exit status a command can return.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    pub code: i32,
    pub meaning: &'static str,
}

/// A section of prose, such as the sentinel's configuration file.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    pub title: &'static str,
    /// Preformatted: its line breaks are kept.
    pub body: &'static str,
}

/// The text after the options, for one command.
#[derive(Debug, Clone, Copy)]
pub struct Doc {
    pub sections: &'static [Section],
    pub examples: &'static [Example],
    pub exit: &'static [Exit],
}

/// The `--help` text after the options.
pub fn after_help(doc: &Doc) -> String {
    let mut out = String::new();
    for s in doc.sections {
        out.push_str(s.title);
        out.push_str(":\n");
        for line in s.body.lines() {
            if !line.is_empty() {
                out.push_str("  ");
                out.push_str(line);
            }
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str("Examples:\n");
    for e in doc.examples {
        out.push_str(&format!("  {}\n    {}\n", e.what, e.command_line()));
    }
    out.push_str("\nExit status:\n");
    let lines: Vec<String> = doc
        .exit
        .iter()
        .map(|x| format!("  {}  {}", x.code, x.meaning))
        .collect();
    out.push_str(&lines.join("\n"));
    out
}

const OK_ANY: Exit = Exit {
    code: exit::OK,
    meaning: "success (also when stopped by Ctrl-C or SIGTERM, or when output is a closed pipe)",
};
const FAILURE: Exit = Exit {
    code: exit::FAILURE,
    meaning: "runtime failure",
};
const USAGE: Exit = Exit {
    code: exit::USAGE,
    meaning: "invalid command line",
};
const PRIVILEGES: Exit = Exit {
    code: exit::PRIVILEGES,
    meaning: "insufficient privileges (needs root, or CAP_BPF and CAP_PERFMON)",
};
const UNSUPPORTED: Exit = Exit {
    code: exit::UNSUPPORTED,
    meaning: "kernel not supported (no BTF, BPF ring buffer or tp_btf, missing tracepoint, \
              unexpected struct layout)",
};

pub const TOP: Doc = Doc {
    sections: &[],
    examples: &[
        ex("Check that this machine can run spawnscope:", &["doctor"]).sudo(),
        ex(
            "Count spawns per unit for a minute:",
            &["trace", "--for", "60s"],
        )
        .sudo(),
        ex(
            "Find respawn loops in a recording made with `trace --record`:",
            &["analyze", "recording.jsonl"],
        ),
    ],
    exit: &[OK_ANY, FAILURE, USAGE, PRIVILEGES, UNSUPPORTED],
};

pub const TRACE: Doc = Doc {
    sections: &[],
    examples: &[
        ex(
            "Count spawns per unit for a minute, a table every second:",
            &["trace", "--for", "60s"],
        )
        .sudo(),
        ex(
            "Record a minute of per-interval counts as JSON lines:",
            &["trace", "--json", "--for", "1m"],
        )
        .sudo()
        .to("trace.jsonl"),
        ex(
            "Stream the failed exits of every serial-getty@ instance:",
            &["trace", "--events", "--failed", "--unit", "serial-getty@*"],
        )
        .sudo(),
    ],
    exit: &[OK_ANY, FAILURE, USAGE, PRIVILEGES, UNSUPPORTED],
};

pub const ANALYZE: Doc = Doc {
    sections: &[],
    examples: &[
        ex(
            "Find respawn loops in a recording made with `sudo spawnscope trace --record recording.jsonl`:",
            &["analyze", "recording.jsonl"],
        ),
        ex(
            "The findings as one JSON object, skipping damaged lines:",
            &["analyze", "--json", "--lenient", "recording.jsonl"],
        ),
    ],
    exit: &[
        Exit {
            code: exit::OK,
            meaning: "success (also when output is a closed pipe)",
        },
        Exit {
            code: exit::FAILURE,
            meaning: "the recording cannot be read or is not valid, or output failed",
        },
        USAGE,
    ],
};

pub const EXPORT: Doc = Doc {
    sections: &[],
    examples: &[
        ex(
            "Write the histograms in every format into hist/:",
            &["export", "recording.jsonl", "--out", "hist/"],
        ),
        ex(
            "Only the SVG charts:",
            &[
                "export",
                "recording.jsonl",
                "--format",
                "svg",
                "--out",
                "charts/",
            ],
        ),
    ],
    exit: &[
        Exit {
            code: exit::OK,
            meaning: "success",
        },
        Exit {
            code: exit::FAILURE,
            meaning: "the recording cannot be read or is not valid, or a file cannot be written",
        },
        USAGE,
    ],
};

pub const POSTMORTEM: Doc = Doc {
    sections: &[],
    examples: &[
        ex(
            "After a crash and reboot: what the journal of the boot that died says:",
            &["postmortem", "--boot", "-1"],
        )
        .sudo(),
        ex(
            "Journal files copied off a dead VM, as JSON, with a timeline chart:",
            &[
                "postmortem",
                "--directory",
                "dead-vm/journal",
                "--json",
                "--svg",
                "timeline.svg",
            ],
        )
        .to("report.json"),
        ex(
            "One journal file, one week of it:",
            &[
                "postmortem",
                "--file",
                "system.journal",
                "--since",
                "2026-03-01",
                "--until",
                "2026-03-08",
            ],
        ),
    ],
    exit: &[
        Exit {
            code: exit::OK,
            meaning: "success (also when output is a closed pipe, and when parts of the journal were unreadable: they are reported)",
        },
        Exit {
            code: exit::FAILURE,
            meaning: "no journal file could be read, the boot asked for is not in it, or output failed",
        },
        USAGE,
    ],
};

pub const SENTINEL: Doc = Doc {
    sections: &[
        Section {
            title: "Configuration",
            body: r#"The configuration file is TOML; every key is optional:

  interval = "5s"                      # counter poll interval
  state = "/var/lib/spawnscope/state"  # totals, findings, OOM kills
  save_every = 12                      # polls between state saves
  listen = "127.0.0.1:9479"            # Prometheus /metrics
  top_units = 50                       # units with their own label
  [alerts]
  jsonl = "/var/log/spawnscope/alerts.jsonl"
  hook = ["/usr/local/bin/page", "--team", "infra"]  # JSON on stdin, no shell
  [memory]
  warn_before = "60m"
  psi_warn = 10.0
  psi_for = "30s""#,
        },
        Section {
            title: "Signals",
            body: "\
SIGHUP reloads the file (an invalid one is logged and the old
configuration kept; `listen` changes at the next start); SIGTERM or
SIGINT saves the state and exits 0.",
        },
    ],
    examples: &[
        ex(
            "Check a configuration file:",
            &[
                "sentinel",
                "--check-config",
                "--config",
                "/etc/spawnscope/sentinel.toml",
            ],
        ),
        ex(
            "Run in the foreground with that configuration, the probe's diagnostic lines included:",
            &[
                "sentinel",
                "--config",
                "/etc/spawnscope/sentinel.toml",
                "--probe-log",
            ],
        )
        .sudo(),
        ex(
            "Run as the shipped service (installed by the .deb, or from the tarball as its INSTALL says):",
            &["enable", "--now", "spawnscope-sentinel.service"],
        )
        .program(Program::Systemctl)
        .sudo(),
    ],
    exit: &[
        Exit {
            code: exit::OK,
            meaning: "stopped by SIGTERM or SIGINT, state saved (or --check-config: valid)",
        },
        Exit {
            code: exit::FAILURE,
            meaning: "runtime failure",
        },
        Exit {
            code: exit::USAGE,
            meaning: "invalid command line, or a configuration file that is missing or invalid",
        },
        PRIVILEGES,
        UNSUPPORTED,
    ],
};

pub const DOCTOR: Doc = Doc {
    sections: &[],
    examples: &[
        ex("Check this machine:", &["doctor"]).sudo(),
        ex(
            "The kernel checks alone, as JSON, without root (exit 3 if they pass):",
            &["doctor", "--json"],
        ),
    ],
    exit: &[
        Exit {
            code: exit::OK,
            meaning: "`trace` and `sentinel` can start here",
        },
        Exit {
            code: exit::FAILURE,
            meaning: "a check could not be made (e.g. mountinfo unreadable), or output failed",
        },
        USAGE,
        Exit {
            code: exit::PRIVILEGES,
            meaning: "the kernel is fine, the privileges are not (needs root, or CAP_BPF and \
                      CAP_PERFMON)",
        },
        Exit {
            code: exit::UNSUPPORTED,
            meaning: "a kernel feature is missing (BTF, a tracepoint type, a struct layout, \
                      the BPF ring buffer, tp_btf, cgroup v2)",
        },
    ],
};

pub const COMPLETIONS: Doc = Doc {
    sections: &[],
    examples: &[
        ex("Bash, for every user (as root):", &["completions", "bash"])
            .to("/etc/bash_completion.d/spawnscope"),
        ex(
            "Zsh, into a directory of $fpath (as root):",
            &["completions", "zsh"],
        )
        .to("/usr/local/share/zsh/site-functions/_spawnscope"),
        ex("Fish, for yourself:", &["completions", "fish"])
            .to("~/.config/fish/completions/spawnscope.fish"),
    ],
    exit: &[
        Exit {
            code: exit::OK,
            meaning: "script written (also when output is a closed pipe)",
        },
        Exit {
            code: exit::FAILURE,
            meaning: "output failed",
        },
        USAGE,
    ],
};

/// The documented subcommands, by clap name, for the man pages.
pub const SUBCOMMANDS: [(&str, &Doc); 7] = [
    ("trace", &TRACE),
    ("analyze", &ANALYZE),
    ("export", &EXPORT),
    ("postmortem", &POSTMORTEM),
    ("sentinel", &SENTINEL),
    ("doctor", &DOCTOR),
    ("completions", &COMPLETIONS),
];
