//! `grounds train remote`, `grounds results fetch` and `grounds stop`: jobs on Amazon SageMaker.

use std::path::Path;

use anyhow::{bail, Context};
use bollard::auth::DockerCredentials;
use chrono::Utc;
use serde_json::json;

use super::Exit;
use crate::aws::{call_error, Aws};
use crate::cli::RemoteArgs;
use crate::executors::remote::{self, RemoteJob, RemoteOptions, WaitEnd};
use crate::executors::JobLog;
use crate::fingerprint::fingerprint;
use crate::image;
use crate::metrics::{Definitions, Metrics};
use crate::package::Package;
use crate::printer::{Printer, Reporter};
use crate::collect::Collected;
use crate::results::{JobRecord, Mode, ResultContents, Status, Store};
use crate::settings::TrainSettings;

/// ECR credentials for a push, from GetAuthorizationToken: given to the push only, never stored.
async fn ecr_credentials(
    aws: &Aws,
    repository: &str,
    reporter: &dyn Reporter,
) -> anyhow::Result<DockerCredentials> {
    let ecr = aws.ecr();
    let exists = ecr
        .describe_repositories()
        .repository_names(repository)
        .send()
        .await;
    if let Err(e) = exists {
        if e.as_service_error()
            .is_some_and(|s| s.is_repository_not_found_exception())
        {
            reporter.stage("Creating", &format!("ECR repository {repository}"));
            ecr.create_repository()
                .repository_name(repository)
                .send()
                .await
                .map_err(|e| call_error("ecr:CreateRepository", e))?;
        } else {
            return Err(call_error("ecr:DescribeRepositories", e).into());
        }
    }
    let token = ecr
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| call_error("ecr:GetAuthorizationToken", e))?;
    let data = token
        .authorization_data()
        .first()
        .context("ECR returned no authorization data")?;
    let decoded = aws_smithy_types::base64::decode(data.authorization_token().unwrap_or_default())
        .context("ECR's authorization token is not base64")?;
    let decoded = String::from_utf8(decoded).context("ECR's authorization token is not text")?;
    let (username, password) = decoded
        .split_once(':')
        .context("ECR's authorization token is not user:password")?;
    Ok(DockerCredentials {
        username: Some(username.to_string()),
        password: Some(password.to_string()),
        serveraddress: data.proxy_endpoint().map(str::to_string),
        ..Default::default()
    })
}

pub async fn train(args: RemoteArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let settings = TrainSettings::resolve(&args.train, Some(&args.image), None, Mode::Remote)?;
    crate::settings::warn_about_env_secrets(&settings.task, printer);
    super::train::clean_leftovers(&settings.store, printer);
    let parameters = super::train::sweep_parameters(&settings, &args.train, printer);
    let members = crate::sweep::members(&parameters);
    // SageMaker reads `s3://` channels itself; their ETags still decide whether a run is new.
    let settings = super::train::with_s3_channels(settings, false, printer).await?;
    let dotenv = crate::aws::apply_dotenv(&settings.task.file);
    let aws = Aws::connect(
        args.train.aws.profile.as_deref(),
        args.train.aws.region.as_deref(),
    )
    .await?;

    if let Some(single) = super::train::single_member(&settings, &members)? {
        let base = single.task.spec.name.clone();
        let submission = submit(
            &single,
            &base,
            &aws,
            &dotenv,
            args.train.aws.profile.as_deref(),
            printer,
        )
        .await?;
        if let Submission::Plan(plan) = &submission {
            println!("{}", serde_json::to_string_pretty(plan)?);
            return Ok(Exit::Success);
        }
        let (json, text, status) = settle(submission, &aws, &args, printer).await?;
        printer.json(&json);
        printer.out(&text);
        return Ok(super::train::exit_for(status));
    }

    // A sweep: every member submitted first, then each awaited (unless --detach).
    let prepared = super::train::prepare_members(&settings, &members)?;
    printer.stage(
        "Sweeping",
        &format!(
            "{} members of {} on SageMaker",
            prepared.len(),
            settings.task.spec.name
        ),
    );
    let mut submissions = Vec::new();
    for member in &prepared {
        let reporter = super::train::MemberReporter {
            inner: printer,
            name: &member.name,
        };
        submissions.push(
            submit(
                &member.settings,
                &member.base,
                &aws,
                &dotenv,
                args.train.aws.profile.as_deref(),
                &reporter,
            )
            .await,
        );
    }
    let mut answers = Vec::new();
    for (member, submission) in prepared.iter().zip(submissions) {
        let reporter = super::train::MemberReporter {
            inner: printer,
            name: &member.name,
        };
        let answer = match submission {
            Ok(Submission::Plan(plan)) => Ok((plan, String::new(), Status::Completed)),
            Ok(submission) => settle(submission, &aws, &args, &reporter).await,
            Err(error) => Err(error),
        };
        answers.push(answer);
    }
    super::train::sweep_table(&settings, &args.train, &prepared, answers, printer)
}

