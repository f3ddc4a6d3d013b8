//! `grounds train remote` against moto's real S3, ECR, SageMaker, CloudWatch Logs and STS endpoints and a
//! real registry server, all started by `make test` (tests/services.sh).
//!
//! moto accepts CreateTrainingJob and calls the job Completed at once without running anything, so the
//! end-to-end test plays SageMaker's part: it runs the pushed image on the channels from S3, uploads the
//! model where SageMaker would, and writes the job's output as CloudWatch log events.

use std::path::Path;
use std::process::Command;

use crate::common::{both, fixture, text, Sandbox, ZipFile};

const REGION: &str = "us-east-1";
const ROLE: &str = "arn:aws:iam::123456789012:role/GroundsTestRole";

fn moto() -> String {
    crate::common::service("GROUNDS_TEST_MOTO")
}

/// The SageMaker stand-in (tests/sagemaker_standin.py), which really runs training jobs.
fn sagemaker() -> String {
    crate::common::service("GROUNDS_TEST_SAGEMAKER")
}

fn registry() -> String {
    crate::common::service("GROUNDS_TEST_REGISTRY")
}

/// The environment of a user pointed at moto, with no other AWS configuration to find.
fn aws_env(command: &mut Command, sandbox: &Sandbox) {
    command
        .env("AWS_ENDPOINT_URL", moto())
        .env("AWS_ENDPOINT_URL_SAGEMAKER", sagemaker())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env("AWS_CONFIG_FILE", sandbox.path().join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            sandbox.path().join("no-aws-credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("GROUNDS_ROLE")
        .env_remove("AWS_ROLE")
        .env_remove("GROUNDS_BUCKET");
}

fn grounds(sandbox: &Sandbox, args: &[&str]) -> (std::process::Output, serde_json::Value) {
    let mut command = sandbox.command(args);
    aws_env(&mut command, sandbox);
    let output = command.output().unwrap();
    let answer = serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
    (output, answer)
}

async fn sdk() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(moto())
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await
}

async fn s3() -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(&sdk().await)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

fn titanic_task(sandbox: &Sandbox, name: &str, bucket: &str) -> std::path::PathBuf {
    sandbox.write(
        "data/titanic.csv",
        &std::fs::read_to_string(fixture("titanic/titanic.csv")).unwrap(),
    );
    sandbox.write(
        &format!("{name}/task.toml"),
        &format!(
            "[task]\nname = \"{name}\"\n[task.builtin]\nkind = \"single-frame\"\nlabel = \"Survived\"\n\
             features = [\"Pclass\", \"Sex\", \"Age\", \"SibSp\", \"Parch\", \"Fare\", \"Embarked\"]\nfolds = 5\n\
             [channels]\ntraining = \"../data/titanic.csv\"\n[hyperparameters]\nmax_iter = 200\n\
             [remote]\nbucket = \"{bucket}\"\nregistry = \"{}\"\ninstance_type = \"ml.m5.large\"\n",
            registry()
        ),
    )
}

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().unwrap()
}

/// titanic on the stand-in, waited for: the same metrics and model files as attached; every status
/// change and every log line shown live, in order, once each.
#[test]
fn a_remote_job_runs_and_comes_home_as_an_attached_one_does() {
    let sandbox = Sandbox::new();
    sandbox.write(".env", &format!("AWS_ROLE={ROLE}\n"));
    let task = titanic_task(&sandbox, "remote-e2e", "grounds-e2e-bucket");
    let task = task.to_str().unwrap();
    let (output, attached) = sandbox.json(&["train", "attached", task, "--quiet"]);
    assert!(output.status.success(), "{}", both(&output));
    let (output, remote) = grounds(&sandbox, &["train", "remote", task, "--json"]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(remote["status"], "Completed", "{remote}");
    assert_eq!(remote["metrics"], attached["metrics"], "the same metrics");
    assert_eq!(remote["submitted"]["pushed"], true);
    assert_eq!(remote["submitted"]["uploads"]["uploaded"], 1);
    assert_eq!(remote["submitted"]["package"]["uploaded"], true);
    let mut attached_zip = ZipFile::open(Path::new(attached["result"].as_str().unwrap()));
    let mut remote_zip = ZipFile::open(Path::new(remote["result"].as_str().unwrap()));
    assert_eq!(
        attached_zip.read("model/model.json"),
        remote_zip.read("model/model.json"),
        "the same model"
    );
    let model_files = |zip: &ZipFile| -> Vec<String> {
        zip.names()
            .into_iter()
            .filter(|n| n.starts_with("model/"))
            .collect()
    };
    assert_eq!(model_files(&attached_zip), model_files(&remote_zip));

    // Statuses in SageMaker's order, each shown once.
    let stderr = text(&output.stderr);
    let mut at = 0;
    for secondary in [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ] {
        let needle = format!("/ {secondary}\n");
        assert_eq!(
            stderr.matches(&needle).count(),
            1,
            "{secondary} once:\n{stderr}"
        );
        let found = stderr[at..]
            .find(&needle)
            .unwrap_or_else(|| panic!("{secondary} in order:\n{stderr}"));
        at += found;
    }
    // The job's lines live and once each, in order.
    for split in 1..=5 {
        let line = format!("[single-frame] stage fit: split {split} of 5");
        assert_eq!(stderr.matches(&line).count(), 1, "{line}:\n{stderr}");
    }
    assert!(stderr.find("split 1 of 5") < stderr.find("split 5 of 5"));
    let logs = remote_zip.read("logs.txt");
    assert!(
        logs.contains("algo-1 | [single-frame] stage save"),
        "{logs}"
    );
    // What SageMaker computed from the MetricDefinitions grounds sent agrees with what grounds parsed.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let described = runtime.block_on(async {
        aws_sdk_sagemaker::Client::from_conf(
            aws_sdk_sagemaker::config::Builder::from(&sdk().await)
                .endpoint_url(sagemaker())
                .build(),
        )
        .describe_training_job()
        .training_job_name(remote["id"].as_str().unwrap())
        .send()
        .await
        .unwrap()
    });
    let finals = described.final_metric_data_list();
    assert_eq!(finals.len(), 6, "{finals:?}");
    for metric in finals {
        let name = metric.metric_name().unwrap();
        let ours = remote["metrics"][name].as_f64().unwrap();
        assert!(
            (f64::from(metric.value().unwrap()) - ours).abs() < 1e-6,
            "{name}"
        );
    }

    // A second run of the unchanged job uploads nothing and pushes nothing.
    let (output, again) = grounds(
        &sandbox,
        &["train", "remote", task, "--detach", "--json", "--force"],
    );
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(again["submitted"]["pushed"], false);
    assert_eq!(again["submitted"]["uploads"]["uploaded"], 0);
    assert_eq!(again["submitted"]["uploads"]["unchanged"], 1);
    assert_eq!(again["submitted"]["package"]["uploaded"], false);
    assert_eq!(
        again["submitted"]["package"]["uri"],
        remote["submitted"]["package"]["uri"]
    );
}

