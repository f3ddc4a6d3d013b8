//! `grounds train attached` end to end: the real binary, real Python scripts, a real result store.

use std::time::{Duration, Instant};

use crate::common::{both, fixture, text, Sandbox, ZipFile};

#[test]
fn a_completed_run_stores_everything_it_produced() {
    let sandbox = Sandbox::new();
    let task = fixture("script-mode/task.toml");
    let (output, answer) = sandbox.json(&["train", "attached", task.to_str().unwrap()]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(answer["status"], "Completed");
    assert_eq!(answer["mode"], "attached");
    assert_eq!(answer["reused"], false);
    let accuracy = answer["metrics"]["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.7 && accuracy < 0.9, "{accuracy}");
    let id = answer["id"].as_str().unwrap();
    assert!(id.starts_with("script-mode-"), "{id}");
    // The job's output streamed to stderr as it ran.
    assert!(
        text(&output.stderr).contains("epoch 30 ###METRIC###train_loss"),
        "{}",
        both(&output)
    );

    let zips = sandbox.result_zips();
    assert_eq!(zips.len(), 1);
    assert_eq!(
        zips[0],
        std::path::Path::new(answer["result"].as_str().unwrap())
    );
    let mut zip = ZipFile::open(&zips[0]);
    let names = zip.names();
    for name in [
        "job.json",
        "package.json",
        "package.zip",
        "metrics.json",
        "logs.txt",
        "model/model.json",
        "output/data/predictions.csv",
    ] {
        assert!(names.contains(&name.to_string()), "{name} in {names:?}");
    }
    let job = zip.json("job.json");
    assert_eq!(job["status"], "Completed");
    assert_eq!(job["exit_code"], 0);
    assert_eq!(job["hyperparameters"]["epochs"], "30");
    assert!(job["fingerprint"].as_str().unwrap().starts_with("sha256:"));
    let metrics = zip.json("metrics.json");
    assert_eq!(
        metrics["train_loss"]["series"].as_array().unwrap().len(),
        30
    );
    assert_eq!(metrics["accuracy"]["final"].as_f64().unwrap(), accuracy);
    assert!(zip.read("logs.txt").contains("read 891 rows"));
    assert_eq!(zip.read("output/data/predictions.csv").lines().count(), 892);
    // The stored package is the delivered code itself.
    let package = zip.json("package.json");
    assert_eq!(package["name"], "script-mode");
    // No temporary job folder is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("grounds-{id}"))
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_failed_run_is_stored_with_its_reason_and_exit_code() {
    let sandbox = Sandbox::new();
    let task = fixture("failing/task.toml");
    let (output, answer) = sandbox.json(&["train", "attached", task.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", both(&output));
    assert_eq!(answer["status"], "Failed");
    assert_eq!(answer["exit_code"], 1);
    let reason = answer["failure_reason"].as_str().unwrap();
    assert!(
        reason.contains("exited with code 1") && reason.contains("ZeroDivisionError"),
        "{reason}"
    );
    // Metrics printed before the failure are kept.
    assert_eq!(answer["metrics"]["progress"], 0.5);
    let mut zip = ZipFile::open(&sandbox.result_zips()[0]);
    let failure = zip.read("output/failure");
    assert!(
        failure.contains("ZeroDivisionError: division by zero"),
        "{failure}"
    );
    assert!(failure.len() <= 1024);
    assert!(zip.read("logs.txt").contains("about to divide by 0"));
    assert_eq!(zip.json("job.json")["status"], "Failed");
}

#[test]
fn a_failure_file_written_by_the_job_is_kept() {
    let sandbox = Sandbox::new();
    let script = "import os, sys\nopen(os.path.join(os.environ['SM_OUTPUT_DIR'], 'failure'), 'w').write('bad data in row 7')\nsys.exit(3)\n";
    let task = sandbox.command_task("ownfailure", script, "");
    let (output, answer) = sandbox.json(&["train", "attached", task.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", both(&output));
    assert_eq!(answer["exit_code"], 3);
    assert_eq!(answer["failure_reason"], "bad data in row 7");
}

#[test]
fn a_missing_program_fails_clearly() {
    let sandbox = Sandbox::new();
    sandbox.write("missing/src/x.txt", "");
    let task = sandbox.write(
        "missing/task.toml",
        "[task]\nname = \"missing\"\n[task.command]\nsource = \"src\"\nrun = [\"no-such-program-here\"]\n",
    );
    let (output, answer) = sandbox.json(&["train", "attached", task.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", both(&output));
    assert_eq!(answer["status"], "Failed");
    assert_eq!(answer["exit_code"], 127);
    let reason = answer["failure_reason"].as_str().unwrap();
    assert!(
        reason.contains("`no-such-program-here` was not found"),
        "{reason}"
    );
}

const ECHO_SCRIPT: &str = r#"
import json, os, sys
root = os.environ["SM_MODEL_DIR"]
with open(os.path.join(os.environ["SM_INPUT_CONFIG_DIR"], "hyperparameters.json")) as f:
    file = json.load(f)
seen = {
    "argv": sys.argv[1:],
    "file": file,
    "env": {k: v for k, v in os.environ.items() if k.startswith("SM_HP")},
    "channel": os.environ.get("SM_CHANNEL_TRAINING"),
    "channel_files": sorted(os.listdir(os.environ["SM_CHANNEL_TRAINING"])),
    "channels": os.environ["SM_CHANNELS"],
    "hosts": os.environ["SM_HOSTS"],
    "current_host": os.environ["SM_CURRENT_HOST"],
    "job_name": os.environ["TRAINING_JOB_NAME"],
    "cwd": os.getcwd(),
    "resource": json.load(open(os.path.join(os.environ["SM_INPUT_CONFIG_DIR"], "resourceconfig.json"))),
}
with open(os.path.join(root, "seen.json"), "w") as f:
    json.dump(seen, f)
"#;

#[test]
fn hyperparameters_arrive_as_json_environment_and_arguments() {
    let sandbox = Sandbox::new();
    sandbox.write("echo/data.csv", "a,b\n1,2\n");
    let task = sandbox.command_task(
        "echo",
        ECHO_SCRIPT,
        "[channels]\ntraining = \"data.csv\"\n[hyperparameters]\nepochs = 3\nlearning_rate = 0.001\nuse_bn = true\noptimizer = \"adam\"\nlayers = [64, 32]\n",
    );
    let (output, answer) = sandbox.json(&[
        "train",
        "attached",
        task.to_str().unwrap(),
        "--hp",
        "epochs=7",
        "--hp",
        "extra=x y",
    ]);
    assert!(output.status.success(), "{}", both(&output));
    let id = answer["id"].as_str().unwrap();
    let mut zip = ZipFile::open(&sandbox.result_zips()[0]);
    let seen = zip.json("model/seen.json");
    // hyperparameters.json: every value a string, overrides applied.
    assert_eq!(seen["file"]["epochs"], "7");
    assert_eq!(seen["file"]["learning_rate"], "0.001");
    assert_eq!(seen["file"]["use_bn"], "true");
    assert_eq!(seen["file"]["optimizer"], "adam");
    assert_eq!(seen["file"]["layers"], "[64,32]");
    assert_eq!(seen["file"]["extra"], "x y");
    // SM_HP_*: strings as they are, other values as JSON; SM_HPS decoded.
    assert_eq!(seen["env"]["SM_HP_EPOCHS"], "7");
    assert_eq!(seen["env"]["SM_HP_USE_BN"], "true");
    assert_eq!(seen["env"]["SM_HP_OPTIMIZER"], "adam");
    assert_eq!(seen["env"]["SM_HP_LAYERS"], "[64,32]");
    let hps: serde_json::Value =
        serde_json::from_str(seen["env"]["SM_HPS"].as_str().unwrap()).unwrap();
    assert_eq!(hps["epochs"], 7);
    assert_eq!(hps["use_bn"], true);
    assert_eq!(hps["extra"], "x y");
    // Arguments: sorted --key value, as the toolkit passes them.
    let argv: Vec<&str> = seen["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        argv,
        [
            "--epochs",
            "7",
            "--extra",
            "x y",
            "--layers",
            "[64, 32]",
            "--learning_rate",
            "0.001",
            "--optimizer",
            "adam",
            "--use_bn",
            "True"
        ]
    );
    // The contract around them.
    assert!(seen["channel"]
        .as_str()
        .unwrap()
        .ends_with("/input/data/training"));
    assert_eq!(seen["channel_files"], serde_json::json!(["data.csv"]));
    assert_eq!(seen["channels"], "[\"training\"]");
    assert_eq!(seen["hosts"], "[\"algo-1\"]");
    assert_eq!(seen["current_host"], "algo-1");
    assert_eq!(seen["job_name"], id);
    assert!(seen["cwd"].as_str().unwrap().ends_with("/code"));
    assert_eq!(seen["resource"]["current_group_name"], "homogeneousCluster");
    assert_eq!(seen["resource"]["network_interface_name"], "eth0");
}

#[test]
fn dry_run_prints_the_plan_and_runs_nothing() {
    let sandbox = Sandbox::new();
    let task = fixture("script-mode/task.toml");
    let output = sandbox.run(&[
        "train",
        "attached",
        task.to_str().unwrap(),
        "--dry-run",
        "--hp",
        "epochs=2",
    ]);
    assert!(output.status.success(), "{}", both(&output));
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["mode"], "attached");
    assert_eq!(plan["hyperparameters"]["epochs"], "2");
    assert!(plan["channels"]["training"]
        .as_str()
        .unwrap()
        .ends_with("titanic.csv"));
    assert!(plan["package"]["content_hash"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert!(sandbox.result_zips().is_empty());
}

#[test]
fn secrets_in_the_source_are_refused_before_anything_runs() {
    let sandbox = Sandbox::new();
    let task = sandbox.command_task("secretive", "print('hi')\n", "");
    sandbox.write("secretive/src/.env", "AWS_SECRET_ACCESS_KEY=abc\n");
    let output = sandbox.run(&["train", "attached", task.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(".env") && stderr.contains("include_secrets"),
        "{stderr}"
    );
    assert!(sandbox.result_zips().is_empty());
    // Named on purpose, it is delivered.
    let task = sandbox.command_task(
        "secretive",
        "print('hi')\n",
        "include_secrets = [\".env\"]\n",
    );
    let output = sandbox.run(&["train", "attached", task.to_str().unwrap()]);
    assert!(output.status.success(), "{}", both(&output));
}

/// Each bad task file gets exit code 2, a message naming the file (and line where it can), and no result.
#[test]
fn task_file_errors_name_the_file_and_what_to_fix() {
    let sandbox = Sandbox::new();
    sandbox.write("bad/src/train.py", "");
    sandbox.write("bad/data.csv", "a\n1\n");
    let head = "[task]\nname = \"bad\"\n[task.command]\nsource = \"src\"\nrun = [\"python3\", \"train.py\"]\n";
    let many_hps: String = (0..101).map(|i| format!("h{i} = {i}\n")).collect();
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{head}typo = 1\n"),
            "task.toml:6:1: unknown field `typo`",
        ),
        (
            "[task]\nname = \"bad name\"\n[task.command]\nsource = \"src\"\nrun = [\"x\"]\n".into(),
            "task.toml:2:8: task name `bad name` has ` `",
        ),
        (
            format!(
                "[task]\nname = \"{}\"\n[task.command]\nsource = \"src\"\nrun = [\"x\"]\n",
                "n".repeat(43)
            ),
            "at most 42 fit",
        ),
        ("[task]\nname = \"bad\"\n".into(), "needs [task.builtin]"),
        (
            format!("{head}[task.builtin]\nkind = \"single-frame\"\nlabel = \"a\"\n"),
            "not several",
        ),
        (
            format!("{head}[channels]\ntraining = \"missing.csv\"\n"),
            "task.toml:7:12: channel `training`",
        ),
        (
            format!("{head}[channels]\n\"tr ain\" = \"data.csv\"\n"),
            "channel name `tr ain`",
        ),
        (
            format!("{head}[hyperparameters]\n{many_hps}"),
            "at most 100",
        ),
        (
            format!("{head}[hyperparameters]\nx = \"{}\"\n", "v".repeat(2501)),
            "at most 2500",
        ),
        (
            "[task]\nname = \"bad\"\n[task.command]\nsource = \"nowhere\"\nrun = [\"x\"]\n".into(),
            "source folder `nowhere` does not exist",
        ),
        ("[task\nname = 1\n".into(), "task.toml:1:"),
    ];
    for (content, expected) in cases {
        let task = sandbox.write("bad/task.toml", &content);
        let output = sandbox.run(&["train", "attached", task.to_str().unwrap()]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{expected}: {}",
            both(&output)
        );
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains(expected),
            "expected `{expected}` in:\n{stderr}"
        );
        assert!(
            stderr.contains(task.to_str().unwrap()),
            "names the file: {stderr}"
        );
    }
    let output = sandbox.run(&["train", "attached", "nowhere.toml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("cannot read task file nowhere.toml"),
        "{}",
        both(&output)
    );
    let output = sandbox.run(&[
        "train",
        "attached",
        fixture("script-mode/task.toml").to_str().unwrap(),
        "--hp",
        "novalue",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("is not key=value"),
        "{}",
        both(&output)
    );
    assert!(sandbox.result_zips().is_empty());
}

/// Whether a process is still running: a zombie waiting for its (new) parent to reap it is not.
fn process_running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

fn process_exists(pid: i32) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if !process_running(pid) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

fn wait_for_file(path: &std::path::Path, timeout: Duration) -> String {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Ok(text) = std::fs::read_to_string(path) {
            if text.ends_with('\n') {
                return text;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} did not appear", path.display());
}

fn interrupt_run(script: &str, grace: &str) -> (Sandbox, std::process::Output, i32) {
    let sandbox = Sandbox::new();
    let pid_file = sandbox.path().join("pid.txt");
    let script = script.replace("PID_FILE", pid_file.to_str().unwrap());
    let task = sandbox.command_task("sleeper", &script, "");
    let child = sandbox
        .command(&[
            "train",
            "attached",
            task.to_str().unwrap(),
            "--grace",
            grace,
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let job_pid: i32 = wait_for_file(&pid_file, Duration::from_secs(30))
        .trim()
        .parse()
        .unwrap();
    // What a terminal's Ctrl-C does: SIGINT to grounds (the job runs in its own process group).
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let output = child.wait_with_output().unwrap();
    (sandbox, output, job_pid)
}

#[test]
fn ctrl_c_stops_the_job_and_stores_a_stopped_result() {
    let script = "import os, time\nprint('###METRIC###started:1###', flush=True)\nopen('PID_FILE', 'w').write(f'{os.getpid()}\\n')\ntime.sleep(120)\n";
    let (sandbox, output, job_pid) = interrupt_run(script, "10");
    assert_eq!(output.status.code(), Some(130), "{}", both(&output));
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["status"], "Stopped");
    assert_eq!(answer["metrics"]["started"], 1.0);
    assert!(
        !process_exists(job_pid),
        "the job process {job_pid} is gone"
    );
    let mut zip = ZipFile::open(&sandbox.result_zips()[0]);
    assert_eq!(zip.json("job.json")["status"], "Stopped");
}

#[test]
fn a_job_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let script = "import os, signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nopen('PID_FILE', 'w').write(f'{os.getpid()}\\n')\ntime.sleep(120)\n";
    let start = Instant::now();
    let (sandbox, output, job_pid) = interrupt_run(script, "1");
    assert!(start.elapsed() < Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(130), "{}", both(&output));
    assert!(
        !process_exists(job_pid),
        "the job process {job_pid} is gone"
    );
    assert!(
        text(&output.stderr).contains("did not stop within 1s"),
        "{}",
        both(&output)
    );
    assert_eq!(sandbox.result_zips().len(), 1);
}

#[test]
fn eight_concurrent_runs_share_one_store_safely() {
    let sandbox = Sandbox::new();
    let task = sandbox.command_task(
        "busy",
        "import os\nprint('###METRIC###pid:' + str(os.getpid()) + '###')\n",
        "",
    );
    let children: Vec<_> = (0..8)
        .map(|_| {
            sandbox
                .command(&[
                    "train",
                    "attached",
                    task.to_str().unwrap(),
                    "--json",
                    "--quiet",
                    // Eight runs, not one run and seven reuses.
                    "--force",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", both(&output));
        let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        ids.insert(answer["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 8);
    let (output, list) = sandbox.json(&["results", "list"]);
    assert!(output.status.success(), "{}", both(&output));
    let listed: std::collections::BTreeSet<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, ids);
    // Nothing half-written is left in the store.
    let names: Vec<String> = std::fs::read_dir(sandbox.home().join("results"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n.ends_with(".zip") && !n.starts_with('.')),
        "{names:?}"
    );
}

/// A completed run whose code, task, hyperparameters and data are unchanged is reused, not run again.
#[test]
fn an_unchanged_completed_run_is_reused_and_any_change_runs_again() {
    let sandbox = Sandbox::new();
    sandbox.write("reuse/data/d.csv", "a\n1\n");
    let task = sandbox.command_task(
        "reuse",
        "import os\nprint('###METRIC###files:' + str(len(os.listdir(os.environ['SM_CHANNEL_TRAINING']))) + '###')\n",
        "[channels]\ntraining = \"data\"\n[hyperparameters]\nlr = 0.1\n",
    );
    let task = task.to_str().unwrap();
    let (_, first) = sandbox.json(&["train", "attached", task, "--quiet"]);
    assert_eq!(first["reused"], false);
    let (output, second) = sandbox.json(&["train", "attached", task, "--quiet"]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(second["reused"], true);
    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["metrics"], first["metrics"]);
    assert!(text(&output.stderr).contains("Reused"), "{}", both(&output));
    assert_eq!(sandbox.result_zips().len(), 1);
    let plan: serde_json::Value = serde_json::from_slice(
        &sandbox
            .run(&["train", "attached", task, "--dry-run"])
            .stdout,
    )
    .unwrap();
    assert_eq!(plan["reuses"], first["id"]);

    // --force, a hyperparameter, the code, the data: each runs again.
    let (_, forced) = sandbox.json(&["train", "attached", task, "--quiet", "--force"]);
    assert_eq!(forced["reused"], false);
    let (_, other_hp) = sandbox.json(&["train", "attached", task, "--quiet", "--hp", "lr=0.2"]);
    assert_eq!(other_hp["reused"], false);
    sandbox.write("reuse/data/d.csv", "a\n2\n");
    let (_, other_data) = sandbox.json(&["train", "attached", task, "--quiet"]);
    assert_eq!(other_data["reused"], false);
    sandbox.write("reuse/src/train.py", "print('###METRIC###files:0###')\n");
    let (_, other_code) = sandbox.json(&["train", "attached", task, "--quiet"]);
    assert_eq!(other_code["reused"], false);
    assert_eq!(sandbox.result_zips().len(), 5);
}

#[test]
fn failed_runs_are_never_reused() {
    let sandbox = Sandbox::new();
    let task = fixture("failing/task.toml");
    let (_, first) = sandbox.json(&["train", "attached", task.to_str().unwrap(), "--quiet"]);
    let (_, second) = sandbox.json(&["train", "attached", task.to_str().unwrap(), "--quiet"]);
    assert_eq!(
        (first["status"].as_str(), second["status"].as_str()),
        (Some("Failed"), Some("Failed"))
    );
    assert_eq!(second["reused"], false);
    assert_ne!(first["id"], second["id"]);
}

#[test]
fn an_s3_channel_without_aws_settings_is_refused_and_nothing_is_stored() {
    let sandbox = Sandbox::new();
    let task = sandbox.command_task(
        "s3data",
        "print('never')\n",
        "[channels]\ntraining = \"s3://some-bucket/data/\"\n",
    );
    let mut command = sandbox.command(&["train", "attached", task.to_str().unwrap()]);
    for name in [
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
    ] {
        command.env_remove(name);
    }
    command
        .env("AWS_CONFIG_FILE", sandbox.path().join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            sandbox.path().join("no-aws-credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("training are in S3, which needs AWS settings"),
        "{stderr}"
    );
    assert!(sandbox.result_zips().is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(sandbox.home().join("results"))
        .map(|d| d.count())
        .into_iter()
        .collect();
    assert!(
        leftovers.iter().all(|n| *n == 0),
        "no staging file left: {leftovers:?}"
    );
}

/// Channel content hashes are remembered by file stamp: an unchanged channel is not read again (the
/// cache list is written once and left alone), while a file rewritten with the same size and the same
/// modification time is still noticed (its change time moved) and changes the fingerprint.
#[test]
fn remembered_channel_hashes_notice_every_change() {
    let sandbox = Sandbox::new();
    let task = sandbox.command_task(
        "hashes",
        "print('###METRIC###done:1###')\n",
        "[channels]\ntraining = \"data\"\n",
    );
    let data = sandbox.write("hashes/data/a.csv", "x,y\n1,2\n");
    sandbox.write("hashes/data/nested/b.csv", "x,y\n3,4\n");
    // Older than the two seconds within which a changed file is hashed but not remembered.
    std::thread::sleep(Duration::from_millis(2100));
    let fingerprint = |sandbox: &Sandbox| {
        let (output, plan) =
            sandbox.json(&["train", "attached", task.to_str().unwrap(), "--dry-run"]);
        assert!(output.status.success(), "{}", both(&output));
        plan["fingerprint"].as_str().unwrap().to_string()
    };
    let first = fingerprint(&sandbox);
    let lists: Vec<_> = std::fs::read_dir(sandbox.home().join("cache/hashes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(lists.len(), 1, "{lists:?}");
    let list = std::fs::read_to_string(&lists[0]).unwrap();
    assert!(
        list.contains("\ta.csv\n") && list.contains("\tnested/b.csv\n"),
        "{list}"
    );
    let written = std::fs::metadata(&lists[0]).unwrap().modified().unwrap();
    assert_eq!(fingerprint(&sandbox), first);
    // Nothing was read, so nothing was written again.
    assert_eq!(
        std::fs::metadata(&lists[0]).unwrap().modified().unwrap(),
        written
    );

    let mtime = std::fs::metadata(&data).unwrap().modified().unwrap();
    std::fs::write(&data, "x,y\n1,3\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&data)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let changed = fingerprint(&sandbox);
    assert_ne!(changed, first);
    // Without the cache, the same answer.
    std::fs::remove_dir_all(sandbox.home().join("cache/hashes")).unwrap();
    assert_eq!(fingerprint(&sandbox), changed);
}
