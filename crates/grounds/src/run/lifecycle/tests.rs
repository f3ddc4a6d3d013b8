//! The pipeline through a fake executor: a test-only mode that runs nothing, so that packaging,
//! fingerprints, reuse, dry runs, reservations, records, results and sweeps are exercised apart from
//! Docker and AWS. The fake writes what a job would (log lines with metrics, model and output files) and
//! counts what the pipeline asks of it.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::{json, Value};

use super::*;
use crate::executors::{Launched, Outcome};
use crate::job::collect::Collected;
use crate::job::fingerprint::RunShape;
use crate::job::log::JobLog;
use crate::job::metrics::Definitions;
use crate::job::{Mode, Placement, SageMakerJob};
use crate::printer::Silent;

/// How the fake job ends.
#[derive(Clone, Copy)]
enum Ending {
    /// Exits 0 after printing its metrics.
    Completes,
    /// Exits 3 after printing one line.
    Fails,
    /// Goes on elsewhere (a placement that outlives grounds).
    Detaches,
}

struct FakeExecutor {
    ending: Ending,
    launch_all_first: bool,
    /// What the pipeline called, in order, with the job's id where it has one.
    calls: Mutex<Vec<String>>,
    launches: AtomicUsize,
}

impl FakeExecutor {
    fn new(ending: Ending) -> Self {
        FakeExecutor {
            ending,
            launch_all_first: false,
            calls: Mutex::new(Vec::new()),
            launches: AtomicUsize::new(0),
        }
    }

    fn called(&self, what: String) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(what);
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// The fake's handle: the id it launched and the root it laid out.
struct FakeHandle {
    id: String,
    root: std::path::PathBuf,
}

impl Executor for FakeExecutor {
    type Prepared = String;
    type Ready = u32;
    type Handle = FakeHandle;

    fn mode(&self) -> Mode {
        match self.ending {
            Ending::Detaches => Mode::Remote,
            Ending::Completes | Ending::Fails => Mode::Local,
        }
    }

    fn launch_all_first(&self) -> bool {
        self.launch_all_first
    }

    async fn prepare(&self, settings: &TrainSettings, package: &Package) -> anyhow::Result<String> {
        self.called(format!("prepare {}", settings.task.spec.name));
        Ok(format!("fake-image:{}", &package.info.content_hash[7..19]))
    }

    fn shape(&self, _: &TrainSettings, prepared: &String) -> RunShape {
        RunShape {
            instance_count: 1,
            image: Some(prepared.clone()),
            gpus: None,
            entry: None,
        }
    }

    async fn dry_run(&self, job: &Job<'_, String>, _: &dyn Reporter) -> anyhow::Result<ModePlan> {
        self.called(format!("dry_run {}", job.prepared));
        Ok(ModePlan::default())
    }

    async fn ready(&self, _: &Job<'_, String>, _: &dyn Reporter) -> anyhow::Result<u32> {
        self.called("ready".into());
        Ok(7)
    }

    async fn launch(
        &self,
        job: &Job<'_, String>,
        ready: u32,
        id: &str,
        work: &Path,
        _: &dyn Reporter,
    ) -> anyhow::Result<Launched<FakeHandle>> {
        assert_eq!(ready, 7, "launch gets what ready made");
        self.called(format!("launch {id}"));
        self.launches.fetch_add(1, Ordering::SeqCst);
        let root = work.join("ml");
        std::fs::create_dir_all(root.join("model"))?;
        std::fs::create_dir_all(root.join("output/data"))?;
        let placement = match self.ending {
            Ending::Detaches => Placement::SageMaker(SageMakerJob {
                job_name: id.to_string(),
                region: "us-east-1".into(),
                profile: None,
                bucket: "fake-bucket".into(),
                output_path: "s3://fake-bucket/out/".into(),
                image_uri: job.prepared.clone(),
            }),
            Ending::Completes | Ending::Fails => Placement::Local,
        };
        Ok(Launched {
            handle: FakeHandle {
                id: id.to_string(),
                root,
            },
            placement,
            hosts: vec!["algo-1".into()],
            image: None,
        })
    }

