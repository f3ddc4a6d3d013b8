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
mod channels;
mod cli;
mod collect;
mod commands;
mod confined;
mod contract;
mod docker;
mod dotenv;
mod entry;
mod executors;
mod fingerprint;
mod image;
mod lines;
mod metrics;
mod owner;
mod package;
mod printer;
mod proctree;
mod pyjson;
mod registry;
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

use cli::{Cli, Command, TrainCommand};
use commands::Exit;
use printer::{Format, Printer};
use results::Mode;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(Exit::Error as u8);
        }
    };
    // In an image the binary is /usr/local/bin/train, started by SageMaker as `train`.
    let invoked_as = std::env::args_os().next().map(std::path::PathBuf::from);
    if invoked_as
        .as_deref()
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == "train")
    {
        let args = cli::EntryArgs {
            root: None,
            package: None,
        };
        return ExitCode::from(runtime.block_on(commands::entry::run(args)).clamp(0, 255) as u8);
    }

    let cli = Cli::parse();
    let printer = Printer::new(
        if cli.json {
            Format::Json
        } else {
            Format::Human
        },
        cli.quiet,
    );
    let result = runtime.block_on(async {
        match cli.command {
            Command::Entry(args) => Ok(commands::entry::run(args).await),
            Command::Train(TrainCommand::Attached(args)) => {
                commands::train::run(args, None, Mode::Attached, &printer)
                    .await
                    .map(|e| e as i32)
            }
            Command::Train(TrainCommand::Local(args)) => {
                commands::train::run(args.train.clone(), Some(args), Mode::Local, &printer)
                    .await
                    .map(|e| e as i32)
            }
            Command::Train(TrainCommand::Remote(args)) => commands::remote::train(args, &printer)
                .await
                .map(|e| e as i32),
            Command::Stop { id } => commands::remote::stop(&id, &printer)
                .await
                .map(|e| e as i32),
            Command::Results(command) => commands::results::run(command, &printer)
                .await
                .map(|e| e as i32),
        }
    });
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(error) => {
            printer.error(&format!("{error:#}"));
            if printer.is_json() {
                printer.json(&serde_json::json!({"error": format!("{error:#}")}));
            }
            ExitCode::from(Exit::Error as u8)
        }
    }
}