/// What submitting one job came to.
enum Submission {
    Plan(serde_json::Value),
    Reused(crate::results::Stored),
    Submitted {
        reservation: crate::results::Reservation,
        record: JobRecord,
        package: Package,
        extra: serde_json::Value,
    },
}

/// Checks, builds, pushes, uploads and creates one training job; nothing is created when a check fails.
async fn submit(
    settings: &TrainSettings,
    base: &str,
    aws: &Aws,
    dotenv: &std::collections::BTreeMap<String, String>,
    profile: Option<&str>,
    printer: &dyn Reporter,
) -> anyhow::Result<Submission> {
    let task = &settings.task;
    let package = crate::package::build(task, printer)?;
    let image_plan = image::plan(task, &package, &settings.container.entry_binary)?;
    // An image task's image is pushed when it is in the local engine; else SageMaker pulls it as named.
    let given_local_id = if image_plan.given {
        match crate::docker::connect().await {
            Ok(docker) => crate::docker::image_id(&docker, &image_plan.tag).await?,
            Err(_) => None,
        }
    } else {
        None
    };
    let pull_as_named = image_plan.given && given_local_id.is_none();
    let fingerprint = fingerprint(
        &package.info,
        &task.spec,
        &task.channels,
        Mode::Remote,
        &settings.shape(Some(
            given_local_id
                .clone()
                .unwrap_or_else(|| image_plan.tag.clone()),
        )),
        &settings.data,
    )?;
    let twin = if settings.force {
        None
    } else {
        settings.store.find_completed(&fingerprint, Mode::Remote)?
    };
    if let (Some(twin), false) = (twin, settings.dry_run) {
        super::train::say_reused(&twin, printer);
        return Ok(Submission::Reused(twin));
    }
    let image_tag = match &given_local_id {
        Some(id) => id.trim_start_matches("sha256:").chars().take(16).collect(),
        None => image_plan
            .tag
            .rsplit_once(':')
            .map(|(_, t)| t.to_string())
            .unwrap_or_default(),
    };
    let options = |id: &str| {
        remote::plan(
            aws,
            &RemoteOptions {
                id,
                task,
                image_tag: &image_tag,
                image_uri: pull_as_named.then_some(image_plan.tag.as_str()),
                instance_count: settings.container.instance_count,
                fingerprint: &fingerprint,
                package_hash: &package.info.content_hash,
                dotenv,
            },
        )
    };
    if settings.dry_run {
        let preview = format!("{base}-{}-0000", Utc::now().format("%Y%m%d-%H%M%S"));
        let plan = options(&preview)?;
        let mut answer = settings.plan(&package.info, &fingerprint);
        answer["image"] = serde_json::to_value(&image_plan)?;
        answer["remote"] = serde_json::to_value(&plan)?;
        return Ok(Submission::Plan(answer));
    }
    let reservation = settings.store.reserve(base)?;
    let id = reservation.id.clone();
    // Every check before anything is built, pushed, uploaded or created.
    let plan = options(&id)?;
    printer.stage(
        "Packaged",
        &format!(
            "{} {} ({})",
            package.info.name,
            package.info.version,
            package.info.content_hash.chars().take(19).collect::<String>()
        ),
    );

    let s3 = aws.s3();
    crate::s3sync::ensure_bucket(&s3, &plan.bucket, &aws.region, printer).await?;
    let pushed = if pull_as_named {
        printer.stage(
            "Image",
            &format!("{} as it is named (it is not in the local engine)", plan.image_uri),
        );
        false
    } else {
        let docker = crate::docker::connect().await?;
        image::ensure(&docker, &image_plan, &package, printer).await?;
        let credentials = match &task.spec.remote.registry {
            Some(_) => None,
            None => Some(
                ecr_credentials(
                    aws,
                    &format!("grounds/{}", task.spec.name.to_lowercase()),
                    printer,
                )
                .await?,
            ),
        };
        crate::registry::push(
            &docker,
            &image_plan.tag,
            &plan.image_uri,
            credentials,
            printer,
        )
        .await?
    };

    let mut uploads = crate::s3sync::SyncReport::default();
    for (channel, (path, prefix)) in &plan.uploads {
        let report = crate::s3sync::sync(&s3, path, &plan.bucket, prefix, printer).await?;
        printer.stage(
            "Synced",
            &format!(
                "channel `{channel}`: {} uploaded, {} unchanged, {} removed",
                report.uploaded, report.unchanged, report.deleted
            ),
        );
        uploads.uploaded += report.uploaded;
        uploads.unchanged += report.unchanged;
        uploads.deleted += report.deleted;
        uploads.bytes_uploaded += report.bytes_uploaded;
    }

    remote::create(&aws.sagemaker(), &plan.create_training_job).await?;
    printer.stage("Submitted", &format!("training job {id} in {}", aws.region));
    let record = JobRecord {
        id: id.clone(),
        mode: Mode::Remote,
        status: Status::InProgress,
        task: task.spec.clone(),
        task_file: task.file.display().to_string(),
        hyperparameters: task.spec.hyperparameters.clone(),
        channels: settings.channel_sources(),
        hosts: (1..=settings.container.instance_count)
            .map(|i| format!("algo-{i}"))
            .collect(),
        started_at: Utc::now(),
        ended_at: None,
        duration_seconds: None,
        exit_code: None,
        failure_reason: None,
        fingerprint,
        package: package.info.clone(),
        grounds_version: env!("CARGO_PKG_VERSION").to_string(),
        left_out: Vec::new(),
        remote: Some(RemoteJob {
            job_name: id.clone(),
            region: aws.region.clone(),
            profile: profile
                .map(str::to_string)
                .or_else(|| std::env::var("AWS_PROFILE").ok()),
            bucket: plan.bucket.clone(),
            output_path: plan.output_path.clone(),
            image_uri: plan.image_uri.clone(),
        }),
    };
    let extra = json!({"image": plan.image_uri, "pushed": pushed, "uploads": uploads});
    Ok(Submission::Submitted {
        reservation,
        record,
        package,
        extra,
    })
}

