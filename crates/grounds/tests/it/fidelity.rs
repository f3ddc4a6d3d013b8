//! SageMaker fidelity, checked against AWS's reference implementation where there is one: the
//! sagemaker-training toolkit (installed by tests/services.sh) says what a program should be given, and
//! grounds must give exactly that.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{both, text, Sandbox, ZipFile};
use serde_json::Value;

/// A Python that imports sagemaker_training (tests/services.sh installs it).
fn toolkit_python() -> String {
    std::env::var("GROUNDS_TEST_TOOLKIT_PYTHON").unwrap_or_else(|_| {
        panic!("GROUNDS_TEST_TOOLKIT_PYTHON is not set: run the tests with tests/services.sh (make test)")
    })
}

/// Asks the toolkit what it would give this process and compares with what it was given. Every
/// difference goes to output/data/differences.json; the exit code says whether there was one.
const ORACLE: &str = r####"
import json, os, sys
given = dict(os.environ)
given_args = sys.argv[1:]
# The toolkit learns the entry point from SAGEMAKER_PROGRAM (or the sagemaker_program hyperparameter).
os.environ["SAGEMAKER_PROGRAM"] = os.path.basename(sys.argv[0])
from sagemaker_training import environment
env = environment.Environment()
expected = env.to_env_vars()
# Building the Environment sets these in the toolkit's own environment, which its child inherits.
for name in ["CURRENT_HOST", "SAGEMAKER_JOB_NAME", "SAGEMAKER_REGION"]:
    expected[name] = os.environ.get(name)
differences = []
for name, value in sorted(expected.items()):
    if given.get(name) != value:
        differences.append({"name": name, "toolkit": value, "grounds": given.get(name)})
for name in sorted(given):
    if name.startswith("SM_") and name not in expected:
        differences.append({"name": name, "toolkit": None, "grounds": given[name]})
expected_args = env.to_cmd_args()
if given_args != expected_args:
    differences.append({"name": "argv", "toolkit": expected_args, "grounds": given_args})
path = given.get("PYTHONPATH", "").split(":")
if path[0] != environment.code_dir:
    differences.append({"name": "PYTHONPATH", "toolkit": environment.code_dir + ":...", "grounds": given.get("PYTHONPATH")})
out = os.path.join(given["SM_OUTPUT_DATA_DIR"], "differences.json")
json.dump({"compared": len(expected) + 2, "differences": differences}, open(out, "w"), indent=1)
print("###METRIC###differences:%d###" % len(differences))
sys.exit(1 if differences else 0)
"####;

/// Hyperparameters chosen to break every shortcut: Python's float repr, exact big integers, NaN and
/// infinities (SageMaker passes them, the toolkit decodes them to floats), nested tables, quotes, Unicode, JSON inside strings, one-letter and dashed names, names the toolkit keeps
/// for itself, and a `file` that once clashed with a variable of grounds'.
const TRICKY: &str = r####"
[hyperparameters]
lr = 1e-5
tiny = 3e-6
big = 1e16
huge = 1.5e300
neg_zero = -0.0
count = 0
negative = -5
flag = true
off = false
k = "single letter"
"with-dash" = "v"
file = "x.csv"
nested = { b = { x = 1, y = [1, 2.5] }, a = "z" }
quotes = ["it's", "plain", 'say "hi"', "both ' and \""]
unicode = "héllo ✓ 😀 \u00a0 \u200b"
bigint = "1180591620717411303424"
spaced = " 12 "
nan_in_list = "[NaN, 1]"
inf_in_dict = "{\"b\": -Infinity, \"a\": Infinity}"
nullish = "null"
quoted = "\"quoted\""
not_json = "01"
float_text = "1.0"
exp_text = "1E5"
empty = ""
tab = "a\tb"
json_list = "[1, \"two\", {\"three\": [3.0]}]"
sagemaker_region = "eu-west-1"
sagemaker_job_name = "the-job"
sagemaker_custom_flag = "yes"
sagemaker_mpi_enabled = false
_tuning_objective_metric = "loss"
not_a_number = nan
plus_inf = inf
minus_inf = -inf
inf_text = "Infinity"
overflow_text = "1e400"
list_nan = [0.1, nan, -inf]

[channels]
training = "data/train"
validation-set = "data/valid.csv"
"a.b" = "data/other"
"####;

