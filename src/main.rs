//! grounds: delivers machine-learning training jobs and brings their results home.
//!
//! `main` only parses, dispatches and maps errors to exit codes; the work lives in the modules.

// Nothing a user or a job controls may panic grounds: outside tests, no unwrap, expect or panic.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod archive;
mod aws;
mod builtin;
mod cache;
mod channels;
mod cli;
mod collect;
mod commands;
mod confined;
mod contract;
mod datahash;
mod docker;
mod dotenv;
mod entry;
mod executors;
mod fingerprint;
mod flow;
mod image;
mod job;
mod joblog;
mod lines;
mod metrics;
mod owner;
mod package;
mod pipeline;
mod printer;
mod proctree;
mod pyjson;
mod registry;
mod report;
mod results;
mod s3cache;
mod s3sync;
mod sagemaker;
mod secrets;
mod settings;
mod signals;
mod sweep;
mod task;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use commands::Exit;
use printer::{Format, Printer};

fn main() -> ExitCode {
    // In an image the binary is /usr/local/bin/train, started by SageMaker as `train`.
    let invoked_as = std::env::args_os().next().map(std::path::PathBuf::from);
    let as_entry = invoked_as
        .as_deref()
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == "train");
    let (command, printer) = if as_entry {
        let args = cli::EntryArgs {
            root: None,
            package: None,
        };
        (Command::Entry(args), Printer::new(Format::Human, false))
    } else {
        let cli = Cli::parse();
        let format = if cli.json {
            Format::Json
        } else {
            Format::Human
        };
        (
            cli.command,
            Printer::new(format, cli.quiet).with_color(cli.color),
        )
    };
    let result = match command {
        Command::Entry(args) => commands::entry::run(args, &printer),
        Command::Train(command) => commands::train::run(command, &printer),
        Command::Stop { id } => commands::stop::run(id, &printer),
        Command::Results(command) => commands::results::run(command, &printer),
        Command::Cache(command) => commands::cache::run(command, &printer),
        Command::Init(args) => commands::init::run(args, &printer),
        Command::Completions { shell } => commands::shell::completions(shell, &printer),
        Command::Man => commands::shell::man(&printer),
        Command::CompleteIds { prefix } => commands::shell::complete_ids(&prefix, &printer),
    };
    match result {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(error) => {
            printer.error(&format!("{error:#}"));
            if printer.is_json() {
                printer.json(&serde_json::json!({"error": format!("{error:#}")}));
            }
            ExitCode::from(Exit::Error.code())
        }
    }
}