/// The tags the test registry holds for a repository (its HTTP API, read from outside grounds).
fn registry_tags(repository: &str) -> Vec<String> {
    let url = format!("http://{}/v2/{repository}/tags/list", registry());
    let output = Command::new("python3")
        .args([
            "-c",
            "import json, sys, urllib.request\n\
             print(json.dumps(json.load(urllib.request.urlopen(sys.argv[1])).get('tags') or []))",
            &url,
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{url}: {}", both(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The edit-run loop on SageMaker: a code change uploads the package (one small object under its
/// hash) and creates the job; the image is neither built nor pushed, and the registry gets no new tag.
#[test]
fn a_code_change_on_sagemaker_uploads_its_package_and_pushes_nothing() {
    let sandbox = Sandbox::new();
    let script = |version: u32| {
        format!(
            "import os\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'channels.txt'), 'w').write(os.environ['SM_CHANNELS'])\n\
             print('###METRIC###version:{version}###', flush=True)\n"
        )
    };
    let task = remote_command_task(&sandbox, "remote-edit", &script(1), "");
    let task = task.to_str().unwrap();
    let (output, first) = grounds(&sandbox, &["train", "remote", task, "--json"]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(first["metrics"]["version"], 1.0);
    let package = &first["submitted"]["package"];
    assert_eq!(package["uploaded"], true, "{first}");
    let uri = package["uri"].as_str().unwrap();
    assert!(
        uri.starts_with("s3://grounds-standin/sagemaker/packages/") && uri.ends_with('/'),
        "{uri}"
    );
    // Compared, not counted: the registry may hold tags of this task from other runs of the test.
    let tags = registry_tags("grounds/remote-edit");
    let image = first["submitted"]["image"].as_str().unwrap();
    assert!(
        tags.iter().any(|tag| image.ends_with(&format!(":{tag}"))),
        "{image} in {tags:?}"
    );

    sandbox.write("remote-edit/src/train.py", &script(2));
    let (output, second) = grounds(&sandbox, &["train", "remote", task, "--json"]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(second["metrics"]["version"], 2.0, "the new code ran");
    assert_eq!(second["submitted"]["pushed"], false);
    assert_eq!(second["submitted"]["image"], first["submitted"]["image"]);
    assert_eq!(second["submitted"]["package"]["uploaded"], true);
    assert_ne!(
        second["submitted"]["package"]["uri"],
        first["submitted"]["package"]["uri"]
    );
    let stderr = text(&output.stderr);
    assert!(!stderr.contains("Building image"), "{stderr}");
    assert!(!stderr.contains("Pushing"), "{stderr}");
    assert_eq!(registry_tags("grounds/remote-edit"), tags, "no new tag");
    // The program's channels are the task's (none here), not the package's.
    let mut zip = ZipFile::open(Path::new(second["result"].as_str().unwrap()));
    assert_eq!(zip.read("model/channels.txt"), "[]");
}

/// A command task on the debootstrapped Python image, for the stand-in to run.
fn remote_command_task(
    sandbox: &Sandbox,
    name: &str,
    script: &str,
    remote: &str,
) -> std::path::PathBuf {
    sandbox.write(".env", &format!("AWS_ROLE={ROLE}\n"));
    sandbox.command_task(
        name,
        script,
        &format!(
            "[container]\nbase_image = \"grounds-test/python:bookworm\"\n[remote]\nbucket = \"grounds-standin\"\n\
             registry = \"{}\"\n{remote}",
            registry()
        ),
    )
}

#[test]
fn a_failing_remote_job_comes_home_failed_with_its_own_reason() {
    let sandbox = Sandbox::new();
    let task = remote_command_task(
        &sandbox,
        "remote-fail",
        "print('###METRIC###progress:0.5###', flush=True)\n1 / 0\n",
        "metrics = [\"progress\"]\n",
    );
    let (output, answer) = grounds(
        &sandbox,
        &["train", "remote", task.to_str().unwrap(), "--json"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", both(&output));
    assert_eq!(answer["status"], "Failed");
    let reason = answer["failure_reason"].as_str().unwrap();
    assert!(reason.contains("ZeroDivisionError"), "{reason}");
    assert_eq!(answer["metrics"]["progress"], 0.5);
    let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
    assert!(zip.read("output/failure").contains("ZeroDivisionError"));
}

#[test]
fn a_detached_job_is_fetched_once_it_ended() {
    let sandbox = Sandbox::new();
    let task = remote_command_task(
        &sandbox,
        "remote-detach",
        "import os, time\ntime.sleep(2)\nopen(os.environ['SM_MODEL_DIR'] + '/m.txt', 'w').write('m')\nprint('###METRIC###acc:0.75###')\n",
        "metrics = [\"acc\"]\n",
    );
    let (output, submitted) = grounds(
        &sandbox,
        &[
            "train",
            "remote",
            task.to_str().unwrap(),
            "--detach",
            "--json",
        ],
    );
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(submitted["status"], "InProgress");
    let id = submitted["id"].as_str().unwrap().to_string();
    let (output, fetched) = grounds(
        &sandbox,
        &["results", "fetch", &id[..id.len() - 2], "--json"],
    );
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(fetched["status"], "Completed");
    assert_eq!(fetched["metrics"]["acc"], 0.75);
    let mut zip = ZipFile::open(Path::new(fetched["result"].as_str().unwrap()));
    assert_eq!(zip.read("model/m.txt"), "m");
    let (_, listed) = sandbox.json(&["results", "list"]);
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "fetch replaced the InProgress result"
    );
}

#[test]
fn ctrl_c_with_stop_on_interrupt_ends_the_job_stopped() {
    let sandbox = Sandbox::new();
    let task = remote_command_task(
        &sandbox,
        "remote-stop",
        "import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *a: (print('got SIGTERM', flush=True), sys.exit(0)))\nprint('training', flush=True)\ntime.sleep(300)\n",
        "",
    );
    let mut command = sandbox.command(&[
        "train",
        "remote",
        task.to_str().unwrap(),
        "--stop-on-interrupt",
        "--json",
    ]);
    aws_env(&mut command, &sandbox);
    let running = crate::common::Running::start(command);
    running.wait_for("/ Training", 180);
    running.wait_for("training", 60);
    running.signal(libc::SIGINT);
    let output = running.finish(120);
    assert_eq!(output.status.code(), Some(130), "{}", both(&output));
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["status"], "Stopped");
    let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
    assert!(
        zip.read("logs.txt").contains("got SIGTERM"),
        "the job was asked to stop"
    );
}

/// A detached job looked at without waiting (`--no-wait`), fetched and left again with Ctrl-C (its answer
/// says it stays InProgress), stopped, then fetched for good: it comes home Stopped.
#[test]
fn a_detached_job_is_looked_at_left_again_and_stopped() {
    let sandbox = Sandbox::new();
    let task = remote_command_task(
        &sandbox,
        "remote-left",
        "import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *a: (print('got SIGTERM', flush=True), sys.exit(0)))\nprint('handler in place', flush=True)\ntime.sleep(300)\n",
        "",
    );
    let (output, submitted) = grounds(
        &sandbox,
        &[
            "train",
            "remote",
            task.to_str().unwrap(),
            "--detach",
            "--json",
        ],
    );
    assert!(output.status.success(), "{}", both(&output));
    let id = submitted["id"].as_str().unwrap().to_string();

    let (output, looked) = grounds(&sandbox, &["results", "fetch", &id, "--no-wait", "--json"]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(looked["id"], id.as_str(), "{looked}");
    assert_eq!(looked["status"], "InProgress", "{looked}");
    assert!(
        looked["secondary_status"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{looked}"
    );

    let mut command = sandbox.command(&["results", "fetch", &id, "--json"]);
    aws_env(&mut command, &sandbox);
    let running = crate::common::Running::start(command);
    running.wait_for("/ Training", 180);
    // The job's own line: its SIGTERM handler is in place, so the stop below is seen by the program.
    running.wait_for("handler in place", 60);
    running.signal(libc::SIGINT);
    let output = running.finish(60);
    assert_eq!(output.status.code(), Some(0), "{}", both(&output));
    let left: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("detaching again answers in JSON ({e}): {}", both(&output)));
    assert_eq!(left["id"], id.as_str(), "{left}");
    assert_eq!(left["status"], "InProgress", "{left}");
    assert_eq!(left["remote"]["job_name"], submitted["remote"]["job_name"]);
    let (_, listed) = sandbox.json(&["results", "list"]);
    assert_eq!(listed[0]["status"], "InProgress", "{listed}");

    let (output, stopping) = grounds(&sandbox, &["stop", &id, "--json"]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(stopping["stopping"], true);
    let (output, fetched) = grounds(&sandbox, &["results", "fetch", &id, "--json"]);
    assert_eq!(output.status.code(), Some(130), "{}", both(&output));
    assert_eq!(fetched["status"], "Stopped", "{fetched}");
    let mut zip = ZipFile::open(Path::new(fetched["result"].as_str().unwrap()));
    assert!(
        zip.read("logs.txt").contains("got SIGTERM"),
        "the job was asked to stop"
    );
}

#[test]
fn two_remote_hosts_see_each_other() {
    let sandbox = Sandbox::new();
    sandbox.write(".env", &format!("AWS_ROLE={ROLE}\n"));
    let source = fixture("multi-host/src");
    let task = sandbox.write(
        "remote-hosts/task.toml",
        &format!(
            "[task]\nname = \"remote-hosts\"\n[task.command]\nsource = \"{}\"\nrun = [\"python3\", \"train.py\"]\n\
             [container]\nbase_image = \"grounds-test/python:bookworm\"\n[remote]\nbucket = \"grounds-standin\"\n\
             registry = \"{}\"\ninstance_count = 2\n",
            source.display(),
            registry()
        ),
    );
    let (output, answer) = grounds(
        &sandbox,
        &["train", "remote", task.to_str().unwrap(), "--json"],
    );
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(answer["status"], "Completed");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("algo-1 | algo-1 reached ['algo-2']"),
        "{stderr}"
    );
    assert!(
        stderr.contains("algo-2 | algo-2 reached ['algo-1']"),
        "{stderr}"
    );
}

#[test]
fn max_runtime_ends_the_job_and_a_new_run_resumes_from_its_checkpoint() {
    let sandbox = Sandbox::new();
    let script = "import os, sys, time\nckpt = '/opt/ml/checkpoints/epoch.txt'\nstart = int(open(ckpt).read()) if os.path.exists(ckpt) else 0\nprint('resumed at epoch', start, flush=True)\nfor epoch in range(start + 1, 4):\n    open(ckpt, 'w').write(str(epoch))\n    print('###METRIC###epoch:%d###' % epoch, flush=True)\n    time.sleep(0.5)\nif start == 0:\n    time.sleep(300)\nprint('done', flush=True)\n";
    let task = remote_command_task(
        &sandbox,
        "remote-spot",
        script,
        "metrics = [\"epoch\"]\nmax_runtime = \"8\"\nspot = true\nmax_wait = \"60\"\ncheckpoints = true\n",
    );
    let task = task.to_str().unwrap();
    let (output, first) = grounds(&sandbox, &["train", "remote", task, "--json"]);
    assert_eq!(output.status.code(), Some(130), "{}", both(&output));
    assert_eq!(first["status"], "Stopped", "{first}");
    let reason = first["failure_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("MaxRuntimeExceeded"), "{reason}");
    assert!(text(&output.stderr).contains("resumed at epoch 0"));
    // Stopped runs are never reused: the same job runs again, and starts from the checkpoint.
    let (output, second) = grounds(&sandbox, &["train", "remote", task, "--json"]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(second["status"], "Completed");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("resumed at epoch 3") && stderr.contains("done"),
        "{stderr}"
    );
}

#[test]
fn dry_run_prints_the_request_and_changes_nothing() {
    let sandbox = Sandbox::new();
    let task = titanic_task(&sandbox, "remote-dry", "grounds-dry-bucket");
    let mut command = sandbox.command(&["train", "remote", task.to_str().unwrap(), "--dry-run"]);
    aws_env(&mut command, &sandbox);
    let output = command.env("GROUNDS_ROLE", ROLE).output().unwrap();
    assert!(output.status.success(), "{}", both(&output));
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let request = &plan["remote"]["create_training_job"];
    assert_eq!(request["RoleArn"], ROLE);
    assert_eq!(
        request["AlgorithmSpecification"]["MetricDefinitions"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
    // The data goes below a prefix named by its content: sagemaker/datasets/<sha256>/.
    let uri = request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
        .as_str()
        .unwrap();
    let hash = uri
        .strip_prefix("s3://grounds-dry-bucket/sagemaker/datasets/")
        .and_then(|rest| rest.strip_suffix('/'))
        .unwrap_or_else(|| panic!("{uri}"));
    assert!(
        hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{uri}"
    );
    assert_eq!(plan["remote"]["account"], "123456789012");
    // Without [remote] registry and bucket: ECR in the caller's account, and SageMaker's default bucket.
    let plain = sandbox.write(
        "plain/task.toml",
        "[task]\nname = \"Plain\"\n[task.builtin]\nkind = \"single-frame\"\nlabel = \"Survived\"\n[channels]\ntraining = \"../data/titanic.csv\"\n",
    );
    let mut command = sandbox.command(&["train", "remote", plain.to_str().unwrap(), "--dry-run"]);
    aws_env(&mut command, &sandbox);
    let output = command.env("AWS_ROLE", ROLE).output().unwrap();
    assert!(output.status.success(), "{}", both(&output));
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let image = plan["remote"]["image_uri"].as_str().unwrap();
    assert!(
        image.starts_with("123456789012.dkr.ecr.us-east-1.amazonaws.com/grounds/plain:"),
        "{image}"
    );
    assert_eq!(plan["remote"]["bucket"], "sagemaker-us-east-1-123456789012");
    // Nothing was created: no bucket.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let exists = runtime.block_on(async {
        s3().await
            .head_bucket()
            .bucket("grounds-dry-bucket")
            .send()
            .await
            .is_ok()
    });
    assert!(!exists, "a dry run created the bucket");
}

/// Each bad input is refused with a clear error before anything is created.
#[test]
fn bad_inputs_are_refused_before_any_call_that_changes_anything() {
    let sandbox = Sandbox::new();
    let task = titanic_task(&sandbox, "remote-bad", "grounds-bad-bucket");
    let run = |extra_env: &[(&str, &str)], remove: &[&str], task: &Path| {
        let mut command = sandbox.command(&["train", "remote", task.to_str().unwrap(), "--detach"]);
        aws_env(&mut command, &sandbox);
        for (k, v) in extra_env {
            command.env(k, v);
        }
        for k in remove {
            command.env_remove(k);
        }
        command.output().unwrap()
    };
    /// (variables set, variables removed, what the error says)
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("GROUNDS_ROLE", ROLE)],
            vec!["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
            "no AWS credentials",
        ),
        (vec![], vec![], "no SageMaker execution role"),
        (
            vec![("GROUNDS_ROLE", "MySageMakerRole")],
            vec![],
            "is not an IAM role ARN",
        ),
        (
            vec![("GROUNDS_ROLE", ROLE), ("AWS_REGION", "eu-wst-1")],
            vec!["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER"],
            "unknown AWS region `eu-wst-1`",
        ),
    ];
    for (env, remove, expected) in cases {
        let output = run(&env, &remove, &task);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{expected}: {}",
            both(&output)
        );
        assert!(
            text(&output.stderr).contains(expected),
            "expected `{expected}`: {}",
            both(&output)
        );
    }
    // A limit exceeded: 41 metric definitions.
    let metrics: Vec<String> = (0..41).map(|i| format!("\"m{i}\"")).collect();
    sandbox.write("many/src/train.py", "print(1)\n");
    let many = sandbox.write(
        "many/task.toml",
        &format!(
            "[task]\nname = \"many\"\n[task.command]\nsource = \"src\"\nrun = [\"python3\", \"train.py\"]\n[container]\nbase_image = \"grounds-test/python:bookworm\"\n[remote]\nregistry = \"{}\"\nmetrics = [{}]\n",
            registry(),
            metrics.join(", ")
        ),
    );
    let output = run(&[("GROUNDS_ROLE", ROLE)], &[], &many);
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    assert!(
        text(&output.stderr).contains("41 metric definitions")
            && text(&output.stderr).contains("SageMaker takes at most 40"),
        "{}",
        both(&output)
    );
    // A bucket that cannot be created.
    let bad_bucket = titanic_task(&sandbox, "remote-bucket", "Not_A_Valid_Bucket");
    let output = run(&[("GROUNDS_ROLE", ROLE)], &[], &bad_bucket);
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    assert!(
        text(&output.stderr).contains(&format!(
            "bucket `Not_A_Valid_Bucket` ([remote] bucket in {}) is not an S3 bucket name",
            bad_bucket.display()
        )),
        "{}",
        both(&output)
    );
    // A value from a `.env` file or the environment is blamed on where it was set, not on the task.
    let from_dotenv = titanic_task(&sandbox, "remote-dotenv", "grounds-dotenv-bucket");
    let dotenv_file = sandbox.write("remote-dotenv/.env", "AWS_ROLE=MySageMakerRole\n");
    let output = run(&[], &[], &from_dotenv);
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    assert!(
        text(&output.stderr).contains(&format!(
            "role `MySageMakerRole` (AWS_ROLE in {}) is not an IAM role ARN",
            dotenv_file.display()
        )),
        "{}",
        both(&output)
    );
    let output = run(&[("GROUNDS_ROLE", "not-a-role")], &[], &from_dotenv);
    assert!(
        text(&output.stderr).contains("role `not-a-role` (GROUNDS_ROLE in the environment)"),
        "{}",
        both(&output)
    );
    sandbox.write(
        "remote-dotenv/.env",
        &format!("AWS_ROLE={ROLE}\nAWS_REGION=eu-wst-1\n"),
    );
    let output = run(
        &[],
        &[
            "AWS_REGION",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_SAGEMAKER",
        ],
        &from_dotenv,
    );
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    assert!(
        text(&output.stderr).contains(&format!(
            "unknown AWS region `eu-wst-1` (AWS_REGION in {})",
            dotenv_file.display()
        )),
        "{}",
        both(&output)
    );
    assert!(
        sandbox.result_zips().is_empty(),
        "no result for a job that was never created"
    );
}

/// A remote sweep submits every member, each a training job with its own hyperparameters.
#[tokio::test(flavor = "multi_thread")]
async fn a_remote_sweep_submits_every_member() {
    let sandbox = Sandbox::new();
    let task = titanic_task(&sandbox, "remote-sweep", "grounds-sweep-bucket");
    let mut command = sandbox.command(&[
        "train",
        "remote",
        task.to_str().unwrap(),
        "--set",
        "C=0.5,1",
        "--detach",
        "--json",
    ]);
    aws_env(&mut command, &sandbox);
    let output = command.env("GROUNDS_ROLE", ROLE).output().unwrap();
    assert!(output.status.success(), "{}", both(&output));
    let rows: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["C0p5", "C1"]);
    let sagemaker = aws_sdk_sagemaker::Client::from_conf(
        aws_sdk_sagemaker::config::Builder::from(&sdk().await)
            .endpoint_url(sagemaker())
            .build(),
    );
    for row in rows {
        assert_eq!(row["status"], "InProgress");
        let id = row["id"].as_str().unwrap();
        assert!(
            id.starts_with(&format!("remote-sweep-{}-", row["name"].as_str().unwrap())),
            "{id}"
        );
        let described = sagemaker
            .describe_training_job()
            .training_job_name(id)
            .send()
            .await
            .unwrap();
        assert_eq!(
            described.hyper_parameters().unwrap()["C"],
            row["hyperparameters"]["C"].as_str().unwrap()
        );
    }
    // The data went up once: the second member found it unchanged.
    assert_eq!(
        rows[0]["submitted"]["uploads"]["uploaded"]
            .as_u64()
            .unwrap()
            + rows[1]["submitted"]["uploads"]["uploaded"]
                .as_u64()
                .unwrap(),
        1
    );
}

/// An image task's image goes to SageMaker as named when the local engine does not have it, and is
/// pushed to grounds' repository (tagged by its id) when it does; `[metrics]` regexes are sent as they are.
#[test]
fn image_tasks_train_their_own_image() {
    let sandbox = Sandbox::new();
    sandbox.write("data/d.csv", "x\n1\n");
    let named = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1";
    let task_for = |name: &str, uri: &str| {
        sandbox.write(
            &format!("{name}/task.toml"),
            &format!(
                "[task]\nname = \"{name}\"\n[task.image]\nuri = \"{uri}\"\n[channels]\ntraining = \"../data/d.csv\"\n\
                 [metrics]\nloss = \"loss: ([0-9.]+)\"\n"
            ),
        )
    };
    let plan = |task: &std::path::Path| {
        let mut command =
            sandbox.command(&["train", "remote", task.to_str().unwrap(), "--dry-run"]);
        aws_env(&mut command, &sandbox);
        let output = command.env("GROUNDS_ROLE", ROLE).output().unwrap();
        assert!(output.status.success(), "{}", both(&output));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let remote_plan = plan(&task_for("byo-named", named));
    assert_eq!(remote_plan["remote"]["image_uri"], named);
    let request = &remote_plan["remote"]["create_training_job"];
    assert_eq!(request["AlgorithmSpecification"]["TrainingImage"], named);
    assert_eq!(
        request["AlgorithmSpecification"]["MetricDefinitions"][0],
        serde_json::json!({"Name": "loss", "Regex": "loss: ([0-9.]+)"})
    );
    // Its own image runs without grounds' entry: no package is delivered.
    let channels: Vec<&str> = request["InputDataConfig"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["ChannelName"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["training"]);
    assert!(remote_plan["remote"].get("package").is_none());

    let local = format!("grounds-test/byo-remote:{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM grounds-test/python:bookworm\nLABEL purpose=byo-remote-test\n",
    )
    .unwrap();
    let built = docker(&["build", "-q", "-t", &local, dir.path().to_str().unwrap()]);
    assert!(built.status.success(), "{}", both(&built));
    let remote_plan = plan(&task_for("byo-local", &local));
    let image = remote_plan["remote"]["image_uri"].as_str().unwrap();
    assert!(
        image.starts_with("123456789012.dkr.ecr.us-east-1.amazonaws.com/grounds/byo-local:"),
        "{image}"
    );
    docker(&["rmi", "-f", &local]);
}

/// The stand-in checks requests as the service does (botocore's model: patterns, ranges, enums) and
/// answers with the service's error names; grounds' own requests pass (every test above).
#[tokio::test(flavor = "multi_thread")]
async fn the_stand_in_answers_bad_requests_as_the_service_does() {
    let sagemaker = aws_sdk_sagemaker::Client::from_conf(
        aws_sdk_sagemaker::config::Builder::from(&sdk().await)
            .endpoint_url(sagemaker())
            .build(),
    );
    use aws_sdk_sagemaker::types as sm;
    let request = |name: &str, max_runtime: i32| {
        sagemaker
            .create_training_job()
            .training_job_name(name)
            .role_arn(ROLE)
            .algorithm_specification(
                sm::AlgorithmSpecification::builder()
                    .training_image("127.0.0.1:1/none:1")
                    .training_input_mode(sm::TrainingInputMode::File)
                    .build(),
            )
            .output_data_config(
                sm::OutputDataConfig::builder()
                    .s3_output_path("s3://grounds-standin/out/")
                    .build(),
            )
            .resource_config(
                sm::ResourceConfig::builder()
                    .instance_type(sm::TrainingInstanceType::MlM5Large)
                    .instance_count(1)
                    .volume_size_in_gb(30)
                    .build(),
            )
            .stopping_condition(
                sm::StoppingCondition::builder()
                    .max_runtime_in_seconds(max_runtime)
                    .build(),
            )
            .send()
    };
    let code =
        |e: &dyn aws_sdk_sagemaker::error::ProvideErrorMetadata| e.code().map(str::to_string);
    let bad_name = request("not_a_valid_name", 60).await.unwrap_err();
    assert_eq!(
        code(&bad_name).as_deref(),
        Some("ValidationException"),
        "{bad_name:?}"
    );
    assert!(format!("{bad_name:?}").contains("regular expression pattern"));
    let bad_runtime = request("valid-name-runtime", 0).await.unwrap_err();
    assert_eq!(code(&bad_runtime).as_deref(), Some("ValidationException"));
    assert!(format!("{bad_runtime:?}").contains("MaxRuntimeInSeconds"));
    let name = format!("standin-dup-{}", std::process::id());
    request(&name, 60).await.unwrap();
    let duplicate = request(&name, 60).await.unwrap_err();
    assert_eq!(code(&duplicate).as_deref(), Some("ResourceInUse"));
    let listed = sagemaker
        .list_training_jobs()
        .name_contains("standin-dup")
        .send()
        .await
        .unwrap();
    assert!(listed
        .training_job_summaries()
        .iter()
        .any(|j| j.training_job_name() == Some(name.as_str())));
    let missing = sagemaker
        .describe_training_job()
        .training_job_name("no-such-job")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&missing).as_deref(), Some("ValidationException"));
    // The image cannot be pulled: the job fails as SageMaker's would, with the reason.
    let mut state = None;
    for _ in 0..100 {
        let described = sagemaker
            .describe_training_job()
            .training_job_name(&name)
            .send()
            .await
            .unwrap();
        if described.training_job_status() == Some(&sm::TrainingJobStatus::Failed) {
            state = described.failure_reason().map(str::to_string);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(state
        .unwrap_or_default()
        .contains("Cannot pull the training image"));
}

#[test]
fn a_result_channel_is_uploaded_and_read_on_sagemaker() {
    let sandbox = Sandbox::new();
    // A result made here, attached: its output/data holds the rows the remote job reads.
    let producer = sandbox.command_task(
        "producer",
        "import os\nopen(os.path.join(os.environ['SM_OUTPUT_DATA_DIR'], 'rows.csv'), 'w').write('x\\n1\\n2\\n3\\n')\n",
        "",
    );
    let (made, produced) =
        sandbox.json(&["train", "attached", producer.to_str().unwrap(), "--quiet"]);
    assert!(made.status.success(), "{}", both(&made));
    let id = produced["id"].as_str().unwrap();
    let task = remote_command_task(
        &sandbox,
        "remote-reader",
        "import os\nrows = open(os.path.join(os.environ['SM_CHANNEL_ROWS'], 'rows.csv')).read().splitlines()\n\
         print('###METRIC###rows:%d###' % (len(rows) - 1), flush=True)\n",
        &format!("metrics = [\"rows\"]\n[channels]\nrows = \"result://{id}/output\"\n"),
    );
    let (output, answer) = grounds(
        &sandbox,
        &["train", "remote", task.to_str().unwrap(), "--json"],
    );
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(answer["status"], "Completed", "{answer}");
    assert_eq!(answer["metrics"]["rows"], 3.0);
    let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
    assert_eq!(zip.json("job.json")["inputs"][0]["result"], id);
}

#[test]
fn a_pipeline_runs_on_sagemaker_and_reuses_what_did_not_change() {
    let sandbox = Sandbox::new();
    let file = crate::common::pipeline_copy(
        &sandbox,
        &format!(
            "\n[container]\nbase_image = \"grounds-test/python:bookworm\"\n[remote]\nbucket = \"grounds-flow\"\n\
             registry = \"{}\"\n",
            registry()
        ),
    );
    sandbox.write("flow/.env", &format!("AWS_ROLE={ROLE}\n"));
    let (output, answer) = grounds(
        &sandbox,
        &[
            "train",
            "remote",
            file.to_str().unwrap(),
            "--quiet",
            "--json",
        ],
    );
    assert!(output.status.success(), "{}", both(&output));
    let steps = answer.as_array().unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(steps.len(), 3);
    for step in steps {
        assert_eq!(step["status"], "Completed", "{step}");
        assert_eq!(step["mode"], "remote", "{step}");
    }
    assert!(steps[2]["metrics"]["test_accuracy"].as_f64().unwrap() > 0.7);
    let (output, again) = grounds(
        &sandbox,
        &[
            "train",
            "remote",
            file.to_str().unwrap(),
            "--quiet",
            "--json",
        ],
    );
    assert!(output.status.success(), "{}", both(&output));
    assert!(
        again
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["reused"] == true),
        "{again}"
    );
}

/// At a terminal a SageMaker run shows its work as bars: the image build's steps, the upload's bytes
/// with rate and time left, and a spinner with the job's status and secondary status while it is waited
/// for; the status lines stay as they are in a log.
#[test]
fn a_remote_job_at_a_terminal_shows_build_upload_and_wait_as_they_go() {
    let sandbox = Sandbox::new();
    sandbox.write(".env", &format!("AWS_ROLE={ROLE}\n"));
    let task = titanic_task(&sandbox, "remote-progress", "grounds-progress-bucket");
    // The image holds no code, so an engine that ran this test before still has it: remove it so that
    // this run builds and the build's bar can be seen.
    let listed = docker(&["images", "--quiet", "grounds/remote-progress"]);
    for image in text(&listed.stdout).split_whitespace() {
        docker(&["rmi", "--force", image]);
    }
    let mut command = sandbox.command(&["train", "remote", task.to_str().unwrap()]);
    aws_env(&mut command, &sandbox);
    command.env("TERM", "xterm");
    let shown = crate::common::on_terminal(command);
    let terminal = &shown.terminal;
    assert!(shown.status.success(), "{terminal}");
    let bar = |prefix: &str, rest: &str| {
        terminal
            .split(['\r', '\n'])
            .any(|line| line.contains(prefix) && line.contains(rest))
    };
    assert!(bar("    Building [", "/"), "build steps n/m: {terminal}");
    // Before the engine says how many steps there are, the build spins instead of counting to zero.
    assert!(!terminal.contains(" 0/0 "), "{terminal}");
    assert!(
        bar("   Uploading [", " ETA "),
        "upload bytes with time left: {terminal}"
    );
    assert!(
        bar("     Waiting ", "remote-progress-") && terminal.contains(": InProgress / "),
        "a spinner with the job's status: {terminal}"
    );
    // The log's lines are all there, above the bars.
    assert!(terminal.contains("Status"), "{terminal}");
    assert!(terminal.contains("/ Completed"), "{terminal}");
    assert!(text(&shown.stdout).contains("status:  Completed"));
}

/// The S3 URI of a training job's first channel, as SageMaker (the stand-in) was given it.
async fn input_uri(job: &str) -> String {
    let sagemaker = aws_sdk_sagemaker::Client::from_conf(
        aws_sdk_sagemaker::config::Builder::from(&sdk().await)
            .endpoint_url(sagemaker())
            .build(),
    );
    let described = sagemaker
        .describe_training_job()
        .training_job_name(job)
        .send()
        .await
        .unwrap();
    described.input_data_config()[0]
        .data_source()
        .unwrap()
        .s3_data_source()
        .unwrap()
        .s3_uri()
        .unwrap()
        .to_string()
}

/// Data a submitted job reads never changes under it: submit with --detach, change the data, submit
/// again; the first job's input is still the data its record's fingerprint names (its own prefix,
/// untouched), and each job trains on its own data.
#[tokio::test(flavor = "multi_thread")]
async fn a_submitted_jobs_data_never_changes_under_it() {
    let sandbox = Sandbox::new();
    sandbox.write("data/value.txt", "1");
    let task = remote_command_task(
        &sandbox,
        "remote-immutable",
        "import os\nv = open(os.path.join(os.environ['SM_CHANNEL_TRAINING'], 'value.txt')).read()\nprint(f'###METRIC###value:{v}###')\n",
        "metrics = [\"value\"]\n",
    );
    let toml = std::fs::read_to_string(&task).unwrap();
    std::fs::write(
        &task,
        format!("{toml}\n[channels]\ntraining = \"../data\"\n"),
    )
    .unwrap();
    let submit = || {
        let (output, answer) = grounds(
            &sandbox,
            &[
                "train",
                "remote",
                task.to_str().unwrap(),
                "--detach",
                "--json",
            ],
        );
        assert!(output.status.success(), "{}", both(&output));
        answer["id"].as_str().unwrap().to_string()
    };
    let first = submit();
    sandbox.write("data/value.txt", "2");
    let second = submit();
    let (first_uri, second_uri) = (input_uri(&first).await, input_uri(&second).await);
    assert_ne!(first_uri, second_uri, "two contents, two prefixes");
    let (bucket, prefix) = first_uri
        .strip_prefix("s3://")
        .unwrap()
        .split_once('/')
        .unwrap();
    let object = s3()
        .await
        .get_object()
        .bucket(bucket)
        .key(format!("{prefix}value.txt"))
        .send()
        .await
        .unwrap();
    let bytes = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(&bytes[..], b"1", "the first job's input changed under it");
    for (id, value) in [(&first, 1.0), (&second, 2.0)] {
        let (output, fetched) = grounds(&sandbox, &["results", "fetch", id, "--json"]);
        assert!(output.status.success(), "{}", both(&output));
        assert_eq!(fetched["metrics"]["value"], value, "{id}");
    }
}

/// `grounds cache list|clear --s3`: the data sets in the bucket, removed in batches (DeleteObjects takes
/// 1000 keys a call), except one a job in progress reads.
#[tokio::test(flavor = "multi_thread")]
async fn s3_data_sets_are_listed_and_cleared_except_what_a_running_job_reads() {
    let sandbox = Sandbox::new();
    sandbox.write("data/x.txt", "x");
    let task = remote_command_task(
        &sandbox,
        "remote-clear",
        "import time\ntime.sleep(30)\n",
        "",
    );
    // A bucket of its own: clearing it touches no other test's data.
    let toml = std::fs::read_to_string(&task)
        .unwrap()
        .replace("grounds-standin", "grounds-clear-bucket");
    std::fs::write(
        &task,
        format!("{toml}\n[channels]\ntraining = \"../data\"\n"),
    )
    .unwrap();
    let (output, running) = grounds(
        &sandbox,
        &[
            "train",
            "remote",
            task.to_str().unwrap(),
            "--detach",
            "--json",
        ],
    );
    assert!(output.status.success(), "{}", both(&output));
    let running_id = running["id"].as_str().unwrap().to_string();
    let read = input_uri(&running_id).await;
    // A large data set no job reads: 1,205 objects.
    let s3 = s3().await;
    let big = "0".repeat(64);
    let puts = (0..1205).map(|i| {
        let s3 = s3.clone();
        let key = format!("sagemaker/datasets/{big}/part-{i:05}");
        async move {
            s3.put_object()
                .bucket("grounds-clear-bucket")
                .key(key)
                .body(aws_sdk_s3::primitives::ByteStream::from_static(b"p"))
                .send()
                .await
                .unwrap();
        }
    });
    futures_util::future::join_all(puts).await;
    let cache = |args: &[&str]| {
        let mut all = vec!["cache"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--s3", "--bucket", "grounds-clear-bucket", "--json"]);
        grounds(&sandbox, &all)
    };
    let (output, listed) = cache(&["list"]);
    assert!(output.status.success(), "{}", both(&output));
    let data = listed["s3"]["data"].as_array().unwrap();
    let big_row = data.iter().find(|d| d["hash"] == big.as_str()).unwrap();
    assert_eq!(big_row["files"], 1205);
    let (output, cleared) = cache(&["clear", "--older-than", "0s"]);
    assert!(output.status.success(), "{}", both(&output));
    let removed: Vec<&str> = cleared["s3"]["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["hash"].as_str().unwrap())
        .collect();
    assert!(removed.contains(&big.as_str()), "{cleared}");
    let kept = cleared["s3"]["kept"].to_string();
    assert!(
        read.contains(&kept_hash(&cleared)) && kept.contains("in progress"),
        "{read}: {cleared}"
    );
    let left = s3
        .list_objects_v2()
        .bucket("grounds-clear-bucket")
        .prefix(format!("sagemaker/datasets/{big}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(left.key_count(), Some(0), "every batch was deleted");
    let (output, _) = grounds(&sandbox, &["stop", &running_id, "--json"]);
    assert!(output.status.success(), "{}", both(&output));
}

/// The hash of the first data set a clear kept.
fn kept_hash(cleared: &serde_json::Value) -> String {
    cleared["s3"]["kept"][0][0]
        .as_str()
        .unwrap_or("-")
        .to_string()
}

/// A data set's prefix is written once: an object there changed by hand is an error that names it, and
/// grounds never overwrites it (another job may be reading it).
#[tokio::test(flavor = "multi_thread")]
async fn a_data_sets_prefix_is_never_overwritten() {
    let sandbox = Sandbox::new();
    // Content of its own: data sets are shared by content, and this one is spoiled on purpose.
    sandbox.write("data/value.txt", "once");
    let task = remote_command_task(&sandbox, "remote-once", "print('ok')\n", "");
    let toml = std::fs::read_to_string(&task).unwrap();
    std::fs::write(
        &task,
        format!("{toml}\n[channels]\ntraining = \"../data\"\n"),
    )
    .unwrap();
    let task = task.to_str().unwrap();
    let (output, first) = grounds(&sandbox, &["train", "remote", task, "--detach", "--json"]);
    assert!(output.status.success(), "{}", both(&output));
    let first = first["id"].as_str().unwrap().to_string();
    let uri = input_uri(&first).await;
    let (bucket, prefix) = uri.strip_prefix("s3://").unwrap().split_once('/').unwrap();
    let key = format!("{prefix}value.txt");
    let s3 = s3().await;
    s3.put_object()
        .bucket(bucket)
        .key(&key)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"ONCE"))
        .send()
        .await
        .unwrap();
    let (output, _) = grounds(
        &sandbox,
        &["train", "remote", task, "--detach", "--force", "--json"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    let said = text(&output.stderr);
    assert!(
        said.contains("written once") && said.contains(&key),
        "{said}"
    );
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        &object.body.collect().await.unwrap().into_bytes()[..],
        b"ONCE"
    );
    let (output, _) = grounds(&sandbox, &["results", "fetch", &first, "--json"]);
    assert!(output.status.success(), "{}", both(&output));
}

/// The SageMaker SDK's `Framework` estimator (`sagemaker.pytorch.PyTorch`), asked to submit the same
/// entry point, source, hyperparameters, channel and instances: prints the CreateTrainingJob request it
/// would send (caught before it is sent) as JSON. Arguments: moto's URL, the source folder, the image,
/// the bucket, the channel's URI.
const SDK_FRAMEWORK: &str = r#"
import json, sys
import boto3, sagemaker
from sagemaker.pytorch import PyTorch
moto, source, image, bucket, channel = sys.argv[1:6]
session = boto3.session.Session(region_name="us-east-1", aws_access_key_id="testing",
                                aws_secret_access_key="testing")
client = session.client("sagemaker", endpoint_url=moto)
captured = {}
class Caught(Exception):
    pass
def catch(params, **_):
    captured.update(params)
    raise Caught()
client.meta.events.register("provide-client-params.sagemaker.CreateTrainingJob", catch)
sm = sagemaker.Session(boto_session=session, sagemaker_client=client, default_bucket=bucket)
sm.s3_client = session.client("s3", endpoint_url=moto)
sm.s3_resource = session.resource("s3", endpoint_url=moto)
estimator = PyTorch(entry_point="train.py", source_dir=source, image_uri=image,
    role="arn:aws:iam::123456789012:role/GroundsTestRole", instance_count=2,
    instance_type="ml.m5.large", sagemaker_session=sm,
    hyperparameters={"epochs": 3, "lr": 0.1, "optimizer": "adam", "layers": [1, 2]})
try:
    estimator.fit(inputs={"training": channel}, wait=False, logs=False)
except Caught:
    pass
print(json.dumps(captured, default=str))
"#;

/// The regular files of a `.tar.gz` in S3, by name, with their bytes.
async fn tarball_files(bucket: &str, uri: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
    let key = uri
        .trim_matches('"')
        .strip_prefix(&format!("s3://{bucket}/"))
        .unwrap_or_else(|| panic!("{uri} is not in {bucket}"))
        .to_string();
    let object = s3()
        .await
        .get_object()
        .bucket(bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    let bytes = object.body.collect().await.unwrap().into_bytes();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    let mut files = std::collections::BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type().is_file() {
            let name = entry
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string();
            let mut content = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
            files.insert(name, content);
        }
    }
    files
}

/// A framework task (the script on a framework image as it is): nothing is built or pushed; the source
/// goes to S3 as `sourcedir.tar.gz` laid out as the SDK lays it out, once per content; and the request
/// is the one the SDK's Framework estimator sends for the same inputs (the oracle, run against moto):
/// the same hyperparameters encoded as it encodes them, image, input mode, channels and instances.
#[tokio::test(flavor = "multi_thread")]
async fn a_framework_task_sends_what_the_sdks_framework_estimator_sends() {
    let sandbox = Sandbox::new();
    let bucket = "grounds-framework-bucket";
    let image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-cpu-py311";
    let s3 = s3().await;
    let _ = s3.create_bucket().bucket(bucket).send().await;
    s3.put_object()
        .bucket(bucket)
        .key("data/train.csv")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(
            b"a,b\n1,2\n",
        ))
        .send()
        .await
        .unwrap();
    let channel = format!("s3://{bucket}/data/");
    sandbox.write("fw/src/train.py", "import sys\nprint(sys.argv)\n");
    sandbox.write("fw/src/requirements.txt", "numpy\n");
    sandbox.write("fw/src/lib/helper.py", "HELP = 1\n");
    let task = sandbox.write(
        "fw/task.toml",
        &format!(
            "[task]\nname = \"fw-sdk\"\n[task.command]\nsource = \"src\"\nrun = [\"python3\", \"train.py\"]\n\
             requirements = \"src/requirements.txt\"\nframework_image = \"{image}\"\n\
             [channels]\ntraining = \"{channel}\"\n\
             [hyperparameters]\nepochs = 3\nlr = 0.1\noptimizer = \"adam\"\nlayers = [1, 2]\n\
             [remote]\nbucket = \"{bucket}\"\ninstance_type = \"ml.m5.large\"\ninstance_count = 2\n"
        ),
    );
    let submit = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "remote",
            task.to_str().unwrap(),
            "--detach",
            "--json",
        ];
        args.extend_from_slice(extra);
        let mut command = sandbox.command(&args);
        aws_env(&mut command, &sandbox);
        let output = command.env("GROUNDS_ROLE", ROLE).output().unwrap();
        assert!(output.status.success(), "{}", both(&output));
        let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        (answer, text(&output.stderr))
    };
    let (first, stderr) = tokio::task::block_in_place(|| submit(&[]));
    assert_eq!(first["submitted"]["pushed"], false, "{first}");
    assert!(
        !stderr.contains("Building") && !stderr.contains("Pushing"),
        "{stderr}"
    );
    assert_eq!(first["submitted"]["image"], image, "{first}");
    let sources = first["submitted"]["package"]["uri"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(sources.ends_with("/sourcedir.tar.gz"), "{first}");
    assert_eq!(first["submitted"]["package"]["uploaded"], true, "{first}");
    // The registry never heard of the task: no repository, no tag.
    let catalog = Command::new("python3")
        .args([
            "-c",
            "import json, sys, urllib.request\n\
             print(json.dumps(json.load(urllib.request.urlopen(sys.argv[1]))['repositories']))",
            &format!("http://{}/v2/_catalog", registry()),
        ])
        .output()
        .unwrap();
    assert!(catalog.status.success(), "{}", both(&catalog));
    assert!(
        !text(&catalog.stdout).contains("fw-sdk"),
        "{}",
        text(&catalog.stdout)
    );
    // Unchanged code uploads nothing.
    let (again, _) = tokio::task::block_in_place(|| submit(&["--force"]));
    assert_eq!(again["submitted"]["package"]["uri"], sources.as_str());
    assert_eq!(again["submitted"]["package"]["uploaded"], false, "{again}");

    // Attached, the same script runs through grounds' entry, given what the toolkit gives; locally it is
    // refused, saying what to do instead (not supported yet).
    let (attached, local) = tokio::task::block_in_place(|| {
        let run = |mode: &str| {
            let mut command = sandbox.command(&["train", mode, task.to_str().unwrap(), "--json"]);
            aws_env(&mut command, &sandbox);
            command.output().unwrap()
        };
        (run("attached"), run("local"))
    });
    assert!(attached.status.success(), "{}", both(&attached));
    assert!(
        text(&attached.stderr).contains("'--epochs', '3'")
            && text(&attached.stderr).contains("'--optimizer', 'adam'"),
        "{}",
        both(&attached)
    );
    assert_eq!(local.status.code(), Some(2), "{}", both(&local));
    assert!(
        text(&local.stderr).contains("not supported yet"),
        "{}",
        both(&local)
    );

    // What grounds sent, as SageMaker (the stand-in) holds it.
    let id = first["id"].as_str().unwrap();
    let sagemaker_client = aws_sdk_sagemaker::Client::from_conf(
        aws_sdk_sagemaker::config::Builder::from(&sdk().await)
            .endpoint_url(sagemaker())
            .build(),
    );
    let sent = sagemaker_client
        .describe_training_job()
        .training_job_name(id)
        .send()
        .await
        .unwrap();
    // What the SDK sends.
    let sdk_python = std::env::var("GROUNDS_TEST_SDK_PYTHON").unwrap_or_else(|_| {
        panic!("GROUNDS_TEST_SDK_PYTHON is not set: run with tests/services.sh")
    });
    let source = task.parent().unwrap().join("src");
    let oracle = tokio::task::block_in_place(|| {
        Command::new(sdk_python)
            .args([
                "-c",
                SDK_FRAMEWORK,
                &moto(),
                source.to_str().unwrap(),
                image,
                bucket,
                &channel,
            ])
            .env("SAGEMAKER_TELEMETRY_DISABLED", "1")
            .output()
            .unwrap()
    });
    assert!(oracle.status.success(), "{}", both(&oracle));
    let expected: serde_json::Value = serde_json::from_slice(
        text(&oracle.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .as_bytes(),
    )
    .unwrap_or_else(|e| panic!("{e}: {}", both(&oracle)));

    // HyperParameters: every one the SDK sends, encoded alike; the job's name and the source's place are
    // the job's own.
    let ours = sent.hyper_parameters().cloned().unwrap_or_default();
    let theirs = expected["HyperParameters"].as_object().unwrap();
    let names = |keys: Vec<&String>| {
        keys.into_iter()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        names(ours.keys().collect()),
        names(theirs.keys().collect()),
        "{ours:?} vs {theirs:?}"
    );
    for (name, value) in theirs {
        match name.as_str() {
            "sagemaker_job_name" => assert_eq!(ours[name], format!("\"{id}\"")),
            "sagemaker_submit_directory" => assert_eq!(ours[name], format!("\"{sources}\"")),
            _ => assert_eq!(ours[name], value.as_str().unwrap(), "{name}"),
        }
    }
    let algorithm = sent.algorithm_specification().unwrap();
    assert_eq!(
        algorithm.training_image().unwrap_or_default(),
        expected["AlgorithmSpecification"]["TrainingImage"]
    );
    assert_eq!(
        algorithm.training_input_mode().unwrap().as_str(),
        expected["AlgorithmSpecification"]["TrainingInputMode"]
    );
    let channels: Vec<(String, String, String, String)> = sent
        .input_data_config()
        .iter()
        .map(|c| {
            let s3 = c.data_source().unwrap().s3_data_source().unwrap();
            (
                c.channel_name().unwrap_or_default().to_string(),
                s3.s3_uri().unwrap_or_default().to_string(),
                s3.s3_data_type()
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_default(),
                s3.s3_data_distribution_type()
                    .map(|d| d.as_str().to_string())
                    .unwrap_or_default(),
            )
        })
        .collect();
    let their_channels: Vec<(String, String, String, String)> = expected["InputDataConfig"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let s3 = &c["DataSource"]["S3DataSource"];
            (
                c["ChannelName"].as_str().unwrap().to_string(),
                s3["S3Uri"].as_str().unwrap().to_string(),
                s3["S3DataType"].as_str().unwrap().to_string(),
                s3["S3DataDistributionType"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(channels, their_channels);
    let resources = sent.resource_config().unwrap();
    assert_eq!(
        resources.instance_type().unwrap().as_str(),
        expected["ResourceConfig"]["InstanceType"]
    );
    assert_eq!(
        resources.instance_count().unwrap_or_default(),
        expected["ResourceConfig"]["InstanceCount"]
    );
    assert_eq!(
        resources.volume_size_in_gb().unwrap_or_default(),
        expected["ResourceConfig"]["VolumeSizeInGB"]
    );
    // The source archives hold the same files, laid out alike.
    let their_sources = theirs["sagemaker_submit_directory"]
        .as_str()
        .unwrap()
        .trim_matches('"');
    let ours_files = tarball_files(bucket, &sources).await;
    let their_files = tarball_files(bucket, their_sources).await;
    assert_eq!(
        ours_files.keys().collect::<Vec<_>>(),
        their_files.keys().collect::<Vec<_>>()
    );
    assert_eq!(ours_files, their_files);
    assert!(ours_files.contains_key("train.py") && ours_files.contains_key("lib/helper.py"));
}