fn oracle_task(sandbox: &Sandbox, name: &str) -> PathBuf {
    sandbox.write(&format!("{name}/src/oracle.py"), ORACLE);
    sandbox.write(&format!("{name}/data/train/t.csv"), "a\n1\n");
    sandbox.write(&format!("{name}/data/valid.csv"), "a\n2\n");
    sandbox.write(&format!("{name}/data/other/o.txt"), "o");
    sandbox.write(
        &format!("{name}/task.toml"),
        &format!(
            "[task]\nname = \"{name}\"\n[task.command]\nsource = \"src\"\nrun = [\"{}\", \"oracle.py\"]\n{TRICKY}",
            toolkit_python()
        ),
    )
}

/// `train MODE TASK --dry-run EXTRA...`, which must succeed: the plan.
fn dry_run(sandbox: &Sandbox, mode: &str, task: &str, extra: &[&str]) -> Value {
    let mut args = vec!["train", mode, task, "--dry-run"];
    args.extend_from_slice(extra);
    let output = sandbox.run(&args);
    assert!(output.status.success(), "{}", both(&output));
    serde_json::from_slice::<Value>(&output.stdout).unwrap()
}

fn differences(json: &Value) -> String {
    serde_json::to_string_pretty(&json["differences"]).unwrap()
}

#[test]
fn a_program_gets_exactly_what_the_toolkit_would_give_it() {
    let sandbox = Sandbox::new();
    let task = oracle_task(&sandbox, "oracle");
    let (output, answer) = sandbox.json(&["train", "attached", task.to_str().unwrap()]);
    let result = answer["result"].as_str().unwrap_or_default();
    let mut zip = ZipFile::open(Path::new(result));
    let report = zip.json("output/data/differences.json");
    assert!(
        output.status.success(),
        "differences from the toolkit:\n{}\n{}",
        differences(&report),
        both(&output)
    );
    assert!(report["compared"].as_u64().unwrap() > 60, "{report}");
    assert_eq!(answer["metrics"]["differences"], 0.0);
}

#[test]
fn hosts_groups_and_topology_as_sagemaker_writes_them_reach_the_program_as_the_toolkit_reads_them()
{
    // A root laid out by hand as SageMaker lays it out for a heterogeneous cluster, run by the entry.
    let sandbox = Sandbox::new();
    let task = oracle_task(&sandbox, "oracle-root");
    let (_, answer) = sandbox.json(&["train", "attached", task.to_str().unwrap()]);
    let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
    let package = sandbox.path().join("package.zip");
    {
        let mut entry = zip.0.by_name("package.zip").unwrap();
        let mut file = std::fs::File::create(&package).unwrap();
        std::io::copy(&mut entry, &mut file).unwrap();
    }
    let root = sandbox.path().join("root");
    let config = root.join("input/config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::create_dir_all(root.join("input/data/train")).unwrap();
    std::fs::write(
        config.join("hyperparameters.json"),
        r#"{"epochs": "3", "sagemaker_distribution_instance_groups": "[\"gpus\"]", "lr": "0.1"}"#,
    )
    .unwrap();
    std::fs::write(
        config.join("inputdataconfig.json"),
        r#"{"train": {"ContentType": "text/csv", "TrainingInputMode": "File", "S3DistributionType": "ShardedByS3Key", "RecordWrapperType": "None"}}"#,
    )
    .unwrap();
    std::fs::write(
        config.join("resourceconfig.json"),
        r#"{"current_host": "algo-2", "current_instance_type": "ml.p4d.24xlarge", "current_group_name": "gpus",
            "hosts": ["algo-1", "algo-2", "algo-3"], "network_interface_name": "ethwe",
            "instance_groups": [
              {"instance_group_name": "cpus", "instance_type": "ml.c5.xlarge", "hosts": ["algo-1"]},
              {"instance_group_name": "gpus", "instance_type": "ml.p4d.24xlarge", "hosts": ["algo-2", "algo-3"]}],
            "topology": [{"hostName": "algo-2", "capacityUnitId": "cu-1"}, {"hostName": "algo-3", "capacityUnitId": "cu-1"}]}"#,
    )
    .unwrap();
    let output = Command::new(crate::common::entry_bin("grounds-entry"))
        .args([
            "--root",
            root.to_str().unwrap(),
            "--package",
            package.to_str().unwrap(),
        ])
        .env("TRAINING_JOB_NAME", "hetero-job")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(
        &std::fs::read(root.join("output/data/differences.json")).unwrap_or_default(),
    )
    .unwrap_or(Value::Null);
    assert!(
        output.status.success(),
        "differences from the toolkit:\n{}\n{}",
        differences(&report),
        both(&output)
    );
    assert!(text(&output.stdout).contains("###METRIC###differences:0###"));
}

