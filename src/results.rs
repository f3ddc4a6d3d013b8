//! The result store: one zip per job in `$GROUNDS_HOME/results/<id>.zip`, written atomically.
//!
//! An id is reserved by creating its staging file exclusively, and the finished zip is renamed into place,
//! so concurrent `grounds` processes never collide and a crash never leaves a zip that looks complete.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::archive::{self, DeterministicZip, Limits};
use crate::metrics::Metrics;
use crate::package::{Package, PackageInfo};
use crate::task::TaskSpec;

pub const HOME_ENV: &str = "GROUNDS_HOME";

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Attached,
    Local,
    Remote,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Attached => "attached",
            Mode::Local => "local",
            Mode::Remote => "remote",
        })
    }
}

/// The status names of SageMaker's `TrainingJobStatus`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Status {
    InProgress,
    Completed,
    Failed,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::InProgress => "InProgress",
            Status::Completed => "Completed",
            Status::Failed => "Failed",
            Status::Stopped => "Stopped",
        })
    }
}

/// `job.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub mode: Mode,
    pub status: Status,
    /// The task as resolved, hyperparameters included.
    pub task: TaskSpec,
    pub task_file: String,
    pub hyperparameters: BTreeMap<String, String>,
    /// Channel name to where its data came from.
    pub channels: BTreeMap<String, String>,
    pub hosts: Vec<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<f64>,
    pub exit_code: Option<i32>,
    pub failure_reason: Option<String>,
    pub fingerprint: String,
    pub package: PackageInfo,
    pub grounds_version: String,
    /// Where a remote job lives, for `results fetch` and `stop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<crate::executors::remote::RemoteJob>,
}

/// Everything a finished job leaves, to be written as one zip.
pub struct ResultContents<'a> {
    pub job: &'a JobRecord,
    pub package: &'a Package,
    pub metrics: &'a Metrics,
    pub logs: &'a Path,
    /// What the job wrote to `/opt/ml/model` and `/opt/ml/output`.
    pub model_dir: &'a Path,
    pub output_dir: &'a Path,
}

#[derive(Clone)]
pub struct Store {
    pub home: PathBuf,
}

/// An id that belongs to this process until its result is committed (or the reservation dropped).
pub struct Reservation {
    pub id: String,
    staging: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.staging);
        }
    }
}

impl Reservation {
    /// Writes the result zip to the staging file and renames it into place.
    pub fn commit(mut self, contents: &ResultContents) -> anyhow::Result<PathBuf> {
        let file = File::create(&self.staging)
            .with_context(|| format!("writing {}", self.staging.display()))?;
        let mut zip = DeterministicZip::new(file);
        zip.add("job.json", &serde_json::to_vec_pretty(contents.job)?, false)?;
        zip.add(
            "package.json",
            &serde_json::to_vec_pretty(&contents.package.info)?,
            false,
        )?;
        zip.add("package.zip", &contents.package.bytes, false)?;
        zip.add(
            "metrics.json",
            &serde_json::to_vec_pretty(contents.metrics)?,
            false,
        )?;
        zip.add_file("logs.txt", contents.logs)
            .context("storing logs.txt")?;
        zip.add_tree("model", contents.model_dir)
            .context("storing the model folder")?;
        zip.add_tree("output", contents.output_dir)
            .context("storing the output folder")?;
        let mut file = zip.finish()?;
        file.flush()?;
        file.sync_all()?;
        std::fs::rename(&self.staging, &self.target)
            .with_context(|| format!("moving the result into {}", self.target.display()))?;
        self.committed = true;
        Ok(self.target.clone())
    }
}

/// One row of `results list`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub id: String,
    pub task: String,
    pub mode: Mode,
    pub status: Status,
    pub created: DateTime<Utc>,
    pub duration_seconds: Option<f64>,
    pub metrics: BTreeMap<String, f64>,
    pub result: PathBuf,
}

/// A stored result, read back.
pub struct Stored {
    pub path: PathBuf,
    pub job: JobRecord,
    pub metrics: Metrics,
    pub files: Vec<(String, u64)>,
}

