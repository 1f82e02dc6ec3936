//! The `tollgate` binary: parses the command line, loads the configuration,
//! opens the store and the core, and either serves or runs one provisioning
//! command. All logic lives in the library crates.

mod admin;
mod api_key;
mod app;
mod carry;
mod cli;
mod commands;
mod doctor;
mod gate;
mod master;
mod migrate;
mod partner;
mod remote;
mod serve;
mod token;

use clap::Parser as _;
// The configuration lives in the library target (lib.rs), so the fuzz
// target can reach it; `crate::config` keeps meaning it here.
use tollgate::config;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