/// A script that reports metrics as SageMaker examples do: in its own words, read by regexes.
const WORDY: &str = r####"
for step, ae in enumerate([0.9, 0.8, 0.71]):
    print("step %d AE-at-50th-percentile: %s" % (step, ae))
print("validation: loss=1.5e-3; acc=0.93")
"####;

const WORDY_METRICS: &str = r#"[metrics]
ae50 = "AE-at-50th-percentile: ([0-9.]+)"
"validation:loss" = "loss=([-+0-9.eE]+);"
"#;

fn assert_wordy_metrics(answer: &Value) {
    assert_eq!(answer["status"], "Completed", "{answer}");
    assert_eq!(answer["metrics"]["ae50"], 0.71);
    assert_eq!(answer["metrics"]["validation:loss"], 0.0015);
    let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
    let metrics = zip.json("metrics.json");
    assert_eq!(metrics["ae50"]["series"].as_array().unwrap().len(), 3);
}

#[test]
fn metric_regexes_are_parsed_in_every_mode() {
    let sandbox = Sandbox::new();
    let attached = sandbox.command_task("wordy", WORDY, WORDY_METRICS);
    let (output, answer) = sandbox.json(&["train", "attached", attached.to_str().unwrap()]);
    assert!(output.status.success(), "{}", both(&output));
    assert_wordy_metrics(&answer);
    let local = sandbox.command_task(
        "wordy-local",
        WORDY,
        &format!(
            "{WORDY_METRICS}[container]\nbase_image = \"{}\"\n",
            crate::common::PYTHON_BASE
        ),
    );
    let (output, answer) = sandbox.json(&["train", "local", local.to_str().unwrap()]);
    assert!(output.status.success(), "{}", both(&output));
    assert_wordy_metrics(&answer);
}

#[test]
fn bad_metric_definitions_are_refused_naming_the_line() {
    let sandbox = Sandbox::new();
    for (metrics, expected) in [
        ("x = \"([0-9\"", "does not compile"),
        ("x = \"no group here\"", "0 capturing groups"),
        ("x = \"(a)(b)\"", "2 capturing groups"),
        (&format!("x = \"({})\"", "a".repeat(500)), "1 to 500"),
    ] {
        let task = sandbox.command_task(
            "badmetric",
            "print(1)\n",
            &format!("[metrics]\n{metrics}\n"),
        );
        let output = sandbox.run(&["train", "attached", task.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(2), "{}", both(&output));
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("task.toml:8:") && stderr.contains(expected),
            "{stderr}"
        );
    }
    let many: String = (0..41)
        .map(|i| format!("m{i} = \"v{i}=([0-9]+)\"\n"))
        .collect();
    let task = sandbox.command_task("badmetric", "print(1)\n", &format!("[metrics]\n{many}"));
    let output = sandbox.run(&["train", "attached", task.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    assert!(
        text(&output.stderr).contains("at most 40"),
        "{}",
        both(&output)
    );
}

#[test]
fn fingerprints_cover_what_runs_hosts_image_and_entry() {
    let sandbox = Sandbox::new();
    let titanic = crate::common::fixture("titanic/task.toml");
    let task = titanic.to_str().unwrap();
    let (output, first) = sandbox.json(&["train", "local", task, "--quiet"]);
    assert!(output.status.success(), "{}", both(&output));
    let id = first["id"].as_str().unwrap();
    let plan = |extra: &[&str]| dry_run(&sandbox, "local", task, extra);
    assert_eq!(plan(&[])["reuses"], id);
    let two = plan(&["--instance-count", "2"]);
    assert_eq!(
        two["reuses"],
        Value::Null,
        "two hosts are another run than one"
    );
    assert_ne!(two["fingerprint"], first["fingerprint"]);
    // Another entry binary makes another image, so another run.
    let copy = crate::common::copy_of_grounds(&sandbox.path().join("another-build"));
    let entry = copy.with_file_name("grounds-entry");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&entry)
        .unwrap();
    std::io::Write::write_all(&mut file, b"\0another build").unwrap();
    drop(file);
    let other_entry = plan(&["--entry-binary", entry.to_str().unwrap()]);
    assert_eq!(other_entry["reuses"], Value::Null);
    // Attached: another build of the entry runs again.
    let (output, attached) = sandbox.json(&["train", "attached", task, "--quiet"]);
    assert!(output.status.success(), "{}", both(&output));
    let mut again = Command::new(&copy);
    again
        .args(["train", "attached", task, "--dry-run"])
        .current_dir(sandbox.path())
        .env("GROUNDS_HOME", sandbox.home());
    let output = again.output().unwrap();
    assert!(output.status.success(), "{}", both(&output));
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["reuses"], Value::Null, "{}", attached["id"]);
}

