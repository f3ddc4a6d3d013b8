//! Store upkeep: which results `results gc` removes (by age, status and how many of a task to keep),
//! removing results whole (the zip and its unpacked copy), and which of grounds' images no kept result
//! refers to. A record of a job that may still run (`InProgress`) is never removed unless forced.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

use super::{Store, Summary};
use crate::job::Status;

/// What `results gc` is asked to remove: results matching every criterion given.
#[derive(Debug, Clone, Default)]
pub struct Criteria {
    /// Created longer ago than this.
    pub older_than: Option<std::time::Duration>,
    /// With this status.
    pub status: Option<Status>,
    /// All but the newest N of each task.
    pub keep_last: Option<usize>,
    /// Only results (and images) of this task.
    pub task: Option<String>,
    /// Remove `InProgress` records too.
    pub force: bool,
}

impl Criteria {
    /// Whether any criterion that selects results was given.
    pub fn selects(&self) -> bool {
        self.older_than.is_some() || self.status.is_some() || self.keep_last.is_some()
    }
}

/// A result left in place although it matched, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Spared {
    pub id: String,
    pub reason: String,
}

/// What a clean-up removes and spares.
#[derive(Debug, Default, Serialize)]
pub struct Plan {
    pub remove: Vec<Summary>,
    pub spared: Vec<Spared>,
}

pub const IN_PROGRESS_SPARED: &str =
    "InProgress: its job may still be running (`results fetch` completes it; --force removes the record)";

/// The results `criteria` select among `rows`, as of `now`.
pub fn plan(rows: &[Summary], criteria: &Criteria, now: DateTime<Utc>) -> Plan {
    let mut plan = Plan::default();
    if !criteria.selects() {
        return plan;
    }
    // The newest `keep_last` of each task are kept.
    let mut kept: BTreeSet<&str> = BTreeSet::new();
    if let Some(keep) = criteria.keep_last {
        let mut by_task: BTreeMap<&str, Vec<&Summary>> = BTreeMap::new();
        for row in rows {
            by_task.entry(row.task.as_str()).or_default().push(row);
        }
        for (_, mut results) in by_task {
            results.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
            kept.extend(results.iter().take(keep).map(|r| r.id.as_str()));
        }
    }
    let cutoff = criteria
        .older_than
        .and_then(|age| chrono::Duration::from_std(age).ok())
        .and_then(|age| now.checked_sub_signed(age));
    for row in rows {
        let old_enough = match (criteria.older_than, cutoff) {
            (None, _) => true,
            (Some(_), Some(cutoff)) => row.created < cutoff,
            // An age beyond the calendar: nothing is that old.
            (Some(_), None) => false,
        };
        let status_matches = criteria.status.is_none_or(|s| s == row.status);
        let task_matches = criteria.task.as_ref().is_none_or(|t| t == &row.task);
        if !old_enough || !status_matches || !task_matches || kept.contains(row.id.as_str()) {
            continue;
        }
        if row.status == Status::InProgress && !criteria.force {
            plan.spared.push(Spared {
                id: row.id.clone(),
                reason: IN_PROGRESS_SPARED.into(),
            });
        } else {
            plan.remove.push(row.clone());
        }
    }
    plan
}

/// What removing results did.
#[derive(Debug, Default, Serialize)]
pub struct Removed {
    pub ids: Vec<String>,
    pub bytes: u64,
    pub failed: Vec<Spared>,
    /// Unpacked copies (`results open`) left in place because they hold files a user added or changed.
    pub kept_open: Vec<KeptOpen>,
}

/// An unpacked copy of a removed result that was kept, and the files in it that are the user's.
#[derive(Debug, Clone, Serialize)]
pub struct KeptOpen {
    pub id: String,
    pub folder: std::path::PathBuf,
    pub files: Vec<String>,
}

impl Store {
    /// Removes a result: its zip, then the copy `results open` unpacked into the store, unless that copy
    /// holds files that are not the result's own (added or changed there): then it is kept and returned.
    pub fn remove(&self, id: &str) -> anyhow::Result<(u64, Option<KeptOpen>)> {
        use anyhow::Context;
        super::check_id(id).map_err(super::StoreError::InvalidId)?;
        let path = self.result_path(id);
        let bytes = std::fs::metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        let opened = self.open_dir(id);
        // The opening's lock, as `results open` takes it: never removed while it is being opened.
        let lock = self.home.join("open").join(format!(".{id}.lock"));
        let _opening = match std::fs::symlink_metadata(&opened) {
            Ok(_) => Some(
                grounds_job::owner::Hold::wait(&lock, grounds_job::owner::HoldKind::Exclusive)
                    .with_context(|| format!("locking {}", lock.display()))?,
            ),
            Err(_) => None,
        };
        let opened_is_dir = std::fs::symlink_metadata(&opened).is_ok_and(|m| m.is_dir());
        let kept = self.kept_opening(id);
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        if opened_is_dir && kept.is_none() {
            std::fs::remove_dir_all(&opened)
                .with_context(|| format!("removing the unpacked copy {}", opened.display()))?;
            let _ = std::fs::remove_file(&lock);
        }
        Ok((bytes, kept))
    }

    /// The unpacked copy of result `id` that removing it would keep, with the user's files in it.
    pub fn kept_opening(&self, id: &str) -> Option<KeptOpen> {
        let opened = self.open_dir(id);
        if !std::fs::symlink_metadata(&opened).is_ok_and(|m| m.is_dir()) {
            return None;
        }
        // A zip that cannot be read back cannot vouch for any file there: all of it is kept.
        let files = match self.changed_in_opening(id, &opened) {
            Ok(changed) => changed,
            Err(e) => vec![format!("(the result could not be compared: {e:#})")],
        };
        (!files.is_empty()).then(|| KeptOpen {
            id: id.to_string(),
            folder: opened,
            files,
        })
    }

