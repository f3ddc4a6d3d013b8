//! `grounds cache list|clear`: what grounds keeps to avoid work, seen and removed: the channel data kept on
//! a Docker engine that does not share this disk (one volume per content hash, see
//! [`crate::docker::volumes`]) and, with `--local`, the caches under `$GROUNDS_HOME/cache` (see
//! [`crate::store::cache`]). What a running job reads is never removed: it is named as in use.

use std::path::{Path, PathBuf};

use crate::answers::schema::{CacheAnswer, FilesAndBytes, LocalCache, S3Cache};

use super::Exit;
use crate::cli::{CacheArgs, CacheCommand};
use crate::docker::{volumes, EngineAddress};
use crate::printer::human_size;
use crate::printer::{table, Printer, Reporter};
use crate::store::results::Store;

pub fn run(command: CacheCommand, printer: &Printer) -> anyhow::Result<Exit> {
    let (args, hashes, clear) = match command {
        CacheCommand::List(args) => (args, Vec::new(), false),
        CacheCommand::Clear { args, hashes } => (args, hashes, true),
    };
    let engine = !(args.local || args.s3) || args.docker_host.is_some();
    let mut answer = CacheAnswer::default();
    let mut exit = Exit::Success;
    if args.local {
        let cache = Store::from_env().home.join("cache");
        let (value, failed) = if clear {
            clear_local(&cache, &hashes, printer)
        } else {
            (list_local(&cache, printer), false)
        };
        answer.local = Some(value);
        if failed {
            exit = Exit::Error;
        }
    }
    if args.s3 {
        let (value, kept) = super::block_on(s3_datasets(&args, &hashes, clear, printer))??;
        answer.s3 = Some(value);
        if kept && !hashes.is_empty() {
            exit = Exit::Error;
        }
    }
    if engine {
        let address = EngineAddress::resolve(args.docker_host.as_deref())?;
        answer.docker_host = Some(address.to_string());
        if clear {
            if !clear_engine(&address, &hashes, &mut answer, printer)? {
                exit = Exit::Error;
            }
        } else {
            list_engine(&address, &mut answer, printer)?;
        }
    }
    printer.json(&answer);
    Ok(exit)
}

/// A content hash as tables show it.
fn short(hash: &str) -> String {
    hash.chars().take(12).collect()
}