#[test]
fn gpus_are_asked_of_the_engine_or_refused_before_anything_runs() {
    let sandbox = Sandbox::new();
    let script = "import os\nprint('###METRIC###gpus:%s###' % os.environ['SM_NUM_GPUS'])\n";
    let base = format!(
        "[container]\nbase_image = \"{}\"\n",
        crate::common::PYTHON_BASE
    );
    let task = sandbox.command_task("gpu", script, &base);
    let task = task.to_str().unwrap();
    let plan = |extra: &[&str]| dry_run(&sandbox, "local", task, extra);
    let without = plan(&[]);
    let all = plan(&["--gpus", "all"]);
    assert_eq!(all["containers"]["gpus"], "all");
    assert_eq!(plan(&["--gpus", "2"])["containers"]["gpus"], "2");
    assert_eq!(without["containers"]["gpus"], Value::Null);
    assert_ne!(
        all["fingerprint"], without["fingerprint"],
        "GPUs change what runs"
    );
    for bad in ["0", "many"] {
        let output = sandbox.run(&["train", "local", task, "--gpus", bad]);
        assert_eq!(output.status.code(), Some(2), "{}", both(&output));
        assert!(text(&output.stderr).contains("--gpus"), "{}", both(&output));
    }
    let offered =
        crate::common::docker(&["info", "--format", "{{json .Runtimes}}"]).contains("nvidia");
    if !offered {
        // This machine has no GPU runtime: asking for GPUs is refused before anything is built or run.
        let output = sandbox.run(&["train", "local", task, "--gpus", "all"]);
        assert_eq!(output.status.code(), Some(2), "{}", both(&output));
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("no GPU runtime") && !stderr.contains("Building"),
            "{stderr}"
        );
        assert!(sandbox.result_zips().is_empty());
        // A GPU instance type runs on the CPU, and says so.
        let typed = sandbox.command_task(
            "gpu-typed",
            script,
            &format!("{base}[remote]\ninstance_type = \"ml.g4dn.xlarge\"\n"),
        );
        let (output, answer) = sandbox.json(&["train", "local", typed.to_str().unwrap()]);
        assert!(output.status.success(), "{}", both(&output));
        assert!(
            text(&output.stderr).contains("uses the CPU only"),
            "{}",
            both(&output)
        );
        assert_eq!(answer["metrics"]["gpus"], 0.0);
    }
}

/// A training image of the user's own, as bring-your-own-container users write them: `train` on PATH
/// reads the /opt/ml contract itself.
const BYO_TRAIN: &str = r####"#!/usr/bin/env python3
import json, os, sys
hp = json.load(open("/opt/ml/input/config/hyperparameters.json"))
rc = json.load(open("/opt/ml/input/config/resourceconfig.json"))
files = sorted(os.listdir("/opt/ml/input/data/training"))
if hp.get("fail") == "yes":
    open("/opt/ml/output/failure", "w").write("BYO failure: asked to fail")
    sys.exit(3)
open("/opt/ml/model/model.txt", "w").write("epochs=%s files=%s host=%s version=%s" % (
    hp["epochs"], ",".join(files), rc["current_host"], os.environ.get("BYO_VERSION")))
print("###METRIC###accuracy:0.875###")
print("loss: 0.25")
"####;

fn build_byo_image(tag: &str, version: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train"), BYO_TRAIN).unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!(
            "FROM {}\nCOPY train /usr/local/bin/train\nRUN chmod 755 /usr/local/bin/train\nENV BYO_VERSION={version}\n",
            crate::common::PYTHON_BASE
        ),
    )
    .unwrap();
    crate::common::docker(&["build", "-q", "-t", tag, dir.path().to_str().unwrap()]);
}

