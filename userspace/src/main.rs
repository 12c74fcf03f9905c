use std::process::ExitCode;

use clap::Parser;
use spawnscope::{
    analyze::{self, AnalyzeError},
    cli::{Cli, Command, exit},
    export::{self, ExportError},
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
        Command::Sentinel(args) => Ok(sentinel::run(args)?),
    }
}

fn code_for(e: &Error) -> i32 {
    use spawnscope::kernel::KernelError;
    match e {
        Error::Trace(TraceError::Kernel(KernelError::Privileges(_))) => exit::PRIVILEGES,
        Error::Trace(TraceError::Kernel(k)) if k.is_unsupported() => exit::UNSUPPORTED,
        Error::Sentinel(SentinelError::Kernel(KernelError::Privileges(_))) => exit::PRIVILEGES,
        Error::Sentinel(SentinelError::Kernel(k)) if k.is_unsupported() => exit::UNSUPPORTED,
        _ => exit::FAILURE,
    }
}
