//! The result store: one zip per job in `$GROUNDS_HOME/results/<id>.zip`, written atomically.
//!
//! An id is reserved by creating its staging file exclusively, and the finished zip is renamed into place,
//! so concurrent `grounds` processes never collide and a crash never leaves a zip that looks complete.
//! Unpacking a result for a person to look at (`results open`) is in [`open`].

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::job::collect::{Collected, LeftOut, Source};
use crate::job::metrics::Metrics;
use crate::job::package::Package;
pub use crate::job::{JobRecord, Mode, Status};
use grounds_job::archive::{self, DeterministicZip};

pub mod export;
mod open;
pub mod upkeep;
pub use open::Opened;

/// How many things left out of a result `job.json` names; the rest are counted.
const LEFT_OUT_MAX: usize = 1_000;
/// The most `job.json` may hold when it is read back (it is a few KiB, and at most a few MiB with
/// [`LEFT_OUT_MAX`] entries of long paths; a larger one is not grounds').
const JOB_JSON_MAX: u64 = 16 << 20;
/// The most `metrics.json` may hold when it is read back: more than the most a job can write (the
/// metrics are bounded as they are recorded, see [`crate::job::metrics::SAMPLES_MAX`]), never a zip bomb.
pub const METRICS_JSON_MAX: u64 = 256 << 20;

pub const HOME_ENV: &str = "GROUNDS_HOME";

/// Why `id` cannot name a result, if it cannot. A result's id is its file's name (`<id>.zip`) and a
/// SageMaker job name: 1 to 63 letters, digits and hyphens, starting with a letter or digit; nothing else
/// ever becomes a path in the store (no `/`, no `..`).
pub fn check_id(id: &str) -> Result<(), String> {
    let max = crate::config::task::JOB_NAME_MAX;
    if id.is_empty() || id.len() > max {
        return Err(format!(
            "`{id}` is not a result id: ids have 1 to {max} characters"
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "`{}` is not a result id: it holds `{}`, and ids are letters, digits and hyphens",
            id.escape_debug(),
            bad.escape_debug()
        ));
    }
    if id.starts_with('-') {
        return Err(format!(
            "`{id}` is not a result id: ids start with a letter or a digit"
        ));
    }
    Ok(())
}

/// Results the store cannot act on as they are.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    InvalidId(String),
    /// A zip whose `job.json` names another result: copied or renamed by hand. It is never acted on
    /// through the id inside it.
    #[error(
        "{path} is damaged: its job.json names result `{inner}`, not `{id}` (the file was copied or \
         renamed). Rename it back to {inner}.zip, or remove it with `grounds results rm {id}`"
    )]
    Damaged {
        path: PathBuf,
        id: String,
        inner: String,
    },
}

/// Everything a finished job leaves, to be written as one zip.
pub struct ResultContents<'a> {
    pub job: &'a JobRecord,
    pub package: &'a Package,
    pub metrics: &'a Metrics,
    pub logs: &'a Path,
    /// What the job wrote to `/opt/ml/model` and `/opt/ml/output`, taken home safely.
    pub files: Collected,
}

#[derive(Clone)]
pub struct Store {
    pub home: PathBuf,
}

/// An id that belongs to this process until its result is committed (or the reservation dropped). The
/// staging file is locked for as long as this process lives, so that a later run can tell one left by a
/// killed process (and remove it) from one still being written.
pub struct Reservation {
    pub id: String,
    staging: PathBuf,
    target: PathBuf,
    committed: bool,
    _lock: grounds_job::owner::Lock,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.staging);
        }
    }
}