impl Store {
    /// `$GROUNDS_HOME`, or `./.grounds`.
    pub fn from_env() -> Store {
        let home = std::env::var_os(HOME_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".grounds"));
        Store {
            home: std::path::absolute(&home).unwrap_or(home),
        }
    }

    pub fn results_dir(&self) -> PathBuf {
        self.home.join("results")
    }

    pub fn open_dir(&self, id: &str) -> PathBuf {
        self.home.join("open").join(id)
    }

    pub fn result_path(&self, id: &str) -> PathBuf {
        self.results_dir().join(format!("{id}.zip"))
    }

    /// Reserves a fresh id `<base>-<YYYYmmdd-HHMMSS>-<xxxx>`.
    pub fn reserve(&self, base: &str) -> anyhow::Result<Reservation> {
        let dir = self.results_dir();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the result store {}", dir.display()))?;
        for _ in 0..1000 {
            let id = format!(
                "{base}-{}-{:04x}",
                Utc::now().format("%Y%m%d-%H%M%S"),
                fastrand::u16(..)
            );
            let target = self.result_path(&id);
            let staging = dir.join(format!(".{id}.zip.partial"));
            if target.exists() {
                continue;
            }
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&staging)
            {
                Ok(_) => {
                    return Ok(Reservation {
                        id,
                        staging,
                        target,
                        committed: false,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("reserving {}", staging.display()))
                }
            }
        }
        bail!("could not find a free result id in {}", dir.display())
    }

    /// A reservation that replaces the stored result `id` when committed (as `results fetch` does).
    pub fn rewrite(&self, id: &str) -> anyhow::Result<Reservation> {
        let target = self.result_path(id);
        let staging = self
            .results_dir()
            .join(format!(".{id}.{:08x}.zip.partial", fastrand::u32(..)));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&staging)
            .with_context(|| format!("reserving {}", staging.display()))?;
        Ok(Reservation {
            id: id.to_string(),
            staging,
            target,
            committed: false,
        })
    }

    /// The package a result was made from.
    pub fn package(&self, id: &str) -> anyhow::Result<Package> {
        let path = self.result_path(id);
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut zip = ::zip::ZipArchive::new(BufReader::new(file))?;
        let bytes = archive::read_entry(&mut zip, "package.zip")?
            .with_context(|| format!("{} has no package.zip", path.display()))?;
        let (_, info) = crate::package::read_manifest(&bytes)?;
        Ok(Package { info, bytes })
    }

    /// Ids of all stored results, sorted.
    pub fn ids(&self) -> anyhow::Result<Vec<String>> {
        let dir = self.results_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (!name.starts_with('.'))
                    .then(|| name.strip_suffix(".zip").map(str::to_string))
                    .flatten()
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The one id that `prefix` names: an exact id, or the only id that starts with it.
    pub fn resolve(&self, prefix: &str) -> anyhow::Result<String> {
        let ids = self.ids()?;
        if ids.iter().any(|id| id == prefix) {
            return Ok(prefix.to_string());
        }
        let matches: Vec<&String> = ids.iter().filter(|id| id.starts_with(prefix)).collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] if ids.is_empty() => bail!(
                "no result matches `{prefix}`: the store {} is empty",
                self.results_dir().display()
            ),
            [] => {
                let recent: Vec<&str> = ids.iter().rev().take(5).map(String::as_str).collect();
                bail!(
                    "no result matches `{prefix}`; the most recent are: {}",
                    recent.join(", ")
                )
            }
            many => {
                let names: Vec<&str> = many.iter().take(10).map(|s| s.as_str()).collect();
                bail!(
                    "`{prefix}` is ambiguous: it matches {} results ({}{}); give more of the id",
                    many.len(),
                    names.join(", "),
                    if many.len() > 10 { ", …" } else { "" }
                )
            }
        }
    }

    pub fn read(&self, id: &str) -> anyhow::Result<Stored> {
        let path = self.result_path(id);
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut zip = ::zip::ZipArchive::new(BufReader::new(file))
            .with_context(|| format!("{} is not a readable result zip", path.display()))?;
        let job = archive::read_entry(&mut zip, "job.json")?
            .with_context(|| format!("{} has no job.json", path.display()))?;
        let job: JobRecord = serde_json::from_slice(&job)
            .with_context(|| format!("{}: job.json is not valid", path.display()))?;
        let metrics = match archive::read_entry(&mut zip, "metrics.json")? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{}: metrics.json is not valid", path.display()))?,
            None => Metrics::default(),
        };
        let mut files = Vec::new();
        for index in 0..zip.len() {
            let entry = zip.by_index_raw(index)?;
            if !entry.is_dir() {
                files.push((entry.name().to_string(), entry.size()));
            }
        }
        Ok(Stored {
            path,
            job,
            metrics,
            files,
        })
    }

    /// The newest completed result of `mode` with this fingerprint: a run that need not be made again.
    pub fn find_completed(&self, fingerprint: &str, mode: Mode) -> anyhow::Result<Option<Stored>> {
        let mut newest: Option<Stored> = None;
        for id in self.ids()? {
            let Ok(stored) = self.read(&id) else { continue };
            let job = &stored.job;
            if job.status == Status::Completed
                && job.mode == mode
                && job.fingerprint == fingerprint
                && newest
                    .as_ref()
                    .is_none_or(|n| n.job.started_at < job.started_at)
            {
                newest = Some(stored);
            }
        }
        Ok(newest)
    }

    /// Summaries of every readable result, oldest first; unreadable zips are reported, not fatal.
    pub fn list(&self) -> anyhow::Result<(Vec<Summary>, Vec<String>)> {
        let mut rows = Vec::new();
        let mut problems = Vec::new();
        for id in self.ids()? {
            match self.read(&id) {
                Ok(stored) => rows.push(Summary {
                    id: stored.job.id.clone(),
                    task: stored.job.task.name.clone(),
                    mode: stored.job.mode,
                    status: stored.job.status,
                    created: stored.job.started_at,
                    duration_seconds: stored.job.duration_seconds,
                    metrics: stored.metrics.finals(),
                    result: stored.path,
                }),
                Err(e) => problems.push(format!("{id}: {e:#}")),
            }
        }
        rows.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok((rows, problems))
    }

    /// Unpacks a result into `dest` after checking every entry.
    pub fn unpack(&self, id: &str, dest: &Path, limits: Limits) -> anyhow::Result<u64> {
        let path = self.result_path(id);
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        Ok(archive::unpack(
            BufReader::new(file),
            &path.display().to_string(),
            "",
            dest,
            limits,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_unique_and_dropping_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store {
            home: dir.path().to_path_buf(),
        };
        let a = store.reserve("t").unwrap();
        let b = store.reserve("t").unwrap();
        assert_ne!(a.id, b.id);
        assert!(a.id.starts_with("t-") && a.id.len() == 1 + crate::task::JOB_SUFFIX_LEN);
        drop(a);
        drop(b);
        assert_eq!(std::fs::read_dir(store.results_dir()).unwrap().count(), 0);
        assert!(store.ids().unwrap().is_empty());
    }

    #[test]
    fn prefixes_resolve_to_one_id_or_explain() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store {
            home: dir.path().to_path_buf(),
        };
        std::fs::create_dir_all(store.results_dir()).unwrap();
        for id in ["titanic-1-aaaa", "titanic-1-aabb", "other-2-cccc"] {
            std::fs::write(store.result_path(id), b"").unwrap();
        }
        assert_eq!(store.resolve("other").unwrap(), "other-2-cccc");
        assert_eq!(store.resolve("titanic-1-aab").unwrap(), "titanic-1-aabb");
        let ambiguous = store.resolve("titanic").unwrap_err().to_string();
        assert!(
            ambiguous.contains("ambiguous") && ambiguous.contains("titanic-1-aaaa"),
            "{ambiguous}"
        );
        let unknown = store.resolve("zzz").unwrap_err().to_string();
        assert!(unknown.contains("no result matches `zzz`"), "{unknown}");
    }
}