/// Stores a submitted job: as `InProgress` with --detach, else once it ended (or Ctrl-C detached from it).
async fn settle(
    submission: Submission,
    aws: &Aws,
    args: &RemoteArgs,
    printer: &dyn Reporter,
) -> super::train::MemberAnswer {
    let (reservation, record, package, extra) = match submission {
        Submission::Submitted {
            reservation,
            record,
            package,
            extra,
        } => (reservation, record, package, extra),
        Submission::Reused(twin) => return Ok(super::train::Ran::Reused(twin).answer()),
        Submission::Plan(plan) => return Ok((plan, String::new(), Status::Completed)),
    };
    if args.detach {
        return store_in_progress(reservation, &record, &package, extra);
    }
    let id = record.id.clone();
    let Some(remote_job) = record.remote.clone() else {
        bail!("{id} was submitted without where it runs; this is a bug in grounds");
    };
    let work = crate::owner::WorkDir::new(&id).context("creating a temporary folder for the job")?;
    let mut log = JobLog::create(
        &work.path().join("logs.txt"),
        Definitions::new(&record.task.metrics),
        printer,
    )?;
    match remote::wait(
        &aws.sagemaker(),
        aws.logs(),
        &id,
        &mut log,
        args.stop_on_interrupt,
        remote::FIRST_POLL,
        printer,
    )
    .await?
    {
        WaitEnd::Detached => {
            log.finish()?;
            printer.warn(&format!(
                "detached: the job goes on in SageMaker; `grounds results fetch {id}` completes it, `grounds stop {id}` stops it"
            ));
            store_in_progress(reservation, &record, &package, extra)
        }
        WaitEnd::Finished(state) => {
            complete(
                aws,
                &remote_job,
                &state,
                work.path(),
                log,
                reservation,
                record,
                &package,
                printer,
                extra,
            )
            .await
        }
    }
}

