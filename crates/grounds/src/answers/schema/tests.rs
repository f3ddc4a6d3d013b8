//! Snapshots of every `--json` answer: a sample of each type, printed as grounds prints it, against the
//! file of the same name in `answers/snapshots/`. A change to an answer's shape fails here; when it is
//! meant, `GROUNDS_UPDATE_SNAPSHOTS=1 cargo test -p grounds schema` rewrites the files, and the diff of
//! the snapshots is what a reviewer (and the README's JSON table) checks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::job::metrics::{Sample, Series};
use crate::job::{PipelineStep, Placement, SageMakerJob};

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/answers/snapshots")
}

/// Compares `answer`, printed as `--json` prints it, with `snapshots/<name>.json`.
fn check(name: &str, answer: &impl Serialize) {
    let printed = format!(
        "{}\n",
        serde_json::to_string_pretty(answer).expect("every answer serializes")
    );
    let path = snapshot_dir().join(format!("{name}.json"));
    if std::env::var_os("GROUNDS_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(snapshot_dir()).expect("the snapshot folder can be made");
        std::fs::write(&path, &printed).expect("the snapshot can be written");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with GROUNDS_UPDATE_SNAPSHOTS=1 to write it",
            path.display()
        )
    });
    assert!(
        printed == expected,
        "the --json answer `{name}` changed shape; if that is meant, run with \
         GROUNDS_UPDATE_SNAPSHOTS=1 and update the README's JSON table.\n--- {}\n{expected}\n--- now\n{printed}",
        path.display()
    );
}

fn at(second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, second)
        .single()
        .expect("a valid time")
}

fn sagemaker_job() -> SageMakerJob {
    SageMakerJob {
        job_name: "grounds-titanic-20261204-120000-ab12".into(),
        region: "eu-west-1".into(),
        profile: None,
        bucket: "grounds-123456789012-eu-west-1".into(),
        output_path: "s3://grounds-123456789012-eu-west-1/grounds/output".into(),
        image_uri: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/grounds/titanic:0123abcd".into(),
    }
}

fn record() -> JobRecord {
    // The text is parsed as if beside the fixture `failing`, whose `src` folder the check finds.
    let task = crate::config::task::Task::parse(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/failing/task.toml"),
        "[task]\nname = \"titanic\"\n[task.command]\nsource = \"src\"\nrun = [\"python3\", \"train.py\"]\n\
         [channels]\ntraining = \"s3://data-bucket/titanic/\"\n[hyperparameters]\nlr = 0.1\n[metrics]\nloss = 'loss=([0-9.]+)'\n",
    )
    .expect("the sample task parses");
    JobRecord {
        id: "titanic-20261204-120000-ab12".into(),
        placement: Placement::Local,
        status: Status::Completed,
        hyperparameters: task.spec.hyperparameters.clone(),
        task: task.spec,
        task_file: "/work/titanic/task.toml".into(),
        channels: BTreeMap::from([("training".into(), "/work/titanic/data".into())]),
        inputs: Vec::new(),
        pipeline: Some(PipelineStep {
            name: "nightly".into(),
            step: "train".into(),
        }),
        hosts: vec!["algo-1".into()],
        image: Some("grounds/titanic:0123abcd".into()),
        started_at: at(0),
        ended_at: Some(at(9)),
        duration_seconds: Some(9.0),
        exit_code: Some(0),
        failure_reason: None,
        fingerprint: "sha256:feed".into(),
        package: grounds_job::manifest::PackageInfo {
            name: "titanic".into(),
            version: "0.0.0".into(),
            content_hash: "sha256:beef".into(),
            files: 2,
        },
        grounds_version: "0.1.0".into(),
        left_out: vec![LeftOut {
            path: "model/latest".into(),
            reason: "a link that leaves the job's folder".into(),
        }],
        malformed_metric_lines: Vec::new(),
    }
}

fn final_metrics() -> BTreeMap<String, f64> {
    BTreeMap::from([
        ("accuracy".into(), 0.81),
        ("loss".into(), f64::NAN),
        ("gain".into(), f64::INFINITY),
    ])
}