impl Reservation {
    /// Writes the result zip to the staging file and renames it into place. Files of the job that cannot
    /// be read as it is stored are left out and recorded, never failing the result; returns the path and
    /// the record as stored.
    pub fn commit(mut self, contents: ResultContents) -> anyhow::Result<(PathBuf, JobRecord)> {
        let file = File::create(&self.staging)
            .with_context(|| format!("writing {}", self.staging.display()))?;
        let mut zip = DeterministicZip::new(std::io::BufWriter::new(file));
        let mut job = contents.job.clone();
        job.left_out.extend(contents.files.left_out);
        let write = |what: &str| format!("writing {what} into {}", self.staging.display());
        zip.add(
            "package.json",
            &serde_json::to_vec_pretty(&contents.package.info)?,
            false,
        )
        .with_context(|| write("package.json"))?;
        let mut package = contents
            .package
            .open()
            .context("reading the package to store it")?;
        zip.add_reader("package.zip", &mut package, contents.package.size(), false)
            .with_context(|| write("package.zip"))?;
        zip.add(
            "metrics.json",
            &serde_json::to_vec_pretty(contents.metrics)?,
            false,
        )
        .with_context(|| write("metrics.json"))?;
        // The log lies beside the job's root, where an attached job could replace it: never followed.
        match grounds_job::confined::open_own_file(contents.logs) {
            Ok(mut logs) => match zip.add_reader("logs.txt", &mut logs.file, logs.size, false) {
                Ok(_) => {}
                Err(archive::AddError::Read(e)) => job.left_out.push(LeftOut {
                    path: "logs.txt".into(),
                    reason: format!("could not be read: {e}"),
                }),
                Err(e) => return Err(e).with_context(|| write("logs.txt")),
            },
            Err(e) => job.left_out.push(LeftOut {
                path: "logs.txt".into(),
                reason: format!("could not be read: {e}"),
            }),
        }
        for item in contents.files.items {
            let problem = match &item.source {
                Source::Bytes(bytes) => zip
                    .add(&item.name, bytes, false)
                    .err()
                    .map(archive::AddError::Zip),
                Source::Link(target) => zip
                    .add_symlink(&item.name, &target.to_string_lossy())
                    .err()
                    .map(archive::AddError::Zip),
                Source::File { root, relative } => {
                    match grounds_job::confined::open_file(root, relative) {
                        Ok(mut opened) => zip
                            .add_reader(
                                &item.name,
                                &mut opened.file,
                                opened.size,
                                opened.executable,
                            )
                            .err(),
                        Err(e) => Some(archive::AddError::Read(e)),
                    }
                }
            };
            match problem {
                None => {}
                Some(archive::AddError::Read(e)) => job.left_out.push(LeftOut {
                    path: item.name.clone(),
                    reason: format!("could not be read: {e}"),
                }),
                Some(archive::AddError::Zip(e)) => {
                    return Err(e).with_context(|| write(&item.name));
                }
            }
        }
        // Last, so that it records everything that was left out (at most LEFT_OUT_MAX of it by name, so
        // that job.json stays within what is read back).
        if job.left_out.len() > LEFT_OUT_MAX {
            let more = job.left_out.len() - LEFT_OUT_MAX;
            job.left_out.truncate(LEFT_OUT_MAX);
            job.left_out.push(LeftOut {
                path: "…".into(),
                reason: format!("and {more} more left out, not named here"),
            });
        }
        zip.add("job.json", &serde_json::to_vec_pretty(&job)?, false)
            .with_context(|| write("job.json"))?;
        let mut file = zip
            .finish()
            .with_context(|| write("the zip directory"))?
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| write("the zip"))?;
        // An entry taken out again (a file that failed while it was read) may have left bytes beyond the
        // end of the archive; a zip must end with its directory.
        let end = std::io::Seek::stream_position(&mut file).with_context(|| write("the zip"))?;
        file.set_len(end).with_context(|| write("the zip"))?;
        file.sync_all()?;
        std::fs::rename(&self.staging, &self.target)
            .with_context(|| format!("moving the result into {}", self.target.display()))?;
        self.committed = true;
        // The rename itself is made durable: after a crash the result is there or it is not.
        if let Some(dir) = self.target.parent() {
            crate::store::cache::sync_dir(dir)
                .with_context(|| format!("syncing {}", dir.display()))?;
        }
        Ok((self.target.clone(), job))
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
    #[serde(serialize_with = "crate::job::metrics::value::serialize_map")]
    pub metrics: BTreeMap<String, f64>,
    pub hyperparameters: BTreeMap<String, String>,
    pub result: PathBuf,
    /// The size of the result zip.
    pub bytes: u64,
    /// The image it ran in, as grounds tagged it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The pipeline and step it ran as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<crate::job::PipelineStep>,
}

/// A stored result, read back.
pub struct Stored {
    pub path: PathBuf,
    pub job: JobRecord,
    pub metrics: Metrics,
    pub files: Vec<(String, u64)>,
}

