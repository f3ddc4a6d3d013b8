//! `grounds train remote` against moto's real S3, ECR, SageMaker, CloudWatch Logs and STS endpoints and a
//! real registry server, all started by `make test` (tests/services.sh).
//!
//! moto accepts CreateTrainingJob and calls the job Completed at once without running anything, so the
//! end-to-end test plays SageMaker's part: it runs the pushed image on the channels from S3, uploads the
//! model where SageMaker would, and writes the job's output as CloudWatch log events.

mod common;

use std::path::Path;
use std::process::Command;

use common::{both, fixture, text, Sandbox, ZipFile};

const REGION: &str = "us-east-1";
const ROLE: &str = "arn:aws:iam::123456789012:role/GroundsTestRole";

fn moto() -> String {
    std::env::var("GROUNDS_TEST_MOTO")
        .expect("GROUNDS_TEST_MOTO is set by `make test` (tests/services.sh)")
}

fn registry() -> String {
    std::env::var("GROUNDS_TEST_REGISTRY")
        .expect("GROUNDS_TEST_REGISTRY is set by `make test` (tests/services.sh)")
}

/// The environment of a user pointed at moto, with no other AWS configuration to find.
fn aws_env(command: &mut Command, sandbox: &Sandbox) {
    command
        .env("AWS_ENDPOINT_URL", moto())
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

#[tokio::test(flavor = "multi_thread")]
async fn a_detached_job_is_fetched_after_sagemaker_ran_it() {
    let sandbox = Sandbox::new();
    sandbox.write(".env", &format!("AWS_ROLE={ROLE}\n"));
    let task = titanic_task(&sandbox, "remote-e2e", "grounds-e2e-bucket");
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
    assert_eq!(submitted["submitted"]["pushed"], true);
    assert_eq!(submitted["submitted"]["uploads"]["uploaded"], 1);
    let id = submitted["id"].as_str().unwrap().to_string();
    let image = submitted["submitted"]["image"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        image.starts_with(&format!("{}/grounds/remote-e2e:", registry())),
        "{image}"
    );

    // What moto recorded of the request.
    let sagemaker = aws_sdk_sagemaker::Client::new(&sdk().await);
    let described = sagemaker
        .describe_training_job()
        .training_job_name(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described
            .algorithm_specification()
            .unwrap()
            .training_image(),
        Some(image.as_str())
    );
    assert_eq!(described.role_arn(), Some(ROLE));
    let channel = &described.input_data_config()[0];
    assert_eq!(channel.channel_name(), Some("training"));
    let channel_uri = channel
        .data_source()
        .unwrap()
        .s3_data_source()
        .unwrap()
        .s3_uri()
        .unwrap()
        .to_string();
    assert_eq!(
        channel_uri,
        "s3://grounds-e2e-bucket/sagemaker/remote-e2e/datasets/training/"
    );
    assert_eq!(described.hyper_parameters().unwrap()["max_iter"], "200");
    assert_eq!(
        described.output_data_config().unwrap().s3_output_path(),
        Some("s3://grounds-e2e-bucket/sagemaker/remote-e2e/output/")
    );
    // moto 5 answers DescribeTrainingJob with fixed MetricDefinitions of its own, so the ones grounds sends
    // are checked in the dry-run test instead.

    // Play SageMaker: the channel from S3, the image from the registry, /opt/ml laid out by hand.
    let s3 = s3().await;
    let root = sandbox.path().join("sagemaker-root");
    std::fs::create_dir_all(root.join("input/config")).unwrap();
    std::fs::create_dir_all(root.join("input/data/training")).unwrap();
    let object = s3
        .get_object()
        .bucket("grounds-e2e-bucket")
        .key("sagemaker/remote-e2e/datasets/training/titanic.csv")
        .send()
        .await
        .unwrap();
    let bytes = object.body.collect().await.unwrap().into_bytes();
    std::fs::write(root.join("input/data/training/titanic.csv"), &bytes).unwrap();
    std::fs::write(
        root.join("input/config/hyperparameters.json"),
        r#"{"max_iter": "200"}"#,
    )
    .unwrap();
    std::fs::write(
        root.join("input/config/inputdataconfig.json"),
        r#"{"training": {"TrainingInputMode": "File"}}"#,
    )
    .unwrap();
    std::fs::write(
        root.join("input/config/resourceconfig.json"),
        r#"{"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}"#,
    )
    .unwrap();
    // The image comes from the registry, not from what the build left in the engine.
    let _ = docker(&["rmi", &image]);
    let pulled = docker(&["pull", &image]);
    assert!(pulled.status.success(), "{}", both(&pulled));
    let mount = format!("{}:/opt/ml", root.display());
    let ran = docker(&["run", "--rm", "-v", &mount, &image, "train"]);
    assert!(ran.status.success(), "{}", both(&ran));
    let _ = docker(&["rmi", &image]);

    let mut model_tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    model_tar.append_dir_all(".", root.join("model")).unwrap();
    let gz = model_tar.into_inner().unwrap().finish().unwrap();
    s3.put_object()
        .bucket("grounds-e2e-bucket")
        .key(format!(
            "sagemaker/remote-e2e/output/{id}/output/model.tar.gz"
        ))
        .body(gz.into())
        .send()
        .await
        .unwrap();
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk().await);
    let _ = logs
        .create_log_group()
        .log_group_name("/aws/sagemaker/TrainingJobs")
        .send()
        .await;
    let stream = format!("{id}/algo-1-1763800000");
    logs.create_log_stream()
        .log_group_name("/aws/sagemaker/TrainingJobs")
        .log_stream_name(&stream)
        .send()
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let events: Vec<_> = text(&ran.stdout)
        .lines()
        .enumerate()
        .map(|(i, line)| {
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(now + i as i64)
                .message(line)
                .build()
                .unwrap()
        })
        .collect();
    logs.put_log_events()
        .log_group_name("/aws/sagemaker/TrainingJobs")
        .log_stream_name(&stream)
        .set_log_events(Some(events))
        .send()
        .await
        .unwrap();

    // Now grounds brings it home.
    let (output, fetched) = grounds(
        &sandbox,
        &["results", "fetch", &id[..id.len() - 2], "--json"],
    );
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(fetched["status"], "Completed");
    let auc = fetched["metrics"]["roc_auc_score_test"].as_f64().unwrap();
    assert!((auc - 0.854).abs() < 0.01, "{auc}");
    let mut zip = ZipFile::open(Path::new(fetched["result"].as_str().unwrap()));
    let names = zip.names();
    for name in [
        "job.json",
        "package.zip",
        "metrics.json",
        "logs.txt",
        "model/model.json",
        "model/result_df.parquet",
    ] {
        assert!(names.contains(&name.to_string()), "{name} in {names:?}");
    }
    assert_eq!(zip.json("job.json")["status"], "Completed");
    assert!(zip
        .read("logs.txt")
        .contains("algo-1 | [single-frame] stage save"));
    let (_, listed) = sandbox.json(&["results", "list"]);
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "fetch replaced the InProgress result"
    );

    // A second run of the unchanged job uploads nothing and pushes nothing.
    let (output, again) = grounds(
        &sandbox,
        &[
            "train",
            "remote",
            task.to_str().unwrap(),
            "--detach",
            "--json",
            // Without it the completed twin would be reused: here the upload and push are checked.
            "--force",
        ],
    );
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(again["submitted"]["pushed"], false);
    assert_eq!(again["submitted"]["uploads"]["uploaded"], 0);
    assert_eq!(again["submitted"]["uploads"]["unchanged"], 1);
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
    assert_eq!(
        request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"],
        "s3://grounds-dry-bucket/sagemaker/remote-dry/datasets/training/"
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
            vec!["AWS_ENDPOINT_URL"],
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
        text(&output.stderr).contains("cannot be created"),
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
    assert_eq!(names, ["C05", "C1"]);
    let sagemaker = aws_sdk_sagemaker::Client::new(&sdk().await);
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