fn run_answer(facts: ModeFacts) -> RunAnswer {
    RunAnswer {
        head: JobHead {
            id: "titanic-20261204-120000-ab12".into(),
            status: Status::Completed,
            mode: Mode::Local,
            metrics: final_metrics(),
            result: "/home/u/.grounds/results/titanic-20261204-120000-ab12.zip".into(),
            reused: false,
        },
        exit_code: Some(0),
        failure_reason: None,
        duration_seconds: Some(9.0),
        fingerprint: "sha256:feed".into(),
        left_out: Vec::new(),
        malformed_metric_lines: Vec::new(),
        facts,
    }
}

fn local_facts() -> ModeFacts {
    ModeFacts {
        image: Some(Some("grounds/titanic:0123abcd".into())),
        ..ModeFacts::default()
    }
}

fn remote_facts() -> ModeFacts {
    ModeFacts {
        remote: Some(sagemaker_job()),
        submitted: Some(Some(Submitted {
            image: sagemaker_job().image_uri,
            pushed: true,
            package: Some(crate::executors::PackageUpload {
                uri: "s3://sagemaker-eu-west-1-123456789012/sagemaker/packages/9f2c/".into(),
                uploaded: true,
                bytes: 2210,
            }),
            uploads: crate::cloud::s3sync::SyncReport {
                uploaded: 1,
                unchanged: 2,
                deleted: 0,
                bytes_uploaded: 61194,
                added: vec!["not/printed".into()],
            },
        })),
        ..ModeFacts::default()
    }
}

fn detached() -> DetachedAnswer {
    DetachedAnswer {
        head: JobHead {
            id: "titanic-20261204-120000-ab12".into(),
            status: Status::InProgress,
            mode: Mode::Remote,
            metrics: BTreeMap::new(),
            result: "/home/u/.grounds/results/titanic-20261204-120000-ab12.zip".into(),
            reused: false,
        },
        facts: ModeFacts {
            remote: Some(sagemaker_job()),
            ..ModeFacts::default()
        },
    }
}

fn plan() -> PlanAnswer {
    let record = record();
    PlanAnswer {
        common: CommonPlan {
            mode: Mode::Local,
            task_file: record.task_file.clone().into(),
            hyperparameters: record.hyperparameters.clone(),
            task: record.task.clone(),
            channels: record.channels.clone(),
            package: record.package.clone(),
            fingerprint: record.fingerprint.clone(),
            result_store: "/home/u/.grounds/results".into(),
            grace_seconds: 30,
        },
        reuses: None,
        mode: ModePlan {
            image: Some(crate::docker::image::ImagePlan {
                tag: "grounds/titanic:0123abcd".into(),
                base_image: "python:3.11-slim".into(),
                dockerfile: "FROM python:3.11-slim\n".into(),
                entry_binary: "/usr/local/lib/grounds/grounds-entry".into(),
                entry_hash: "not printed".into(),
                requirements: None,
                given: false,
            }),
            ..ModePlan::default()
        },
    }
}

#[test]
fn a_run_answers_with_its_outcome_and_where_it_ran() {
    check(
        "run_local",
        &JobAnswer::Run(Box::new(run_answer(local_facts()))),
    );
    check(
        "run_remote",
        &JobAnswer::Run(Box::new(run_answer(remote_facts()))),
    );
    let mut reused = run_answer(ModeFacts::default());
    reused.head.reused = true;
    check("run_reused", &JobAnswer::Run(Box::new(reused)));
    check("detached", &JobAnswer::Detached(Box::new(detached())));
    check("plan_local", &JobAnswer::Plan(Box::new(plan())));
}