/// What a prefix given to `results rm` names.
#[derive(Debug)]
pub struct Removal {
    /// The ids, newest first.
    pub ids: Vec<String>,
    /// When it names a task's results or several by a prefix: what they are, in words (they go only when
    /// the user says all of them).
    pub many: Option<String>,
}

impl Store {
    /// `$GROUNDS_HOME`; else the nearest `.grounds` folder in the working directory or above it, as git
    /// finds its repository (a project's history stays in reach from its subfolders); else
    /// `./.grounds`, made by the first run.
    pub fn from_env() -> Store {
        Store::found(None)
    }

    /// As [`Store::from_env`] for a run of the task in `task_file`: with no `.grounds` here or above,
    /// the nearest one above the task file (its project's) before a new `./.grounds`.
    pub fn for_task(task_file: &Path) -> Store {
        Store::found(Some(task_file))
    }

    fn found(task_file: Option<&Path>) -> Store {
        let nearest = |start: &Path| {
            let start = std::path::absolute(start).ok()?;
            start
                .ancestors()
                .map(|folder| folder.join(".grounds"))
                .find(|candidate| std::fs::symlink_metadata(candidate).is_ok_and(|m| m.is_dir()))
        };
        let home = std::env::var_os(HOME_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| nearest(&std::env::current_dir().ok()?))
            .or_else(|| nearest(task_file?.parent()?))
            .unwrap_or_else(|| PathBuf::from(".grounds"));
        Store {
            home: std::path::absolute(&home).unwrap_or(home),
        }
    }

    /// Where content hashes of local data are remembered (`cache/hashes`).
    pub fn hash_cache(&self) -> crate::job::datahash::HashCache {
        crate::job::datahash::HashCache::under(&self.home)
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
        // What this base makes must be an id the store can name and find again.
        check_id(&format!("{base}-20260101-000000-0000")).map_err(|why| {
            anyhow::anyhow!(
                "a result of `{base}` could not be named: {why}; give the task (or the sweep's \
                 parameters) a shorter name of letters, digits and hyphens"
            )
        })?;
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
                Ok(file) => {
                    let lock = grounds_job::owner::lock(file)
                        .with_context(|| format!("locking {}", staging.display()))?;
                    return Ok(Reservation {
                        id,
                        staging,
                        target,
                        committed: false,
                        _lock: lock,
                    });
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
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&staging)
            .with_context(|| format!("reserving {}", staging.display()))?;
        let lock = grounds_job::owner::lock(file)
            .with_context(|| format!("locking {}", staging.display()))?;
        Ok(Reservation {
            id: id.to_string(),
            staging,
            target,
            committed: false,
            _lock: lock,
        })
    }

    /// The package a result was made from, copied out into a temporary file.
    pub fn package(&self, id: &str) -> anyhow::Result<Package> {
        let path = self.result_path(id);
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut zip = ::zip::ZipArchive::new(BufReader::new(file))
            .with_context(|| format!("{} is not a readable result zip", path.display()))?;
        let mut entry = zip
            .by_name("package.zip")
            .with_context(|| format!("{} has no package.zip", path.display()))?;
        let mut temp = crate::job::package::temp_file()
            .context("creating a temporary file for the package")?;
        // Whatever the entry's header claims, no more than an archive may unpack to is read.
        let max = archive::Limits::default().max_bytes;
        let copied = std::io::copy(&mut (&mut entry).take(max.saturating_add(1)), &mut temp)
            .with_context(|| format!("reading package.zip from {}", path.display()))?;
        if copied > max {
            bail!(
                "{}: package.zip is larger than the bound of {max} bytes: this zip is not a result \
                 grounds wrote",
                path.display()
            );
        }
        Package::from_temp(temp.into_temp_path())
            .with_context(|| format!("{}: package.zip is not a grounds package", path.display()))
    }

