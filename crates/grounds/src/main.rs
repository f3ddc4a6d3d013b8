//! grounds: delivers machine-learning training jobs and brings their results home.
//!
//! `main` only parses, dispatches and maps errors to exit codes; the work lives in the modules.

// Nothing a user or a job controls may panic grounds: outside tests, no unwrap, expect or panic.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod answers;
mod cli;
mod cloud;
mod commands;
mod config;
mod docker;
mod executors;
mod job;
mod printer;
mod run;
mod settings;
mod store;

use std::process::ExitCode;

use cli::{Cli, Command};
use commands::Exit;
use printer::{Format, Printer};

fn main() -> ExitCode {
    let cli = Cli::parse_or_explain();
    let format = if cli.json {
        Format::Json
    } else {
        Format::Human
    };
    let printer = Printer::new(format, cli.quiet()).with_color(cli.color);
    let command = cli.command;
    let result = match command {
        Command::Train(command) => commands::train::run(command, &printer),
        Command::Stop { id } => commands::stop::run(id, &printer),
        Command::Results(command) => commands::results::run(command, &printer),
        Command::Cache(command) => commands::cache::run(command, &printer),
        Command::Init(args) => commands::init::run(args, &printer),
        Command::Completions { shell } => commands::shell::completions(shell, &printer),
        Command::Man { dir } => commands::shell::man(dir.as_deref(), &printer),
        Command::CompleteIds { prefix } => commands::shell::complete_ids(&prefix, &printer),
    };
    match result {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(error) => {
            printer.error(&format!("{error:#}"));
            let stopped = error
                .downcast_ref::<run::lifecycle::StoppedBeforeRunning>()
                .is_some();
            if printer.is_json() {
                printer.json(&answers::schema::ErrorAnswer {
                    error: format!("{error:#}"),
                });
            }
            ExitCode::from(if stopped { Exit::Stopped } else { Exit::Error }.code())
        }
    }
}