    async fn wait(
        &self,
        job: &Job<'_, String>,
        handle: FakeHandle,
        record: &JobRecord,
        work: &Path,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<Ended> {
        assert_eq!(
            record.id, handle.id,
            "wait gets the record of the launched job"
        );
        self.called(format!("wait {}", handle.id));
        if let Ending::Detaches = self.ending {
            return Ok(Ended::detached(fake_facts()));
        }
        let started_at = chrono::Utc::now();
        let mut log = JobLog::create(
            &work.join("logs.txt"),
            Definitions::new(&job.settings.task.spec.metrics),
            reporter,
        )?;
        let lr = &job.settings.task.spec.hyperparameters["lr"];
        log.line(None, &format!("training with lr={lr}"));
        let (status, exit_code, failure_reason) = match self.ending {
            Ending::Completes => {
                log.line(None, "###METRIC###loss:0.25###");
                log.line(None, &format!("###METRIC###lr_seen:{lr}###"));
                std::fs::write(handle.root.join("model/model.txt"), format!("lr={lr}"))?;
                std::fs::write(handle.root.join("output/data/preds.csv"), "a,b\n1,2\n")?;
                (Status::Completed, Some(0), None)
            }
            Ending::Fails | Ending::Detaches => {
                std::fs::write(handle.root.join("output/failure"), "division by zero")?;
                (
                    Status::Failed,
                    Some(3),
                    Some("division by zero".to_string()),
                )
            }
        };
        let logged = log.finish()?;
        let files = Collected::from_root(&handle.root, Path::new("/opt/ml"));
        Ok(Ended::finished(
            Outcome {
                status,
                exit_code,
                failure_reason,
                started_at,
                ended_at: chrono::Utc::now(),
                metrics: logged.metrics,
                malformed_metric_lines: logged.malformed,
                hosts: vec!["algo-1".into()],
                files,
                logs: work.join("logs.txt"),
            },
            fake_facts(),
        ))
    }
}

/// The facts the fake adds to an answer, so that a test sees them handed through.
fn fake_facts() -> ModeFacts {
    ModeFacts {
        image: Some(Some("fake-facts".to_string())),
        ..ModeFacts::default()
    }
}

/// A command task with its source folder, and a store, in one temporary folder.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/train.py"), "print('hi')\n").unwrap();
        std::fs::write(
            dir.path().join("task.toml"),
            "[task]\nname = \"fake\"\n\n[task.command]\nsource = \"src\"\nrun = [\"python3\", \"train.py\"]\n\n\
             [hyperparameters]\nlr = 0.1\n",
        )
        .unwrap();
        Fixture { dir }
    }

    fn settings(&self, mode: Mode, dry_run: bool, force: bool) -> TrainSettings {
        let options = crate::settings::RunOptions {
            dry_run,
            force,
            grace: std::time::Duration::from_secs(10),
            aws: Default::default(),
        };
        let mut settings =
            TrainSettings::resolve(&self.dir.path().join("task.toml"), &[], &options, mode)
                .unwrap();
        settings.store = Store {
            home: self.dir.path().join("home"),
        };
        settings
    }

    fn stored(&self) -> Vec<String> {
        Store {
            home: self.dir.path().join("home"),
        }
        .ids()
        .unwrap()
    }
}

fn block_on<F: std::future::Future>(work: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(work)
}

