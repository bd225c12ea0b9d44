//! `chatkeep completions SHELL` and `chatkeep man`: shell completions and
//! man pages generated from the command line's own definition, so they
//! never drift from `--help`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use super::Fatal;

/// Writes the completion script for `shell` to standard output.
pub fn completions(mut cli: clap::Command, shell: clap_complete::Shell) -> Result<ExitCode, Fatal> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut cli, "chatkeep", &mut out);
    out.flush()
        .map_err(|e| Fatal::usage(format!("writing the completions: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the man page, chatkeep(1), to standard output; or with `dir`,
/// one page per command into it (`chatkeep.1`, `chatkeep-sync.1`, ...).
pub fn man(cli: clap::Command, dir: Option<&Path>) -> Result<ExitCode, Fatal> {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .and_then(|()| clap_mangen::generate_to(cli, dir))
                .map_err(|e| Fatal::usage(format!("writing the man pages to {}: {e}", dir.display())))?;
            eprintln!("wrote the man pages to {}", dir.display());
        }
        None => {
            let mut out = std::io::stdout().lock();
            match clap_mangen::Man::new(cli)
                .render(&mut out)
                .and_then(|()| out.flush())
            {
                // `chatkeep man | head` is fine.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other.map_err(|e| Fatal::usage(format!("writing the man page: {e}")))?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