fn list_engine(
    engine: &EngineAddress,
    answer: &mut CacheAnswer,
    printer: &Printer,
) -> anyhow::Result<()> {
    let found = super::block_on(async {
        let docker = engine.connect().await?;
        volumes::list(&docker).await
    })??;
    if found.is_empty() {
        printer.out(&format!("no channel data kept on {engine}"));
    } else {
        let rows: Vec<Vec<String>> = found
            .iter()
            .map(|d| {
                vec![
                    short(&d.hash),
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
    }
    answer.data = Some(found);
    Ok(())
}

/// Clears the engine's data sets; false when some could not be removed.
fn clear_engine(
    engine: &EngineAddress,
    hashes: &[String],
    answer: &mut CacheAnswer,
    printer: &Printer,
) -> anyhow::Result<bool> {
    let (removed, problems) = super::block_on(async {
        let docker = engine.connect().await?;
        volumes::remove(&docker, hashes).await
    })??;
    for problem in &problems {
        printer.warn(&format!("not removed: {problem}"));
    }
    let freed: u64 = removed.iter().map(|d| d.bytes).sum();
    printer.stage(
        "Removed",
        &format!(
            "{} data set(s), {} from {engine}",
            removed.len(),
            human_size(freed)
        ),
    );
    let ok = problems.is_empty();
    answer.removed = Some(removed);
    answer.freed_bytes = Some(freed);
    answer.not_removed = Some(problems);
    Ok(ok)
}

/// The local caches' folders: results unpacked for `result://`, laid-out `s3://` channels.
fn entry_folders(cache: &Path) -> [(&'static str, PathBuf); 2] {
    [
        ("results", cache.join("results")),
        ("s3", cache.join("s3").join("views")),
    ]
}

fn files_and_bytes(dir: &Path) -> (usize, u64) {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .fold((0, 0), |(n, b), m| (n + 1, b + m.len()))
        })
        .unwrap_or((0, 0))
}

fn list_local(cache: &Path, printer: &Printer) -> LocalCache {
    let mut rows = Vec::new();
    let [(_, results_folder), (_, views_folder)] = entry_folders(cache);
    let results = crate::store::cache::list(&results_folder);
    let s3 = crate::store::cache::list(&views_folder);
    for (kind, listed) in [("results", &results), ("s3", &s3)] {
        for entry in listed {
            rows.push(vec![
                kind.to_string(),
                entry.name.clone(),
                human_size(entry.bytes),
                if entry.whole { "whole" } else { "incomplete" }.to_string(),
            ]);
        }
    }
    let (objects, object_bytes) = files_and_bytes(&cache.join("s3").join("objects"));
    let (hashes, hash_bytes) = files_and_bytes(&cache.join("hashes"));
    if rows.is_empty() {
        printer.out(&format!(
            "no unpacked results or s3:// channels kept in {}",
            cache.display()
        ));
    } else {
        printer.out(&table(&["CACHE", "ENTRY", "SIZE", "STATE"], &rows));
    }
    printer.out(&format!(
        "{objects} downloaded S3 object(s), {}; content hashes of {hashes} folder(s), {}",
        human_size(object_bytes),
        human_size(hash_bytes)
    ));
    LocalCache::Listed {
        results,
        s3,
        s3_objects: FilesAndBytes {
            removed: None,
            files: objects,
            bytes: object_bytes,
        },
        hashes: FilesAndBytes {
            removed: None,
            files: hashes,
            bytes: hash_bytes,
        },
    }
}

/// Clears the local caches (entries named by `prefixes`, or all); true in the second place when
/// something could not be removed.
fn clear_local(cache: &Path, prefixes: &[String], printer: &Printer) -> (LocalCache, bool) {
    let mut failed = false;
    let mut freed = 0u64;
    let mut clear = |kind: &str, folder: &Path| {
        let cleared = crate::store::cache::clear(folder, prefixes);
        for name in &cleared.in_use {
            printer.warn(&format!(
                "kept {kind} cache entry {name}: a running job reads it"
            ));
        }
        for problem in &cleared.failed {
            printer.warn(&format!("not removed: {problem}"));
        }
        failed |= !cleared.failed.is_empty();
        freed += cleared.removed.iter().map(|e| e.bytes).sum::<u64>();
        cleared
    };
    let [(_, results_folder), (_, views_folder)] = entry_folders(cache);
    let results = clear("results", &results_folder);
    let s3_views = clear("s3", &views_folder);
    let mut s3_objects = None;
    let mut hashes_cleared = None;
    if prefixes.is_empty() {
        // Downloaded objects go only when no run is downloading or laying out a channel from them.
        let s3 = cache.join("s3");
        let objects = s3.join("objects");
        let (count, bytes) = files_and_bytes(&objects);
        let removed = match grounds_job::owner::Hold::try_take(
            &crate::cloud::s3cache::objects_lock(&s3),
            grounds_job::owner::HoldKind::Exclusive,
        ) {
            Ok(Some(_hold)) => match std::fs::remove_dir_all(&objects) {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
                Err(e) => {
                    printer.warn(&format!("not removed: {}: {e}", objects.display()));
                    failed = true;
                    false
                }
            },
            _ => {
                printer.warn("kept the downloaded S3 objects: a run is fetching s3:// channels");
                false
            }
        };
        if removed {
            freed += bytes;
        }
        s3_objects = Some(FilesAndBytes {
            removed: Some(removed),
            files: count,
            bytes,
        });
        // Content hashes are written whole (a temporary file renamed into place): removing them costs
        // the next run one full read of its data.
        let hashes = cache.join("hashes");
        let (count, bytes) = files_and_bytes(&hashes);
        let removed = matches!(std::fs::remove_dir_all(&hashes), Ok(())) || !hashes.exists();
        if removed {
            freed += bytes;
        }
        hashes_cleared = Some(FilesAndBytes {
            removed: Some(removed),
            files: count,
            bytes,
        });
    }
    printer.stage(
        "Removed",
        &format!("{} from {}", human_size(freed), cache.display()),
    );
    (
        LocalCache::Cleared {
            results,
            s3: s3_views,
            s3_objects,
            hashes: hashes_cleared,
            freed_bytes: freed,
        },
        failed,
    )
}

/// The data sets of SageMaker runs in S3, listed or cleared; true in the second place when a data set
/// asked for by hash was kept.
async fn s3_datasets(
    args: &CacheArgs,
    hashes: &[String],
    clear: bool,
    printer: &Printer,
) -> anyhow::Result<(S3Cache, bool)> {
    use crate::cloud::sagemaker::datasets;
    let aws =
        crate::cloud::aws::Aws::connect(args.aws.profile.as_deref(), args.aws.region.as_deref())
            .await?;
    let (dotenv, _) = crate::config::dotenv::load(Path::new("."));
    let bucket = args
        .bucket
        .clone()
        .or_else(|| dotenv.lookup("GROUNDS_BUCKET").map(|found| found.value))
        .unwrap_or_else(|| format!("sagemaker-{}-{}", aws.region, aws.account));
    let s3 = aws.s3();
    if !clear {
        let found = datasets::list(&s3, &bucket).await?;
        if found.is_empty() {
            printer.out(&format!(
                "no data sets in s3://{bucket}/{}",
                datasets::PREFIX
            ));
        } else {
            let rows: Vec<Vec<String>> = found
                .iter()
                .map(|d| {
                    vec![
                        short(&d.hash),
                        d.files.to_string(),
                        human_size(d.bytes),
                        d.written.map(|t| t.to_rfc3339()).unwrap_or_default(),
                        d.uri.clone(),
                    ]
                })
                .collect();
            printer.out(&table(&["HASH", "FILES", "SIZE", "WRITTEN", "URI"], &rows));
        }
        return Ok((
            S3Cache::Listed {
                bucket,
                data: found,
            },
            false,
        ));
    }
    let cleared = datasets::clear(
        &s3,
        &aws.sagemaker(),
        &bucket,
        hashes,
        chrono::Utc::now(),
        args.older_than.unwrap_or(datasets::SETTLE),
    )
    .await?;
    for (hash, why) in &cleared.kept {
        printer.warn(&format!(
            "kept s3://{bucket}/{}: {why}",
            datasets::prefix_of(hash)
        ));
    }
    let freed: u64 = cleared.removed.iter().map(|d| d.bytes).sum();
    printer.stage(
        "Removed",
        &format!(
            "{} data set(s), {} from s3://{bucket}/{}",
            cleared.removed.len(),
            human_size(freed),
            datasets::PREFIX
        ),
    );
    let kept = !cleared.kept.is_empty();
    Ok((
        S3Cache::Cleared {
            bucket,
            removed: cleared.removed,
            kept: cleared.kept,
            freed_bytes: freed,
        },
        kept,
    ))
}
