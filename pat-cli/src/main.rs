//! `pat-cli`: create and manage personal access tokens in a token store.

use std::process::ExitCode;

use clap::Parser as _;

mod cli;
mod output;
mod token;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::report(e.as_ref());
            ExitCode::FAILURE
        }
    }
}