#[test]
fn a_job_goes_through_every_step_and_its_result_is_stored_whole() {
    let fixture = Fixture::new();
    let executor = FakeExecutor::new(Ending::Completes);
    let settings = fixture.settings(Mode::Local, false, false);
    let ran = block_on(run(&executor, &settings, "fake", &Silent)).unwrap();
    let Ran::Done {
        record,
        finals,
        path,
        facts,
    } = ran
    else {
        panic!("a completed job is Done");
    };
    let id = record.id.clone();
    assert!(id.starts_with("fake-"), "{id}");
    assert_eq!(
        executor.calls(),
        vec![
            "prepare fake".to_string(),
            "ready".to_string(),
            format!("launch {id}"),
            format!("wait {id}"),
        ]
    );
    assert_eq!(record.status, Status::Completed);
    assert_eq!(record.placement, Placement::Local);
    assert_eq!(record.exit_code, Some(0));
    assert_eq!(record.hosts, vec!["algo-1".to_string()]);
    assert!(record.ended_at.is_some() && record.duration_seconds.is_some());
    assert_eq!(finals.get("loss"), Some(&0.25));
    assert_eq!(finals.get("lr_seen"), Some(&0.1));
    assert_eq!(facts.image, Some(Some("fake-facts".to_string())));

    // What the store holds is what the pipeline answered.
    let stored = settings.store.read(&id).unwrap();
    assert_eq!(stored.path, path);
    assert_eq!(stored.job.status, Status::Completed);
    assert_eq!(stored.job.fingerprint, record.fingerprint);
    assert_eq!(stored.metrics.finals(), finals);
    let names: Vec<&str> = stored.files.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "job.json",
        "metrics.json",
        "logs.txt",
        "model/model.txt",
        "output/data/preds.csv",
    ] {
        assert!(names.contains(&expected), "{expected} not in {names:?}");
    }
    assert_eq!(fixture.stored(), vec![id]);
}

#[test]
fn a_completed_twin_is_reused_and_force_runs_again() {
    let fixture = Fixture::new();
    let executor = FakeExecutor::new(Ending::Completes);
    let first = block_on(run(
        &executor,
        &fixture.settings(Mode::Local, false, false),
        "fake",
        &Silent,
    ))
    .unwrap();
    let Ran::Done { record: first, .. } = first else {
        panic!("the first run is Done");
    };
    let again = block_on(run(
        &executor,
        &fixture.settings(Mode::Local, false, false),
        "fake",
        &Silent,
    ))
    .unwrap();
    let Ran::Reused(twin) = again else {
        panic!("the same job again reuses the first");
    };
    assert_eq!(twin.job.id, first.id);
    assert_eq!(executor.launches.load(Ordering::SeqCst), 1);

    let forced = block_on(run(
        &executor,
        &fixture.settings(Mode::Local, false, true),
        "fake",
        &Silent,
    ))
    .unwrap();
    assert!(matches!(forced, Ran::Done { .. }));
    assert_eq!(executor.launches.load(Ordering::SeqCst), 2);
    assert_eq!(fixture.stored().len(), 2);
}

#[test]
fn a_dry_run_plans_with_the_modes_part_and_runs_and_stores_nothing() {
    let fixture = Fixture::new();
    let executor = FakeExecutor::new(Ending::Completes);
    let ran = block_on(run(
        &executor,
        &fixture.settings(Mode::Local, true, false),
        "fake",
        &Silent,
    ))
    .unwrap();
    let Ran::Plan(plan) = ran else {
        panic!("a dry run answers with its plan");
    };
    let plan = serde_json::to_value(&plan).unwrap();
    assert_eq!(plan["mode"], "local");
    assert_eq!(plan["hyperparameters"]["lr"], "0.1");
    assert_eq!(plan["reuses"], Value::Null);
    assert!(plan["fingerprint"]
        .as_str()
        .is_some_and(|f| f.starts_with("sha256:")));
    let calls = executor.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0], "prepare fake");
    assert!(
        calls[1].starts_with("dry_run fake-image:"),
        "the mode plans with what it prepared: {calls:?}"
    );
    assert!(fixture.stored().is_empty());
}

#[test]
fn a_failed_job_is_kept_with_its_exit_code_and_reason() {
    let fixture = Fixture::new();
    let executor = FakeExecutor::new(Ending::Fails);
    let settings = fixture.settings(Mode::Local, false, false);
    let ran = block_on(run(&executor, &settings, "fake", &Silent)).unwrap();
    let Ran::Done { record, .. } = ran else {
        panic!("a failed job is Done, and kept");
    };
    assert_eq!(record.status, Status::Failed);
    assert_eq!(record.exit_code, Some(3));
    assert_eq!(record.failure_reason.as_deref(), Some("division by zero"));
    let stored = settings.store.read(&record.id).unwrap();
    assert_eq!(stored.job.status, Status::Failed);
    assert!(stored.files.iter().any(|(n, _)| n == "output/failure"));
    // A failed twin is never reused.
    let again = block_on(run(&executor, &settings, "fake", &Silent)).unwrap();
    assert!(matches!(again, Ran::Done { .. }));
    assert_eq!(executor.launches.load(Ordering::SeqCst), 2);
}