fn store_in_progress(
    reservation: crate::results::Reservation,
    record: &JobRecord,
    package: &Package,
    extra: serde_json::Value,
) -> super::train::MemberAnswer {
    let empty = tempfile::tempdir()?;
    let logs = empty.path().join("logs.txt");
    std::fs::write(&logs, b"")?;
    let (path, _) = reservation.commit(ResultContents {
        job: record,
        package,
        metrics: &Metrics::default(),
        logs: &logs,
        files: Collected::default(),
    })?;
    let json = json!({"id": record.id, "status": record.status, "mode": record.mode, "metrics": {}, "result": path, "reused": false, "remote": record.remote, "submitted": extra});
    let text = format!("id:      {}\nstatus:  InProgress (submitted to SageMaker)\nfetch:   grounds results fetch {}\n", record.id, record.id);
    Ok((json, text, record.status))
}

#[allow(clippy::too_many_arguments)]
fn finish(
    reservation: crate::results::Reservation,
    mut record: JobRecord,
    package: &Package,
    outcome: crate::executors::Outcome,
    logs: &Path,
    extra: serde_json::Value,
    printer: &dyn Reporter,
) -> super::train::MemberAnswer {
    record.status = outcome.status;
    record.ended_at = Some(outcome.ended_at);
    record.duration_seconds =
        Some((outcome.ended_at - record.started_at).num_milliseconds() as f64 / 1000.0);
    record.exit_code = outcome.exit_code;
    record.failure_reason = outcome.failure_reason.clone();
    let finals = outcome.metrics.finals();
    let (path, record) = reservation.commit(ResultContents {
        job: &record,
        package,
        metrics: &outcome.metrics,
        logs,
        files: outcome.files,
    })?;
    super::train::say_left_out(&record, printer);
    let mut answer = super::train::answer(&record, &finals, &path, false);
    answer["remote"] = json!(record.remote);
    answer["submitted"] = extra;
    let text = super::train::summary(&record, &finals, &path);
    Ok((answer, text, record.status))
}

/// Brings a finished job home and stores its complete result.
#[allow(clippy::too_many_arguments)]
async fn complete(
    aws: &Aws,
    remote_job: &RemoteJob,
    state: &remote::JobState,
    work: &Path,
    log: JobLog<'_>,
    reservation: crate::results::Reservation,
    record: JobRecord,
    package: &Package,
    printer: &dyn Reporter,
    extra: serde_json::Value,
) -> super::train::MemberAnswer {
    let files = remote::collect(aws, remote_job, state, work, printer).await?;
    let outcome = remote::outcome(state, log, record.started_at, record.hosts.len().max(1), files)?;
    finish(
        reservation,
        record,
        package,
        outcome,
        &work.join("logs.txt"),
        extra,
        printer,
    )
}