#[test]
fn a_sweep_and_a_pipeline_answer_with_one_row_per_member_or_step() {
    let rows = vec![
        SweepRow {
            name: "titanic-lr-0.1".into(),
            hyperparameters: Some(BTreeMap::from([("lr".into(), "0.1".into())])),
            outcome: MemberOutcome::Answer(JobAnswer::Run(Box::new(run_answer(local_facts())))),
        },
        SweepRow {
            name: "titanic-lr-x".into(),
            hyperparameters: Some(BTreeMap::from([("lr".into(), "x".into())])),
            outcome: MemberOutcome::Error {
                status: "Error",
                error: "hyperparameter lr: `x` is not a number".into(),
            },
        },
        SweepRow {
            name: "titanic-lr-0.2".into(),
            hyperparameters: None,
            outcome: MemberOutcome::Answer(JobAnswer::Plan(Box::new(plan()))),
        },
    ];
    check("sweep", &rows);
    let steps = vec![
        StepRow::Ran {
            step: "train".into(),
            answer: JobAnswer::Run(Box::new(run_answer(local_facts()))),
        },
        StepRow::Error {
            step: "evaluate".into(),
            status: "Error",
            error: "channel model: no such step `trian`".into(),
        },
        StepRow::Skipped {
            step: "report".into(),
            status: "Skipped",
            reason: "step evaluate did not complete".into(),
        },
        StepRow::Planned {
            step: "publish".into(),
            would: "run",
            reuses: None,
            after: Some("report".into()),
            fingerprint: None,
        },
    ];
    check("pipeline", &steps);
}

#[test]
fn the_results_commands_answer_with_their_own_shapes() {
    let record = record();
    check(
        "list",
        &vec![ListRow {
            id: record.id.clone(),
            task: "titanic".into(),
            mode: Mode::Local,
            status: Status::Completed,
            created: at(0),
            duration_seconds: Some(9.0),
            metrics: final_metrics(),
            hyperparameters: record.hyperparameters.clone(),
            result: "/home/u/.grounds/results/titanic-20261204-120000-ab12.zip".into(),
            bytes: 2048,
            image: record.image.clone(),
            pipeline: record.pipeline.clone(),
        }],
    );
    let mut remote = record.clone();
    remote.placement = Placement::SageMaker(sagemaker_job());
    remote.status = Status::Failed;
    remote.exit_code = None;
    remote.failure_reason = Some("AlgorithmError: division by zero".into());
    check(
        "show",
        &ShowAnswer {
            result: "/home/u/.grounds/results/titanic-20261204-120000-ab12.zip".into(),
            job: remote,
            metrics: crate::job::metrics::Metrics(BTreeMap::from([(
                "loss".to_string(),
                Series {
                    last: f64::NAN,
                    series: vec![
                        Sample {
                            timestamp: at(1),
                            value: 0.5,
                        },
                        Sample {
                            timestamp: at(2),
                            value: f64::NAN,
                        },
                    ],
                    thinned: None,
                },
            )])),
            files: vec![FileRow {
                name: "model/model.joblib".into(),
                size: 812,
            }],
        },
    );
    check(
        "open",
        &OpenAnswer {
            id: record.id.clone(),
            folder: "/home/u/.grounds/results/open/titanic-20261204-120000-ab12".into(),
            metrics: final_metrics(),
            status: Status::Completed,
            restored: 1,
            kept: vec!["output/data/notes.txt".into()],
        },
    );
    check(
        "compare",
        &CompareAnswer {
            results: vec!["a".into(), "b".into()],
            columns: vec![
                CompareColumn {
                    id: "a".into(),
                    label: "LR0p1".into(),
                    mode: Mode::Attached,
                },
                CompareColumn {
                    id: "b".into(),
                    label: "LR0p2".into(),
                    mode: Mode::Local,
                },
            ],
            hyperparameters: BTreeMap::from([(
                "lr".into(),
                BTreeMap::from([("a".into(), "0.1".into()), ("b".into(), "0.2".into())]),
            )]),
            metrics: BTreeMap::from([(
                "loss".into(),
                BTreeMap::from([
                    ("a".into(), MetricValue(0.25)),
                    ("b".into(), MetricValue(f64::NEG_INFINITY)),
                ]),
            )]),
            differing: vec!["lr".into(), "loss".into()],
        },
    );
    check(
        "export",
        &ExportAnswer {
            path: "runs.parquet".into(),
            format: crate::store::results::export::ExportFormat::Parquet,
            results: 3,
            columns: 12,
        },
    );
    check(
        "plot",
        &PlotAnswer {
            path: "loss.svg".into(),
            metrics: vec!["loss".into()],
            series: 2,
            results: vec!["a".into(), "b".into()],
        },
    );
    check(
        "fetched",
        &FetchedAnswer {
            id: record.id.clone(),
            status: Status::Completed,
            mode: Mode::Remote,
            result: "/home/u/.grounds/results/titanic-20261204-120000-ab12.zip".into(),
        },
    );
    check(
        "still_running",
        &StillRunningAnswer {
            id: record.id.clone(),
            status: Status::InProgress,
            secondary_status: "Training".into(),
        },
    );
    check(
        "removed",
        &RemovedAnswer {
            dry_run: false,
            removed: vec![record.id.clone()],
            bytes: 2048,
            spared: vec![crate::store::results::upkeep::Spared {
                id: "titanic-20261204-110000-cd34".into(),
                reason: crate::store::results::upkeep::IN_PROGRESS_SPARED.into(),
            }],
            failed: Vec::new(),
            kept_open: vec![crate::store::results::upkeep::KeptOpen {
                id: record.id.clone(),
                folder: "/home/u/.grounds/results/open/titanic-20261204-120000-ab12".into(),
                files: vec!["output/data/notes.txt".into()],
            }],
            images: Some(ImagesAnswer {
                removed: vec![crate::store::results::upkeep::Image {
                    id: "sha256:0123".into(),
                    tags: vec!["grounds/titanic:0123abcd".into()],
                    bytes: 186_000_000,
                }],
                bytes: 186_000_000,
                failed: Vec::new(),
            }),
        },
    );
}