    /// Removes every result of `rows`, going on past one that cannot be removed.
    pub fn remove_all(&self, rows: &[Summary]) -> Removed {
        let mut removed = Removed::default();
        for row in rows {
            match self.remove(&row.id) {
                Ok((bytes, kept)) => {
                    removed.bytes += bytes;
                    removed.ids.push(row.id.clone());
                    removed.kept_open.extend(kept);
                }
                Err(e) => removed.failed.push(Spared {
                    id: row.id.clone(),
                    reason: format!("{e:#}"),
                }),
            }
        }
        removed
    }

    /// The bytes of every result zip in the store.
    pub fn size(&self) -> u64 {
        std::fs::read_dir(self.results_dir())
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".zip"))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

/// An image grounds built, as the engine lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Image {
    pub id: String,
    pub tags: Vec<String>,
    pub bytes: u64,
}

/// grounds' images (`grounds/...` tags; of `task` only, if given) that no result of `kept` ran in: the
/// tags to remove, per image.
pub fn unreferenced_images(images: &[Image], kept: &[Summary], task: Option<&str>) -> Vec<Image> {
    let referenced: BTreeSet<&str> = kept.iter().filter_map(|r| r.image.as_deref()).collect();
    let prefix = match task {
        Some(task) => format!("grounds/{}:", task.to_lowercase()),
        None => "grounds/".to_string(),
    };
    images
        .iter()
        .filter_map(|image| {
            let tags: Vec<String> = image
                .tags
                .iter()
                .filter(|t| t.starts_with(&prefix) && !referenced.contains(t.as_str()))
                .cloned()
                .collect();
            // An image a kept result (or a tag that is not grounds') still names stays: only tags go.
            let all_go = image.tags.iter().all(|t| tags.contains(t));
            (!tags.is_empty()).then(|| Image {
                id: image.id.clone(),
                bytes: if all_go { image.bytes } else { 0 },
                tags,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Mode;
    use std::path::PathBuf;

    fn row(id: &str, task: &str, status: Status, days_ago: i64) -> Summary {
        Summary {
            id: id.into(),
            task: task.into(),
            mode: Mode::Local,
            status,
            created: Utc::now() - chrono::Duration::days(days_ago),
            duration_seconds: None,
            metrics: Default::default(),
            hyperparameters: Default::default(),
            result: PathBuf::from(format!("/{id}.zip")),
            bytes: 1,
            image: Some(format!("grounds/{task}:{id}")),
            pipeline: None,
        }
    }

    fn ids(plan: &Plan) -> Vec<&str> {
        plan.remove.iter().map(|r| r.id.as_str()).collect()
    }

    #[test]
    fn criteria_combine_and_in_progress_records_are_spared_unless_forced() {
        let rows = vec![
            row("a", "t", Status::Failed, 40),
            row("b", "t", Status::Completed, 35),
            row("c", "t", Status::InProgress, 31),
            row("d", "t", Status::Failed, 2),
            row("e", "u", Status::Stopped, 50),
        ];
        let now = Utc::now();
        let month = Some(std::time::Duration::from_secs(30 * 86400));
        let old = Criteria {
            older_than: month,
            ..Default::default()
        };
        let planned = plan(&rows, &old, now);
        assert_eq!(ids(&planned), ["a", "b", "e"]);
        assert_eq!(planned.spared.len(), 1);
        assert_eq!(planned.spared[0].id, "c");
        let forced = Criteria {
            force: true,
            ..old.clone()
        };
        assert_eq!(ids(&plan(&rows, &forced, now)), ["a", "b", "c", "e"]);
        let failed = Criteria {
            status: Some(Status::Failed),
            ..Default::default()
        };
        assert_eq!(ids(&plan(&rows, &failed, now)), ["a", "d"]);
        let old_failed = Criteria {
            status: Some(Status::Failed),
            older_than: month,
            ..Default::default()
        };
        assert_eq!(ids(&plan(&rows, &old_failed, now)), ["a"]);
        // The newest two of each task stay: d and c of t, e of u.
        let keep = Criteria {
            keep_last: Some(2),
            ..Default::default()
        };
        let planned = plan(&rows, &keep, now);
        assert_eq!(ids(&planned), ["a", "b"]);
        assert!(plan(&rows, &Criteria::default(), now).remove.is_empty());
    }

    #[test]
    fn images_of_kept_results_stay() {
        let kept = vec![row("b", "t", Status::Completed, 1)];
        let images = vec![
            Image {
                id: "1".into(),
                tags: vec!["grounds/t:b".into()],
                bytes: 10,
            },
            Image {
                id: "2".into(),
                tags: vec!["grounds/t:old".into()],
                bytes: 20,
            },
            Image {
                id: "3".into(),
                tags: vec!["grounds/t:b".into(), "grounds/t:other".into()],
                bytes: 30,
            },
        ];
        assert!(unreferenced_images(&images, &kept, Some("other")).is_empty());
        let gone = unreferenced_images(&images, &kept, Some("t"));
        assert_eq!(gone.len(), 2);
        assert_eq!(gone[0].tags, ["grounds/t:old"]);
        assert_eq!(gone[0].bytes, 20);
        // Image 3 loses a tag but stays: nothing is freed.
        assert_eq!(gone[1].tags, ["grounds/t:other"]);
        assert_eq!(gone[1].bytes, 0);
    }
}