fn remote_of(store: &Store, prefix: &str) -> anyhow::Result<(JobRecord, RemoteJob)> {
    let id = store.resolve(prefix)?;
    let stored = store.read(&id)?;
    let Some(remote) = stored.job.remote.clone() else {
        bail!("{id} is a {} run, not a SageMaker job", stored.job.mode);
    };
    Ok((stored.job, remote))
}

/// `grounds results fetch ID`: waits for a remote job (or takes it as it is) and completes its result.
pub async fn fetch(prefix: &str, no_wait: bool, printer: &Printer) -> anyhow::Result<Exit> {
    let store = Store::from_env();
    let (record, remote_job) = remote_of(&store, prefix)?;
    if record.status != Status::InProgress {
        printer.stage(
            "Fetched",
            &format!("{} is {} already", record.id, record.status),
        );
        printer.json(&json!({"id": record.id, "status": record.status, "mode": record.mode, "result": store.result_path(&record.id)}));
        printer.out(&format!(
            "id:      {}\nstatus:  {}\n",
            record.id, record.status
        ));
        return Ok(Exit::Success);
    }
    let aws = Aws::connect(remote_job.profile.as_deref(), Some(&remote_job.region)).await?;
    let package = store.package(&record.id)?;
    let work = crate::owner::WorkDir::new(&record.id)
        .context("creating a temporary folder for the job")?;
    let mut log = JobLog::create(
        &work.path().join("logs.txt"),
        Definitions::new(&record.task.metrics),
        printer,
    )?;
    let state = if no_wait {
        let state = remote::describe(&aws.sagemaker(), &remote_job.job_name).await?;
        let mut tail = remote::LogTail::new(aws.logs(), &remote_job.job_name);
        for (host, line) in tail.poll().await {
            log.line(Some(&host), &line);
        }
        state
    } else {
        match remote::wait(
            &aws.sagemaker(),
            aws.logs(),
            &remote_job.job_name,
            &mut log,
            false,
            remote::FIRST_POLL,
            printer,
        )
        .await?
        {
            WaitEnd::Finished(state) => state,
            WaitEnd::Detached => {
                printer.warn("detached again; the result stays InProgress");
                return Ok(Exit::Success);
            }
        }
    };
    if state.status == Status::InProgress {
        printer.stage(
            "Running",
            &format!(
                "{} is still {} / {}",
                record.id, state.status, state.secondary
            ),
        );
        printer.json(
            &json!({"id": record.id, "status": state.status, "secondary_status": state.secondary}),
        );
        return Ok(Exit::Success);
    }
    let reservation = store.rewrite(&record.id)?;
    let (json, text, status) = complete(
        &aws,
        &remote_job,
        &state,
        work.path(),
        log,
        reservation,
        record,
        &package,
        printer,
        json!(null),
    )
    .await?;
    printer.json(&json);
    printer.out(&text);
    Ok(super::train::exit_for(status))
}

/// `grounds stop ID`: StopTrainingJob for a remote job.
pub async fn stop(prefix: &str, printer: &Printer) -> anyhow::Result<Exit> {
    let store = Store::from_env();
    let (record, remote_job) = remote_of(&store, prefix)?;
    let aws = Aws::connect(remote_job.profile.as_deref(), Some(&remote_job.region)).await?;
    remote::stop(&aws.sagemaker(), &remote_job.job_name).await?;
    printer.stage("Stopping", &format!("{}: SageMaker sends SIGTERM, then SIGKILL after 120 s; `grounds results fetch {}` brings home what it left", record.id, record.id));
    printer.json(&json!({"id": record.id, "stopping": true}));
    Ok(Exit::Success)
}