#[test]
fn the_other_commands_and_errors_answer_with_their_own_shapes() {
    check(
        "stop",
        &StopAnswer {
            id: "titanic-20261204-120000-ab12".into(),
            stopping: true,
        },
    );
    check(
        "init",
        &InitAnswer {
            task_file: "task.toml".into(),
        },
    );
    check(
        "error",
        &ErrorAnswer {
            error: "task.toml: [hyperparameters] lr: expected a number".into(),
        },
    );
    let listed = crate::store::cache::Listed {
        name: "titanic-20261204-120000-ab12".into(),
        folder: "/home/u/.grounds/cache/results/titanic-20261204-120000-ab12".into(),
        bytes: 4096,
        whole: true,
    };
    check(
        "cache_list",
        &CacheAnswer {
            docker_host: Some("unix:///var/run/docker.sock".into()),
            data: Some(vec![crate::docker::volumes::CachedData {
                hash: "0123abcd".into(),
                volume: "grounds-data-0123abcd".into(),
                channel: "training".into(),
                files: 1,
                bytes: 61194,
                created: Some("2026-12-04T12:00:00Z".into()),
            }]),
            local: Some(LocalCache::Listed {
                results: vec![listed.clone()],
                s3: Vec::new(),
                s3_objects: FilesAndBytes {
                    removed: None,
                    files: 3,
                    bytes: 1024,
                },
                hashes: FilesAndBytes {
                    removed: None,
                    files: 5,
                    bytes: 512,
                },
            }),
            ..CacheAnswer::default()
        },
    );
    check(
        "cache_clear",
        &CacheAnswer {
            removed: Some(Vec::new()),
            freed_bytes: Some(4096),
            not_removed: Some(vec!["grounds-data-4567: in use by a container".into()]),
            local: Some(LocalCache::Cleared {
                results: crate::store::cache::Cleared {
                    removed: vec![listed],
                    in_use: Vec::new(),
                    failed: Vec::new(),
                },
                s3: crate::store::cache::Cleared::default(),
                s3_objects: None,
                hashes: Some(FilesAndBytes {
                    removed: Some(true),
                    files: 5,
                    bytes: 512,
                }),
                freed_bytes: 4608,
            }),
            ..CacheAnswer::default()
        },
    );
}
