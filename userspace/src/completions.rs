//! Shell completion scripts, generated from the clap definition.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell as Generator;

use crate::cli::{Cli, Shell};

/// The completion script for `shell`.
pub fn script(shell: Shell) -> Vec<u8> {
    let generator = match shell {
        Shell::Bash => Generator::Bash,
        Shell::Zsh => Generator::Zsh,
        Shell::Fish => Generator::Fish,
    };
    let mut cmd = Cli::command();
    // Into memory first: clap_complete panics on a failed write, and a
    // closed stdout must be an ordinary end.
    let mut buf = Vec::new();
    clap_complete::generate(generator, &mut cmd, "spawnscope", &mut buf);
    buf
}

/// Writes the script to `out`.
pub fn run(shell: Shell, out: &mut dyn Write) -> std::io::Result<()> {
    out.write_all(&script(shell))?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_complete_subcommands_and_options() {
        let bash = String::from_utf8(script(Shell::Bash)).unwrap();
        assert!(bash.contains("complete -F _spawnscope"), "{bash}");
        assert!(bash.contains("--check-config"), "{bash}");
        let zsh = String::from_utf8(script(Shell::Zsh)).unwrap();
        assert!(zsh.starts_with("#compdef spawnscope"), "{zsh}");
        assert!(zsh.contains("'--for=["), "{zsh}");
        let fish = String::from_utf8(script(Shell::Fish)).unwrap();
        assert!(
            fish.contains(
                "complete -c spawnscope -n \"__fish_spawnscope_needs_command\" -f -a \"doctor\""
            ),
            "{fish}"
        );
        assert!(fish.contains("-l unit"), "{fish}");
    }
}
