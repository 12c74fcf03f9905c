use std::process::ExitCode;

use clap::Parser;
use spawnscope::{
    cli::{Cli, Command, exit},
    trace::{self, TraceError},
};

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

fn run(cli: &Cli) -> Result<(), TraceError> {
    match &cli.command {
        Command::Trace(args) => match trace::run(args) {
            // A reader that went away (`| head`) is a normal end.
            Err(TraceError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        },
    }
}

fn code_for(e: &TraceError) -> i32 {
    use spawnscope::kernel::KernelError;
    match e {
        TraceError::Kernel(KernelError::Privileges(_)) => exit::PRIVILEGES,
        TraceError::Kernel(k) if k.is_unsupported() => exit::UNSUPPORTED,
        _ => exit::FAILURE,
    }
}
