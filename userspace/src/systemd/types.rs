//! systemd's words for a service's state, as typed values. Every enum keeps
//! the values this code does not know (a newer systemd's) in `Other`, so a
//! reading never fails on them; each serializes as systemd spells it.

use serde::{Serialize, Serializer};

/// An enum of systemd's string values, with `Other` for the rest.
macro_rules! systemd_words {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $word:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
            /// A value this code does not know, as systemd sent it.
            Other(String),
        }

        impl $name {
            /// Parses systemd's spelling; unknown values land in `Other`.
            pub fn parse(s: &str) -> Self {
                match s {
                    $($word => Self::$variant,)+
                    other => Self::Other(other.to_string()),
                }
            }

            /// As systemd spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $word,)+
                    Self::Other(s) => s,
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::Other(String::new())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

systemd_words! {
    /// `ActiveState` of a unit.
    ActiveState {
        Active = "active",
        Reloading = "reloading",
        Inactive = "inactive",
        Failed = "failed",
        Activating = "activating",
        Deactivating = "deactivating",
        Maintenance = "maintenance",
        Refreshing = "refreshing",
    }
}

systemd_words! {
    /// `SubState` of a service unit.
    SubState {
        Dead = "dead",
        Condition = "condition",
        StartPre = "start-pre",
        Start = "start",
        StartPost = "start-post",
        Running = "running",
        Exited = "exited",
        Reload = "reload",
        ReloadSignal = "reload-signal",
        ReloadNotify = "reload-notify",
        Mounting = "mounting",
        Stop = "stop",
        StopWatchdog = "stop-watchdog",
        StopSigterm = "stop-sigterm",
        StopSigkill = "stop-sigkill",
        StopPost = "stop-post",
        FinalWatchdog = "final-watchdog",
        FinalSigterm = "final-sigterm",
        FinalSigkill = "final-sigkill",
        Failed = "failed",
        /// systemd >= 254: dead, a restart about to be scheduled.
        DeadBeforeAutoRestart = "dead-before-auto-restart",
        /// systemd >= 254: failed, a restart about to be scheduled.
        FailedBeforeAutoRestart = "failed-before-auto-restart",
        DeadResourcesPinned = "dead-resources-pinned",
        /// Waiting `RestartSec=` before the next start.
        AutoRestart = "auto-restart",
        /// systemd >= 254: the restart job is queued.
        AutoRestartQueued = "auto-restart-queued",
        Cleaning = "cleaning",
    }
}

impl SubState {
    /// Between two runs of a restart loop: the last run ended and systemd
    /// has scheduled (or is about to schedule) the next start.
    pub fn awaiting_restart(&self) -> bool {
        matches!(
            self,
            SubState::AutoRestart
                | SubState::AutoRestartQueued
                | SubState::DeadBeforeAutoRestart
                | SubState::FailedBeforeAutoRestart
        )
    }
}

systemd_words! {
    /// A service's `Result`: how its last run ended ("success" while it
    /// runs: systemd resets it at each start).
    ServiceResult {
        Success = "success",
        Protocol = "protocol",
        Timeout = "timeout",
        ExitCode = "exit-code",
        Signal = "signal",
        CoreDump = "core-dump",
        Watchdog = "watchdog",
        StartLimitHit = "start-limit-hit",
        Resources = "resources",
        OomKill = "oom-kill",
        /// `ExecCondition=` said no.
        ExecCondition = "exec-condition",
    }
}

systemd_words! {
    /// `Restart=`.
    RestartPolicy {
        No = "no",
        OnSuccess = "on-success",
        OnFailure = "on-failure",
        OnAbnormal = "on-abnormal",
        OnWatchdog = "on-watchdog",
        OnAbort = "on-abort",
        Always = "always",
    }
}

/// `ExecMainCode`: how the main process last ended, as a `si_code` of
/// SIGCHLD. systemd clears it (to 0) when it starts the process again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ExecMainCode {
    /// Not ended (yet): running, or never ran.
    #[default]
    None,
    /// Exited; `ExecMainStatus` is the exit status.
    Exited,
    /// Killed by a signal; `ExecMainStatus` is the signal.
    Killed,
    /// Killed by a signal and dumped core; `ExecMainStatus` is the signal.
    Dumped,
    /// Another code, as systemd sent it.
    Other(i32),
}

impl ExecMainCode {
    /// From the `si_code` systemd reports (CLD_EXITED = 1, CLD_KILLED = 2,
    /// CLD_DUMPED = 3).
    pub fn from_code(code: i32) -> Self {
        match code {
            0 => Self::None,
            1 => Self::Exited,
            2 => Self::Killed,
            3 => Self::Dumped,
            c => Self::Other(c),
        }
    }

    /// As `systemctl status` words it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Exited => "exited",
            Self::Killed => "killed",
            Self::Dumped => "dumped",
            Self::Other(_) => "other",
        }
    }
}

impl Serialize for ExecMainCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Other(c) => s.serialize_str(&format!("code-{c}")),
            _ => s.serialize_str(self.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_words_round_trip_and_keep_unknown_values() {
        assert_eq!(SubState::parse("auto-restart"), SubState::AutoRestart);
        assert_eq!(SubState::AutoRestart.as_str(), "auto-restart");
        assert_eq!(
            ActiveState::parse("hibernating"),
            ActiveState::Other("hibernating".into())
        );
        assert_eq!(ActiveState::parse("hibernating").as_str(), "hibernating");
        assert_eq!(
            serde_json::to_string(&RestartPolicy::OnFailure).unwrap(),
            "\"on-failure\""
        );
    }

    #[test]
    fn exec_main_code_follows_sigchld_codes() {
        assert_eq!(ExecMainCode::from_code(1), ExecMainCode::Exited);
        assert_eq!(ExecMainCode::from_code(3), ExecMainCode::Dumped);
        assert_eq!(ExecMainCode::from_code(9), ExecMainCode::Other(9));
        assert_eq!(
            serde_json::to_string(&ExecMainCode::Killed).unwrap(),
            "\"killed\""
        );
    }
}
