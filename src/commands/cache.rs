//! `grounds cache list|clear`: the channel data kept on a Docker engine that does not share this disk
//! (one volume per content hash, see [`crate::docker::volumes`]), seen and removed.

use serde_json::json;

use super::Exit;
use crate::cli::CacheCommand;
use crate::docker::{volumes, EngineAddress};
use crate::printer::human_size;
use crate::printer::{table, Printer, Reporter};

pub fn run(command: CacheCommand, printer: &Printer) -> anyhow::Result<Exit> {
    match command {
        CacheCommand::List { docker_host } => {
            let engine = EngineAddress::resolve(docker_host.as_deref())?;
            let found = super::block_on(async {
                let docker = engine.connect().await?;
                volumes::list(&docker).await
            })??;
            if printer.is_json() {
                printer.json(&json!({"docker_host": engine.to_string(), "data": found}));
                return Ok(Exit::Success);
            }
            if found.is_empty() {
                printer.out(&format!("no channel data kept on {engine}"));
                return Ok(Exit::Success);
            }
            let rows: Vec<Vec<String>> = found
                .iter()
                .map(|d| {
                    vec![
                        d.hash[..d.hash.len().min(12)].to_string(),
                        d.channel.clone(),
                        d.files.to_string(),
                        human_size(d.bytes),
                        d.created.clone().unwrap_or_default(),
                        d.volume.clone(),
                    ]
                })
                .collect();
            printer.out(&table(
                &["HASH", "CHANNEL", "FILES", "SIZE", "CREATED", "VOLUME"],
                &rows,
            ));
            let total: u64 = found.iter().map(|d| d.bytes).sum();
            printer.out(&format!(
                "{} data set(s), {} on {engine}",
                found.len(),
                human_size(total)
            ));
            Ok(Exit::Success)
        }
        CacheCommand::Clear {
            docker_host,
            hashes,
        } => {
            let engine = EngineAddress::resolve(docker_host.as_deref())?;
            let (removed, problems) = super::block_on(async {
                let docker = engine.connect().await?;
                volumes::remove(&docker, &hashes).await
            })??;
            for problem in &problems {
                printer.warn(&format!("not removed: {problem}"));
            }
            let freed: u64 = removed.iter().map(|d| d.bytes).sum();
            if printer.is_json() {
                printer.json(&json!({
                    "docker_host": engine.to_string(),
                    "removed": removed,
                    "freed_bytes": freed,
                    "not_removed": problems,
                }));
            } else {
                printer.stage(
                    "Removed",
                    &format!(
                        "{} data set(s), {} from {engine}",
                        removed.len(),
                        human_size(freed)
                    ),
                );
            }
            Ok(if problems.is_empty() {
                Exit::Success
            } else {
                Exit::Error
            })
        }
    }
}
