//! `pat-cli`: create and manage personal access tokens in a token store.

use std::process::ExitCode;

#[cfg(unix)]
mod cli;
#[cfg(unix)]
mod output;
#[cfg(unix)]
mod token;

#[cfg(unix)]
fn main() -> ExitCode {
    use clap::Parser as _;
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => cli::exit_with(&e),
    };
    match cli.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::report(e.as_ref());
            ExitCode::FAILURE
        }
    }
}

/// The redb store and its admin socket are Unix only (see pat-core's
/// platform notes); on other systems the CLI says so rather than not building.
#[cfg(not(unix))]
fn main() -> ExitCode {
    eprintln!("error: pat-cli manages a redb token store, which this build supports on Unix only");
    ExitCode::FAILURE
}
