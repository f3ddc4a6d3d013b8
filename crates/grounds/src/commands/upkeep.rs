//! `grounds results rm | gc`: keeping the store (and the engine's pile of grounds images) in check. Each
//! says what it removed and how much it freed, or with `--dry-run` what it would.

use crate::answers::schema::{ImagesAnswer, RemovedAnswer};
use anyhow::bail;

use super::Exit;
use crate::job::Status;
use crate::printer::{Printer, Reporter};
use crate::store::results::upkeep::{self, Criteria, Image, Spared};
use crate::store::results::{Store, Summary};

/// `results rm ID...`: every id is resolved before anything is removed.
pub fn rm(
    store: &Store,
    prefixes: &[String],
    all: bool,
    force: bool,
    dry_run: bool,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let mut ids: Vec<String> = Vec::new();
    for prefix in prefixes {
        let removal = store.removal(prefix)?;
        if let Some(what) = &removal.many {
            let count = removal.ids.len();
            let shown: Vec<&str> = removal.ids.iter().take(5).map(String::as_str).collect();
            let listed = format!("{}{}", shown.join(", "), if count > 5 { ", …" } else { "" });
            let said_all = all
                || dry_run
                || printer.confirm(&format!(
                    "`{prefix}` names {count} result(s), {what} (newest first: {listed}). Remove them all?"
                ));
            if !said_all {
                bail!(
                    "`{prefix}` names {count} result(s), {what} (newest first: {listed}): `grounds results rm \
                     {prefix} --all` removes them all (add --dry-run to see them first); give a whole id to \
                     remove one"
                );
            }
        }
        for id in removal.ids {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    let mut chosen: Vec<Summary> = Vec::new();
    for id in &ids {
        // Only the named results are read, not the whole store.
        match store.summary(id).ok() {
            Some(row) if row.status == Status::InProgress && !force => bail!(
                "{id} is InProgress: its job may still be running. `grounds results fetch {id}` completes \
                 it, `grounds stop {id}` stops it; --force removes the record anyway"
            ),
            Some(row) => chosen.push(row),
            // A zip grounds cannot read is still a result file the user named: remove it as it is.
            None => chosen.push(Summary {
                id: id.clone(),
                task: String::new(),
                mode: crate::job::Mode::Attached,
                status: Status::Failed,
                created: chrono::Utc::now(),
                duration_seconds: None,
                metrics: Default::default(),
                hyperparameters: Default::default(),
                result: store.result_path(id),
                bytes: std::fs::metadata(store.result_path(id)).map(|m| m.len()).unwrap_or(0),
                image: None,
                pipeline: None,
            }),
        }
    }
    let removed = if dry_run {
        upkeep::Removed {
            ids: chosen.iter().map(|r| r.id.clone()).collect(),
            bytes: chosen.iter().map(|r| r.bytes).sum(),
            failed: Vec::new(),
            kept_open: chosen
                .iter()
                .filter_map(|r| store.kept_opening(&r.id))
                .collect(),
        }
    } else {
        store.remove_all(&chosen)
    };
    report_removed(&removed, &[], None, dry_run, printer)
}

/// `results gc`: results by the criteria, then (with an engine) the images no kept result ran in.
pub fn gc(
    store: &Store,
    criteria: Criteria,
    images: Option<Option<String>>,
    dry_run: bool,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    if !criteria.selects() && images.is_none() {
        bail!(
            "say what to remove: --older-than AGE, --status STATUS, --keep-last N (combined: results \
             matching all; --task NAME narrows them), and/or --images; --dry-run shows what would go"
        );
    }
    let (rows, problems) = store.list()?;
    for problem in &problems {
        printer.warn(&format!("skipping an unreadable result: {problem}"));
    }
    let plan = upkeep::plan(&rows, &criteria, chrono::Utc::now());
    let removed = if dry_run {
        upkeep::Removed {
            ids: plan.remove.iter().map(|r| r.id.clone()).collect(),
            bytes: plan.remove.iter().map(|r| r.bytes).sum(),
            failed: Vec::new(),
            kept_open: plan
                .remove
                .iter()
                .filter_map(|r| store.kept_opening(&r.id))
                .collect(),
        }
    } else {
        // Stale staging files of runs that were killed go too.
        grounds_job::owner::remove_leftovers(&store.results_dir(), &std::env::temp_dir());
        store.remove_all(&plan.remove)
    };
    let images = match images {
        None => None,
        Some(host) => {
            let kept: Vec<Summary> = rows
                .into_iter()
                .filter(|r| !removed.ids.contains(&r.id))
                .collect();
            Some(super::block_on(clean_images(
                host,
                kept,
                criteria.task.as_deref(),
                dry_run,
                printer,
            ))??)
        }
    };
    report_removed(&removed, &plan.spared, images.as_ref(), dry_run, printer)
}

/// What happened to the images.
struct ImagesCleaned {
    removed: Vec<Image>,
    failed: Vec<Spared>,
}

async fn clean_images(
    host: Option<String>,
    kept: Vec<Summary>,
    task: Option<&str>,
    dry_run: bool,
    printer: &Printer,
) -> anyhow::Result<ImagesCleaned> {
    let address = crate::docker::EngineAddress::resolve(host.as_deref())?;
    let docker = address.connect().await?;
    let images: Vec<Image> = crate::docker::labelled_images(&docker)
        .await?
        .into_iter()
        .map(|(id, tags, bytes)| Image { id, tags, bytes })
        .collect();
    let candidates = upkeep::unreferenced_images(&images, &kept, task);
    let mut cleaned = ImagesCleaned {
        removed: Vec::new(),
        failed: Vec::new(),
    };
    for image in candidates {
        if dry_run {
            cleaned.removed.push(image);
            continue;
        }
        let mut gone = Vec::new();
        for tag in &image.tags {
            match crate::docker::remove_tag(&docker, tag).await {
                Ok(()) => gone.push(tag.clone()),
                Err(e) => {
                    printer.warn(&format!("kept image {tag}: {e}"));
                    cleaned.failed.push(Spared {
                        id: tag.clone(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        if !gone.is_empty() {
            let whole = gone.len() == image.tags.len();
            cleaned.removed.push(Image {
                bytes: if whole { image.bytes } else { 0 },
                tags: gone,
                id: image.id,
            });
        }
    }
    Ok(cleaned)
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn report_removed(
    removed: &upkeep::Removed,
    spared: &[Spared],
    images: Option<&ImagesCleaned>,
    dry_run: bool,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let verb = if dry_run { "Would remove" } else { "Removed" };
    for id in &removed.ids {
        printer.stage(verb, id);
    }
    for spared in spared {
        printer.warn(&format!("kept {}: {}", spared.id, spared.reason));
    }
    for kept in &removed.kept_open {
        let shown: Vec<&str> = kept.files.iter().take(5).map(String::as_str).collect();
        printer.warn(&format!(
            "{} {}: it holds {} file(s) you added or changed there ({}{}); remove it yourself when \
             you no longer need them",
            if dry_run { "would keep" } else { "kept" },
            kept.folder.display(),
            kept.files.len(),
            shown.join(", "),
            if kept.files.len() > 5 { ", …" } else { "" }
        ));
    }
    for failed in &removed.failed {
        printer.warn(&format!(
            "could not remove {}: {}",
            failed.id, failed.reason
        ));
    }
    let mut text = format!(
        "{verb} {} result(s), {}",
        removed.ids.len(),
        megabytes(removed.bytes)
    );
    if let Some(images) = images {
        for image in &images.removed {
            printer.stage(verb, &format!("image {}", image.tags.join(", ")));
        }
        let freed: u64 = images.removed.iter().map(|i| i.bytes).sum();
        text.push_str(&format!(
            "; {} image tag(s), {}",
            images.removed.iter().map(|i| i.tags.len()).sum::<usize>(),
            megabytes(freed)
        ));
    }
    text.push('.');
    printer.json(&RemovedAnswer {
        dry_run,
        removed: removed.ids.clone(),
        bytes: removed.bytes,
        spared: spared.to_vec(),
        failed: removed.failed.clone(),
        kept_open: removed.kept_open.clone(),
        images: images.map(|i| ImagesAnswer {
            removed: i.removed.clone(),
            bytes: i.removed.iter().map(|i| i.bytes).sum::<u64>(),
            failed: i.failed.clone(),
        }),
    });
    printer.out(&text);
    // An image a container still uses is kept with a warning; a result that could not go is an error.
    Ok(if removed.failed.is_empty() {
        Exit::Success
    } else {
        Exit::Error
    })
}