    /// Ids of all stored results, sorted: the names of the zips in the store that are result ids.
    pub fn ids(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.files()?.0)
    }

    /// The result ids in the store, and the names of zips there that are not named as results.
    fn files(&self) -> anyhow::Result<(Vec<String>, Vec<String>)> {
        let dir = self.results_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        let mut ids = Vec::new();
        let mut strays = Vec::new();
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if let Some(id) = name.strip_suffix(".zip") {
                if check_id(id).is_ok() && entry.file_type().is_ok_and(|t| t.is_file()) {
                    ids.push(id.to_string());
                } else {
                    strays.push(name);
                }
            }
        }
        ids.sort();
        strays.sort();
        Ok((ids, strays))
    }

    /// The one id that `prefix` names: an exact id, or the only id that starts with it; naming none, the
    /// error lists the newest results (by the time in their ids), naming several, those it matches.
    pub fn resolve(&self, prefix: &str) -> anyhow::Result<String> {
        let ids = self.ids()?;
        if ids.iter().any(|id| id == prefix) {
            return Ok(prefix.to_string());
        }
        // A task's name (or a sweep member's `task-name`) stands for its newest result, as a branch
        // stands for its newest commit.
        if let Some(newest) = named(&ids, prefix).first() {
            return Ok((*newest).clone());
        }
        let matches: Vec<&String> = ids.iter().filter(|id| id.starts_with(prefix)).collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] if ids.is_empty() => bail!(
                "no result matches `{prefix}`: the store {} is empty",
                self.results_dir().display()
            ),
            [] => {
                let mut by_time: Vec<&String> = ids.iter().collect();
                by_time.sort_by(|a, b| created_part(b).cmp(created_part(a)).then(b.cmp(a)));
                let recent: Vec<&str> = by_time.into_iter().take(5).map(String::as_str).collect();
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

    /// The ids `prefix` names for removal: the id itself or the one it is a unique prefix of; or, for a
    /// task's name or an ambiguous prefix, every result it names (newest first) with what they are, to be
    /// removed only when the user says all of them (`--all`, or yes when asked).
    pub fn removal(&self, prefix: &str) -> anyhow::Result<Removal> {
        let ids = self.ids()?;
        if ids.iter().any(|id| id == prefix) {
            return Ok(Removal {
                ids: vec![prefix.to_string()],
                many: None,
            });
        }
        let of_task: Vec<String> = named(&ids, prefix).into_iter().cloned().collect();
        if !of_task.is_empty() {
            // A task's name: its results, not those of a task whose name merely starts the same; one
            // result is simply that one.
            let many = (of_task.len() > 1).then(|| format!("the results of task `{prefix}`"));
            return Ok(Removal { ids: of_task, many });
        }
        let mut matches: Vec<String> = ids
            .iter()
            .filter(|id| id.starts_with(prefix))
            .cloned()
            .collect();
        matches.sort_by(|a, b| created_part(b).cmp(created_part(a)).then(b.cmp(a)));
        match matches.len() {
            0 => self.resolve(prefix).map(|id| Removal {
                ids: vec![id],
                many: None,
            }),
            1 => Ok(Removal {
                ids: matches,
                many: None,
            }),
            _ => Ok(Removal {
                ids: matches,
                many: Some(format!("the results whose ids start with `{prefix}`")),
            }),
        }
    }

    /// The ids `prefixes` name, each once, in the order given; the first that names none (or several)
    /// is the error, before anything is done with the others.
    pub fn resolve_all(&self, prefixes: &[String]) -> anyhow::Result<Vec<String>> {
        let mut ids: Vec<String> = Vec::new();
        for prefix in prefixes {
            let id = self.resolve(prefix)?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// The result stored as `<id>.zip`. Its `job.json` must name the same id: a zip that names another
    /// is damaged ([`StoreError::Damaged`]) and nothing is done with it.
    pub fn read(&self, id: &str) -> anyhow::Result<Stored> {
        check_id(id).map_err(StoreError::InvalidId)?;
        let path = self.result_path(id);
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut zip = ::zip::ZipArchive::new(BufReader::new(file))
            .with_context(|| format!("{} is not a readable result zip", path.display()))?;
        let job = archive::read_entry(&mut zip, "job.json", JOB_JSON_MAX)
            .with_context(|| format!("{}: job.json cannot be read", path.display()))?
            .with_context(|| format!("{} has no job.json", path.display()))?;
        let job: JobRecord = serde_json::from_slice(&job)
            .with_context(|| format!("{}: job.json is not valid", path.display()))?;
        if job.id != id {
            return Err(StoreError::Damaged {
                path,
                id: id.to_string(),
                inner: job.id,
            }
            .into());
        }
        let metrics = match archive::read_entry(&mut zip, "metrics.json", METRICS_JSON_MAX)
            .with_context(|| format!("{}: metrics.json cannot be read", path.display()))?
        {
            Some(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{}: metrics.json is not valid", path.display()))?,
            None => Metrics::default(),
        };
        if zip.len() > archive::Limits::default().max_entries {
            bail!(
                "{} has {} entries, more than a result may hold ({})",
                path.display(),
                zip.len(),
                archive::Limits::default().max_entries
            );
        }
        let mut files = Vec::new();
        for index in 0..zip.len() {
            let entry = zip
                .by_index_raw(index)
                .with_context(|| format!("{}: entry {index} cannot be read", path.display()))?;
            if !entry.is_dir() {
                // Named as every check names it: `model/./x` is `model/x`.
                let name = archive::canonical_name(entry.name()).map_err(|reason| {
                    anyhow::anyhow!("{}: entry `{}` {reason}", path.display(), entry.name())
                })?;
                files.push((name, entry.size()));
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
                && job.mode() == mode
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

    /// The `results list` row of one result.
    pub fn summary(&self, id: &str) -> anyhow::Result<Summary> {
        let stored = self.read(id)?;
        Ok(Summary {
            id: id.to_string(),
            task: stored.job.task.name.clone(),
            mode: stored.job.mode(),
            status: stored.job.status,
            created: stored.job.started_at,
            duration_seconds: stored.job.duration_seconds,
            metrics: stored.metrics.finals(),
            hyperparameters: stored.job.hyperparameters.clone(),
            bytes: std::fs::metadata(&stored.path)
                .map(|m| m.len())
                .unwrap_or(0),
            result: stored.path,
            image: stored.job.image.clone(),
            pipeline: stored.job.pipeline.clone(),
        })
    }

    /// Summaries of every readable result, oldest first; unreadable and damaged zips, and zips not named
    /// as results, are reported, not fatal (and never acted on).
    pub fn list(&self) -> anyhow::Result<(Vec<Summary>, Vec<String>)> {
        let mut rows = Vec::new();
        let (ids, strays) = self.files()?;
        let mut problems: Vec<String> = strays
            .into_iter()
            .map(|name| {
                format!(
                    "{name}: not named as a result (`<id>.zip`, an id of letters, digits and hyphens); \
                     grounds leaves it alone"
                )
            })
            .collect();
        for id in ids {
            match self.summary(&id) {
                Ok(row) => rows.push(row),
                Err(e) => problems.push(format!("{id}: {e:#}")),
            }
        }
        rows.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok((rows, problems))
    }
}

/// The `YYYYMMDD-HHMMSS` of a result id (`<task>-<date>-<time>-<suffix>`), which orders ids by when
/// they were made whatever their task; an id of another shape gives "" (oldest).
/// The ids whose name (what comes before the time they were made: a task's name, or a sweep member's
/// `task-name`) is `name`, newest first.
fn named<'a>(ids: &'a [String], name: &str) -> Vec<&'a String> {
    let mut found: Vec<&String> = ids.iter().filter(|id| name_of(id) == Some(name)).collect();
    found.sort_by(|a, b| created_part(b).cmp(created_part(a)).then(b.cmp(a)));
    found
}

/// `titanic` of `titanic-20261122-143012-a1b2`: an id without its time and random part (a sweep
/// member's `task-name`); none for a name grounds did not make.
pub fn name_of(id: &str) -> Option<&str> {
    if created_part(id).is_empty() {
        return None;
    }
    let end = id.rfind('-')?;
    id.get(..end.checked_sub(16)?)
}

fn created_part(id: &str) -> &str {
    let part = id
        .rfind('-')
        .and_then(|end| id.get(end.checked_sub(15)?..end))
        .unwrap_or("");
    let digits = |bytes: &[u8]| bytes.iter().all(u8::is_ascii_digit);
    match part.as_bytes() {
        [date @ .., b'-', h, m, s, h2, m2, s2]
            if date.len() == 8 && digits(date) && digits(&[*h, *m, *s, *h2, *m2, *s2]) =>
        {
            part
        }
        _ => "",
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
        assert!(a.id.starts_with("t-") && a.id.len() == 1 + crate::config::task::JOB_SUFFIX_LEN);
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
