use std::process::ExitCode;

use clap::Parser;
use spawnscope::{
    analyze::{self, AnalyzeError},
    cli::{Cli, Command, exit},
    completions,
    doctor::{self, DoctorError},
    export::{self, ExportError},
    manpage::{self, ManError},
    postmortem::cmd::{self as postmortem, PostmortemError},
    sentinel::{self, SentinelError},
    trace::{self, TraceError},
};

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error(transparent)]
    Analyze(#[from] AnalyzeError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Sentinel(#[from] SentinelError),
    #[error(transparent)]
    Doctor(#[from] DoctorError),
    #[error(transparent)]
    Man(#[from] ManError),
    #[error(transparent)]
    Postmortem(#[from] PostmortemError),
    #[error("cannot write the completion script: {0}")]
    Completions(std::io::Error),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match run(&cli) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("spawnscope: {e}");
            code_for(&e)
        }
    };
    ExitCode::from(code as u8)
}

fn broken_pipe(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
}

fn run(cli: &Cli) -> Result<(), Error> {
    match &cli.command {
        Command::Trace(args) => match trace::run(args) {
            // A reader that went away (`| head`) is a normal end.
            Err(TraceError::Output(e)) if broken_pipe(&e) => Ok(()),
            other => Ok(other?),
        },
        Command::Analyze(args) => match analyze::run(args) {
            Err(AnalyzeError::Output(e)) if broken_pipe(&e) => Ok(()),
            other => Ok(other?),
        },
        Command::Export(args) => match export::run(args) {
            Err(ExportError::Output(e)) if broken_pipe(&e) => Ok(()),
            other => Ok(other?),
        },
        Command::Postmortem(args) => match postmortem::run(args) {
            Err(e) if e.is_broken_pipe() => Ok(()),
            other => Ok(other?),
        },
        Command::Sentinel(args) => Ok(sentinel::run(args)?),
        Command::Doctor(args) => Ok(doctor::run(args, &mut std::io::stdout().lock())?),
        Command::Completions(args) => {
            match completions::run(args.shell, &mut std::io::stdout().lock()) {
                Err(e) if !broken_pipe(&e) => Err(Error::Completions(e)),
                _ => Ok(()),
            }
        }
        Command::Man(args) => {
            manpage::write_all(&args.out)?;
            Ok(())
        }
    }
}

fn code_for(e: &Error) -> i32 {
    use spawnscope::{kernel::KernelError, session::SessionError};
    let kernel = match e {
        Error::Trace(TraceError::Kernel(k) | TraceError::Session(SessionError::Kernel(k)))
        | Error::Sentinel(
            SentinelError::Kernel(k) | SentinelError::Session(SessionError::Kernel(k)),
        ) => Some(k),
        _ => None,
    };
    match e {
        _ if matches!(kernel, Some(KernelError::Privileges(_))) => exit::PRIVILEGES,
        _ if kernel.is_some_and(KernelError::is_unsupported) => exit::UNSUPPORTED,
        // Like a bad command line: starting again will fail the same way,
        // so the unit's RestartPreventExitStatus= must see it as such.
        Error::Sentinel(SentinelError::Config(_)) => exit::USAGE,
        Error::Doctor(d) => d.exit_code(),
        _ => exit::FAILURE,
    }
}