#[test]
fn a_detached_job_is_stored_in_progress_where_it_runs() {
    let fixture = Fixture::new();
    let executor = FakeExecutor::new(Ending::Detaches);
    let settings = fixture.settings(Mode::Remote, false, false);
    let ran = block_on(run(&executor, &settings, "fake", &Silent)).unwrap();
    let Ran::Detached { record, .. } = ran else {
        panic!("a job that goes on elsewhere is Detached");
    };
    assert_eq!(record.status, Status::InProgress);
    assert_eq!(record.hosts, vec!["algo-1".to_string()]);
    let stored = settings.store.read(&record.id).unwrap();
    assert_eq!(stored.job.status, Status::InProgress);
    let job = stored.job.sagemaker().unwrap();
    assert_eq!(job.job_name, record.id);
    assert!(stored.job.placement.outlives_grounds());
}

#[test]
fn a_sweep_runs_every_member_in_either_order_of_launches() {
    for launch_all_first in [false, true] {
        let fixture = Fixture::new();
        let mut executor = FakeExecutor::new(Ending::Completes);
        executor.launch_all_first = launch_all_first;
        let settings = fixture.settings(Mode::Local, false, false);
        let parameters = vec![("lr".to_string(), vec!["0.5".to_string(), "0.7".to_string()])];
        let members = members(&settings, &parameters).unwrap();
        assert_eq!(members.len(), 2);
        let done = Progress::hidden();
        let answers = block_on(run_sweep(&executor, &members, 2, |_| Silent, &done));
        let mut seen = Vec::new();
        for answer in answers {
            let Ok(Ran::Done { record, finals, .. }) = answer else {
                panic!("every member is Done");
            };
            seen.push((record.hyperparameters["lr"].clone(), finals["lr_seen"]));
        }
        assert_eq!(
            seen,
            vec![("0.5".to_string(), 0.5), ("0.7".to_string(), 0.7)],
            "members answer in their order, each with its own hyperparameters"
        );
        let calls = executor.calls();
        let launches: Vec<usize> = calls
            .iter()
            .enumerate()
            .filter(|(_, c)| c.starts_with("launch"))
            .map(|(i, _)| i)
            .collect();
        let first_wait = calls.iter().position(|c| c.starts_with("wait")).unwrap();
        if launch_all_first {
            assert!(launches.iter().all(|&l| l < first_wait), "{calls:?}");
        }
        assert_eq!(fixture.stored().len(), 2);
    }
}

#[test]
fn job_json_keeps_mode_and_remote_beside_each_other() {
    let fixture = Fixture::new();
    let executor = FakeExecutor::new(Ending::Detaches);
    let settings = fixture.settings(Mode::Remote, false, false);
    let Ran::Detached { record, .. } =
        block_on(run(&executor, &settings, "fake", &Silent)).unwrap()
    else {
        panic!("detached");
    };
    let value = serde_json::to_value(&record).unwrap();
    assert_eq!(value["mode"], "remote");
    assert_eq!(value["remote"]["job_name"], json!(record.id));
    assert!(value.get("placement").is_none(), "{value}");
    let back: JobRecord = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(back.placement, record.placement);

    let mut local = value.clone();
    local["mode"] = json!("local");
    local.as_object_mut().unwrap().remove("remote");
    let local: JobRecord = serde_json::from_value(local).unwrap();
    assert_eq!(local.placement, Placement::Local);
    assert!(serde_json::to_value(&local)
        .unwrap()
        .get("remote")
        .is_none());

    let mut damaged = value;
    damaged.as_object_mut().unwrap().remove("remote");
    let error = serde_json::from_value::<JobRecord>(damaged).unwrap_err();
    assert!(error.to_string().contains("without `remote`"), "{error}");
}