#[test]
fn an_image_of_ones_own_runs_as_sagemaker_runs_it() {
    let sandbox = Sandbox::new();
    let tag = format!("grounds-test/byo:{}", std::process::id());
    build_byo_image(&tag, "1");
    sandbox.write("byo/data/a.csv", "x\n1\n");
    sandbox.write("byo/data/b.csv", "x\n2\n");
    let task = sandbox.write(
        "byo/task.toml",
        &format!(
            "[task]\nname = \"byo\"\n[task.image]\nuri = \"{tag}\"\n[channels]\ntraining = \"data\"\n\
             [hyperparameters]\nepochs = 3\n[metrics]\nloss = \"loss: ([0-9.]+)\"\n"
        ),
    );
    let task = task.to_str().unwrap();
    let (output, answer) = sandbox.json(&["train", "local", task]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(answer["status"], "Completed");
    assert_eq!(answer["metrics"]["accuracy"], 0.875);
    assert_eq!(answer["metrics"]["loss"], 0.25);
    let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
    assert_eq!(
        zip.read("model/model.txt"),
        "epochs=3 files=a.csv,b.csv host=algo-1 version=1"
    );
    assert!(
        !zip.read("logs.txt").contains("[grounds-entry]"),
        "no grounds entry in the image"
    );
    crate::common::assert_nothing_left(answer["id"].as_str().unwrap());

    // Its own failure, with its own reason.
    let (output, failed) = sandbox.json(&["train", "local", task, "--hp", "fail=yes"]);
    assert_eq!(output.status.code(), Some(1), "{}", both(&output));
    assert_eq!(failed["status"], "Failed");
    assert_eq!(failed["exit_code"], 3);
    assert!(failed["failure_reason"]
        .as_str()
        .unwrap()
        .contains("BYO failure"));

    // The image's content is in the fingerprint: the same name, rebuilt, is another run.
    let plan = |sandbox: &Sandbox| dry_run(sandbox, "local", task, &[]);
    assert_eq!(plan(&sandbox)["reuses"], answer["id"]);
    build_byo_image(&tag, "2");
    assert_eq!(plan(&sandbox)["reuses"], Value::Null);

    // Attached cannot run it; a missing image is named before anything runs.
    let output = sandbox.run(&["train", "attached", task]);
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    assert!(
        text(&output.stderr).contains("cannot run attached"),
        "{}",
        both(&output)
    );
    crate::common::docker(&["rmi", "-f", &tag]);
    let output = sandbox.run(&["train", "local", task, "--force"]);
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    assert!(
        text(&output.stderr).contains("is not in the local Docker engine"),
        "{}",
        both(&output)
    );
}

const BUCKET: &str = "grounds-s3-channels";

/// A user pointed at moto, with no other AWS configuration to find.
fn with_moto(command: &mut Command, sandbox: &Sandbox) {
    let moto = crate::common::service("GROUNDS_TEST_MOTO");
    command
        .env("AWS_ENDPOINT_URL", moto)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", sandbox.path().join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            sandbox.path().join("no-aws-credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE");
}

fn put_objects(objects: &[(&str, &str)]) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let moto = std::env::var("GROUNDS_TEST_MOTO").unwrap();
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(moto)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .load()
            .await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        );
        let _ = s3.create_bucket().bucket(BUCKET).send().await;
        for (key, body) in objects {
            s3.put_object()
                .bucket(BUCKET)
                .key(*key)
                .body(body.as_bytes().to_vec().into())
                .send()
                .await
                .unwrap();
        }
    });
}

fn grounds_on_moto(sandbox: &Sandbox, args: &[&str]) -> (std::process::Output, Value) {
    let mut command = sandbox.command(args);
    with_moto(&mut command, sandbox);
    let output = command.output().unwrap();
    let answer = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (output, answer)
}

