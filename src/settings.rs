//! Settings: raw flags, the task file and the environment, resolved once into what a command needs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::cli::TrainArgs;
use crate::package::PackageInfo;
use crate::results::{Mode, Store};
use crate::task::Task;

pub struct TrainSettings {
    pub task: Task,
    pub mode: Mode,
    pub store: Store,
    pub dry_run: bool,
    pub grace: Duration,
}

impl TrainSettings {
    pub fn resolve(args: &TrainArgs, mode: Mode) -> anyhow::Result<Self> {
        let task = Task::load(&args.task)?.with_overrides(&args.hyperparameters)?;
        Ok(TrainSettings {
            task,
            mode,
            store: Store::from_env(),
            dry_run: args.dry_run,
            grace: Duration::from_secs(args.grace),
        })
    }

    pub fn channel_sources(&self) -> BTreeMap<String, String> {
        self.task
            .channels
            .iter()
            .map(|(name, source)| (name.clone(), source.describe()))
            .collect()
    }

    /// The plan `--dry-run` prints.
    pub fn plan(&self, package: &PackageInfo, fingerprint: &str) -> Value {
        json!({
            "mode": self.mode,
            "task_file": self.task.file,
            "task": self.task.spec,
            "hyperparameters": self.task.spec.hyperparameters,
            "channels": self.channel_sources(),
            "package": package,
            "fingerprint": fingerprint,
            "result_store": self.store.results_dir(),
            "grace_seconds": self.grace.as_secs(),
        })
    }
}