#[test]
fn s3_channels_are_downloaded_once_and_their_etags_decide_reuse() {
    let sandbox = Sandbox::new();
    let prefix = format!("runs-{}/data", std::process::id());
    put_objects(&[
        (&format!("{prefix}/a.csv"), "a\n1\n"),
        (&format!("{prefix}/nested/b.csv"), "b\n2\n"),
        (&format!("{prefix}-elsewhere/c.csv"), "not in the channel"),
    ]);
    let script = "import os\nroot = os.environ['SM_CHANNEL_TRAINING']\nfor d, _, fs in sorted(os.walk(root)):\n    for f in sorted(fs):\n        p = os.path.join(d, f)\n        print('FILE', os.path.relpath(p, root), open(p).read().split()[1])\nprint('###METRIC###files:%d###' % sum(len(fs) for _, _, fs in os.walk(root)))\n";
    let channel = format!("s3://{BUCKET}/{prefix}");
    let task = sandbox.command_task(
        "s3chan",
        script,
        &format!(
            "[channels]\ntraining = \"{channel}\"\n[container]\nbase_image = \"{}\"\n",
            crate::common::PYTHON_BASE
        ),
    );
    let task = task.to_str().unwrap();

    let (output, first) = grounds_on_moto(&sandbox, &["train", "attached", task, "--json"]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(first["metrics"]["files"], 2.0);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("FILE a.csv 1") && stderr.contains("FILE nested/b.csv 2"),
        "{stderr}"
    );
    assert!(stderr.contains("Downloading"), "{stderr}");
    let mut zip = ZipFile::open(Path::new(first["result"].as_str().unwrap()));
    assert_eq!(
        zip.json("job.json")["channels"]["training"],
        channel,
        "the result names the source"
    );

    // Unchanged: reused; forced: run again from the cache, nothing downloaded.
    let (_, again) = grounds_on_moto(&sandbox, &["train", "attached", task, "--json"]);
    assert_eq!(again["reused"], true, "{again}");
    let (output, local) = grounds_on_moto(&sandbox, &["train", "local", task, "--json"]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(local["metrics"]["files"], 2.0);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("Cached") && !stderr.contains("Downloading"),
        "{stderr}"
    );

    // One object changes: another run, and only that object is fetched again.
    put_objects(&[(&format!("{prefix}/a.csv"), "a\n9\n")]);
    let (output, changed) = grounds_on_moto(&sandbox, &["train", "attached", task, "--json"]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(changed["reused"], false);
    assert_ne!(changed["fingerprint"], first["fingerprint"]);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("1 of 2 object(s)") && stderr.contains("FILE a.csv 9"),
        "{stderr}"
    );

    // A prefix that holds nothing is a clear error before anything runs.
    let empty = sandbox.command_task(
        "s3empty",
        "print(1)\n",
        &format!("[channels]\ntraining = \"s3://{BUCKET}/nothing-here/\"\n"),
    );
    let (output, _) = grounds_on_moto(&sandbox, &["train", "attached", empty.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    assert!(
        text(&output.stderr).contains("holds no objects"),
        "{}",
        both(&output)
    );
}

#[test]
fn a_job_may_write_into_its_channels_and_the_users_files_stay_as_they_were() {
    let sandbox = Sandbox::new();
    sandbox.write("data/a.csv", "original\n");
    sandbox.write("data/nested/b.csv", "keep me\n");
    sandbox.write("single.csv", "single\n");
    let script = "import os\nd = os.environ['SM_CHANNEL_TRAINING']\nopen(os.path.join(d, 'a.csv'), 'w').write('rewritten\\n')\nos.remove(os.path.join(d, 'nested', 'b.csv'))\nos.makedirs(os.path.join(d, 'unpacked'))\nopen(os.path.join(d, 'unpacked', 'x.bin'), 'w').write('x')\ns = os.environ['SM_CHANNEL_SINGLE']\nopen(os.path.join(s, 'single.csv'), 'a').write('more\\n')\nprint('###METRIC###wrote:1###')\n";
    let extra = format!(
        "[channels]\ntraining = \"../data\"\nsingle = \"../single.csv\"\n[container]\nbase_image = \"{}\"\n",
        crate::common::PYTHON_BASE
    );
    let task = sandbox.command_task("writer", script, &extra);
    for mode in ["attached", "local"] {
        let (output, answer) = sandbox.json(&["train", mode, task.to_str().unwrap(), "--force"]);
        assert!(output.status.success(), "{mode}: {}", both(&output));
        assert_eq!(answer["metrics"]["wrote"], 1.0);
        assert_eq!(
            std::fs::read_to_string(sandbox.path().join("data/a.csv")).unwrap(),
            "original\n"
        );
        assert_eq!(
            std::fs::read_to_string(sandbox.path().join("data/nested/b.csv")).unwrap(),
            "keep me\n"
        );
        assert!(!sandbox.path().join("data/unpacked").exists());
        assert_eq!(
            std::fs::read_to_string(sandbox.path().join("single.csv")).unwrap(),
            "single\n"
        );
    }
}
