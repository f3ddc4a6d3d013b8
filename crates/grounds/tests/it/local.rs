//! `grounds train local` on the machine's real Docker engine: images built from what is local (FROM scratch
//! for builtins, a Python image made by debootstrap for command tasks), run as SageMaker runs them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{
    assert_nothing_left, both, docker, fixture, text, Sandbox, ZipFile, PYTHON_BASE,
};

/// A command task around a fixture's source, on the debootstrapped Python image.
fn command_task(sandbox: &Sandbox, name: &str, source: &Path, extra: &str) -> PathBuf {
    sandbox.write(
        &format!("{name}/task.toml"),
        &format!(
            "[task]\nname = \"{name}\"\n[task.command]\nsource = \"{}\"\nrun = [\"python3\", \"train.py\"]\n\
             [container]\nbase_image = \"{PYTHON_BASE}\"\n{extra}",
            source.display()
        ),
    )
}

fn metric_names_and_values(answer: &serde_json::Value) -> Vec<(String, f64)> {
    answer["metrics"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
        .collect()
}

#[test]
fn builtin_local_run_gives_the_same_files_and_metrics_as_attached() {
    let sandbox = Sandbox::new();
    let task = fixture("titanic/task.toml");
    let (attached_out, attached) =
        sandbox.json(&["train", "attached", task.to_str().unwrap(), "--quiet"]);
    assert!(attached_out.status.success(), "{}", both(&attached_out));
    let (local_out, local) = sandbox.json(&["train", "local", task.to_str().unwrap()]);
    assert!(local_out.status.success(), "{}", both(&local_out));
    assert_eq!(local["status"], "Completed");
    assert_eq!(local["mode"], "local");
    assert_eq!(
        metric_names_and_values(&local),
        metric_names_and_values(&attached)
    );
    // The job's output streamed live from the container.
    assert!(
        text(&local_out.stderr).contains("[single-frame] stage fit: split 5 of 5"),
        "{}",
        both(&local_out)
    );

    let mut attached_zip = ZipFile::open(Path::new(attached["result"].as_str().unwrap()));
    let mut local_zip = ZipFile::open(Path::new(local["result"].as_str().unwrap()));
    assert_eq!(attached_zip.names(), local_zip.names());
    assert_eq!(
        attached_zip.read("model/model.json"),
        local_zip.read("model/model.json")
    );
    assert_eq!(
        attached_zip.read("package.json"),
        local_zip.read("package.json")
    );
    assert_eq!(
        local_zip.json("job.json")["hosts"],
        serde_json::json!(["algo-1"])
    );
    assert_nothing_left(local["id"].as_str().unwrap());

    // Unchanged: the image is reused, not built again.
    let (again_out, again) = sandbox.json(&[
        "train",
        "local",
        task.to_str().unwrap(),
        "--quiet",
        "--force",
    ]);
    assert!(again_out.status.success(), "{}", both(&again_out));
    assert_eq!(again["image"], local["image"]);
    assert!(
        text(&again_out.stderr).contains("Reusing image"),
        "{}",
        both(&again_out)
    );
    assert!(
        !text(&again_out.stderr).contains("Building image"),
        "{}",
        both(&again_out)
    );
}

#[test]
fn command_task_local_run_matches_attached_and_runs_as_the_given_user() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "data/titanic.csv",
        &std::fs::read_to_string(fixture("titanic/titanic.csv")).unwrap(),
    );
    let task = command_task(
        &sandbox,
        "script-local",
        &fixture("script-mode/src"),
        "[channels]\ntraining = \"../data/titanic.csv\"\n[hyperparameters]\nepochs = 5\n",
    );
    let (attached_out, attached) =
        sandbox.json(&["train", "attached", task.to_str().unwrap(), "--quiet"]);
    assert!(attached_out.status.success(), "{}", both(&attached_out));
    // Not root: the job must be able to write /opt/ml as an ordinary user.
    let (local_out, local) = sandbox.json(&[
        "train",
        "local",
        task.to_str().unwrap(),
        "--user",
        "4242:4242",
    ]);
    assert!(local_out.status.success(), "{}", both(&local_out));
    assert_eq!(
        metric_names_and_values(&local),
        metric_names_and_values(&attached)
    );
    let mut attached_zip = ZipFile::open(Path::new(attached["result"].as_str().unwrap()));
    let mut local_zip = ZipFile::open(Path::new(local["result"].as_str().unwrap()));
    assert_eq!(attached_zip.names(), local_zip.names());
    assert_eq!(
        attached_zip.read("output/data/predictions.csv"),
        local_zip.read("output/data/predictions.csv")
    );
    assert!(
        text(&local_out.stderr).contains("epoch 5 ###METRIC###train_loss"),
        "{}",
        both(&local_out)
    );
    assert_nothing_left(local["id"].as_str().unwrap());
}

#[test]
fn a_failing_job_fails_in_the_container_with_its_reason() {
    let sandbox = Sandbox::new();
    let task = command_task(
        &sandbox,
        "failing-local",
        &fixture("failing/src"),
        "[hyperparameters]\ndivisor = 0\n",
    );
    let (output, answer) = sandbox.json(&["train", "local", task.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", both(&output));
    assert_eq!(answer["status"], "Failed");
    assert_eq!(answer["exit_code"], 1);
    let reason = answer["failure_reason"].as_str().unwrap();
    assert!(reason.contains("ZeroDivisionError"), "{reason}");
    let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
    assert!(zip.read("output/failure").contains("ZeroDivisionError"));
    assert_eq!(answer["metrics"]["progress"], 0.5);
    assert_nothing_left(answer["id"].as_str().unwrap());
}

#[test]
fn two_hosts_resolve_and_reach_each_other() {
    let sandbox = Sandbox::new();
    let task = fixture("multi-host/task.toml");
    let (output, answer) = sandbox.json(&["train", "local", task.to_str().unwrap()]);
    assert!(output.status.success(), "{}", both(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("algo-1 | algo-1 reached ['algo-2']"),
        "{stderr}"
    );
    assert!(
        stderr.contains("algo-2 | algo-2 reached ['algo-1']"),
        "{stderr}"
    );
    let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
    // Outputs of both hosts are merged into one result.
    for (me, other) in [("algo-1", "algo-2"), ("algo-2", "algo-1")] {
        let seen = zip.json(&format!("model/{me}.json"));
        assert_eq!(seen["hosts"], serde_json::json!(["algo-1", "algo-2"]));
        assert_eq!(seen["reached"][other]["answer"], other);
    }
    assert_eq!(
        zip.json("job.json")["hosts"],
        serde_json::json!(["algo-1", "algo-2"])
    );
    assert!(zip.read("logs.txt").contains("algo-2 | "));
    assert_nothing_left(answer["id"].as_str().unwrap());
}

#[test]
fn ctrl_c_stops_the_containers_and_leaves_nothing() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "sleeper/src/train.py",
        "import time\nprint('sleeping', flush=True)\ntime.sleep(300)\n",
    );
    let task = command_task(
        &sandbox,
        "sleeper-local",
        &sandbox.path().join("sleeper/src"),
        "",
    );
    let child = sandbox
        .command(&[
            "train",
            "local",
            task.to_str().unwrap(),
            "--grace",
            "2",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the container runs.
    let start = Instant::now();
    loop {
        let running = docker(&[
            "ps",
            "-q",
            "--filter",
            "label=grounds",
            "--filter",
            "name=sleeper-local",
        ]);
        if !running.trim().is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the container did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", both(&output));
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["status"], "Stopped");
    assert_nothing_left(answer["id"].as_str().unwrap());
}

#[test]
fn no_engine_is_a_clear_error_naming_docker_host() {
    let sandbox = Sandbox::new();
    let output = sandbox
        .command(&[
            "train",
            "local",
            fixture("titanic/task.toml").to_str().unwrap(),
        ])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("cannot reach the Docker engine at unix:///nonexistent/docker.sock"),
        "{stderr}"
    );
    assert!(stderr.contains("DOCKER_HOST"), "{stderr}");
    assert!(sandbox.result_zips().is_empty());
}

#[test]
fn a_missing_base_image_is_a_clear_error_without_pulling() {
    let sandbox = Sandbox::new();
    sandbox.write("absent/src/train.py", "print('never runs')\n");
    let task = sandbox.write(
        "absent/task.toml",
        "[task]\nname = \"absent\"\n[task.command]\nsource = \"src\"\nrun = [\"python3\", \"train.py\"]\n[container]\nbase_image = \"grounds-test/not-here:1\"\n",
    );
    let start = Instant::now();
    let output = sandbox.run(&["train", "local", task.to_str().unwrap()]);
    assert!(start.elapsed() < Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("base image `grounds-test/not-here:1` is not in the local Docker engine"),
        "{stderr}"
    );
    assert!(sandbox.result_zips().is_empty());
}

#[test]
fn dry_run_shows_the_plan_with_secrets_masked_and_the_image_holds_none() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "secretenv/src/train.py",
        "import os\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'seen.txt'), 'w').write(os.environ.get('GROUNDS_TEST_TOKEN', 'missing') + ' ' + os.environ['MODE'])\n",
    );
    let task = command_task(
        &sandbox,
        "secretenv",
        &sandbox.path().join("secretenv/src"),
        "env = { MODE = \"fast\" }\npass_env = [\"GROUNDS_TEST_TOKEN\"]\n[remote]\ninstance_count = 2\n",
    );
    let output = sandbox
        .command(&["train", "local", task.to_str().unwrap(), "--dry-run"])
        .env("GROUNDS_TEST_TOKEN", "s3cr3t-value")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", both(&output));
    let plan_text = text(&output.stdout);
    assert!(!plan_text.contains("s3cr3t-value"), "{plan_text}");
    let plan: serde_json::Value = serde_json::from_str(&plan_text).unwrap();
    assert_eq!(plan["containers"]["env"]["GROUNDS_TEST_TOKEN"], "***");
    assert_eq!(plan["containers"]["env"]["MODE"], "fast");
    assert_eq!(plan["containers"]["hosts"].as_array().unwrap().len(), 2);
    assert!(plan["image"]["dockerfile"]
        .as_str()
        .unwrap()
        .contains(&format!("FROM {PYTHON_BASE}")));
    assert!(plan["image"]["tag"]
        .as_str()
        .unwrap()
        .starts_with("grounds/secretenv:"));
    assert!(sandbox.result_zips().is_empty());

    let (output, answer) = {
        let output = sandbox
            .command(&[
                "train",
                "local",
                task.to_str().unwrap(),
                "--json",
                "--instance-count",
                "1",
            ])
            .env("GROUNDS_TEST_TOKEN", "s3cr3t-value")
            .output()
            .unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        (output, answer)
    };
    assert!(output.status.success(), "{}", both(&output));
    let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
    assert_eq!(zip.read("model/seen.txt"), "s3cr3t-value fast");
    let image = answer["image"].as_str().unwrap();
    let inspected = docker(&["image", "inspect", image]);
    assert!(
        !inspected.contains("s3cr3t-value"),
        "the secret is in the image"
    );
}

/// The image runs the way SageMaker runs it: `docker run -v ROOT:/opt/ml IMAGE train`, with a root this
/// test lays out by hand, not grounds.
#[test]
fn the_image_follows_the_sagemaker_contract_when_run_by_hand() {
    let sandbox = Sandbox::new();
    let (output, answer) = sandbox.json(&[
        "train",
        "local",
        fixture("titanic/task.toml").to_str().unwrap(),
        "--quiet",
    ]);
    assert!(output.status.success(), "{}", both(&output));
    let image = answer["image"].as_str().unwrap().to_string();

    let root = sandbox.path().join("opt-ml");
    std::fs::create_dir_all(root.join("input/config")).unwrap();
    std::fs::create_dir_all(root.join("input/data/training")).unwrap();
    std::fs::copy(
        fixture("titanic/titanic.csv"),
        root.join("input/data/training/train.csv"),
    )
    .unwrap();
    std::fs::write(
        root.join("input/config/hyperparameters.json"),
        r#"{"folds": "3", "C": "0.5"}"#,
    )
    .unwrap();
    std::fs::write(
        root.join("input/config/inputdataconfig.json"),
        r#"{"training": {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"},
            "grounds_package": {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}}"#,
    )
    .unwrap();
    let mount = format!("{}:/opt/ml", root.display());
    let run_by_hand = || {
        Command::new("docker")
            .args(["run", "--rm", "-v", &mount, &image, "train"])
            .output()
            .unwrap()
    };
    // The image holds no code: without its package channel the job fails, saying where it looked.
    let output = run_by_hand();
    assert!(!output.status.success(), "{}", both(&output));
    let failure = std::fs::read_to_string(root.join("output/failure")).unwrap();
    assert!(
        failure.contains("input/data/grounds_package/package.zip"),
        "{failure}"
    );
    std::fs::remove_file(root.join("output/failure")).unwrap();
    // The package as SageMaker downloads the channel grounds gives it.
    let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
    std::fs::create_dir_all(root.join("input/data/grounds_package")).unwrap();
    std::fs::write(
        root.join("input/data/grounds_package/package.zip"),
        zip.bytes("package.zip"),
    )
    .unwrap();
    std::fs::write(
        root.join("input/config/resourceconfig.json"),
        r#"{"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0", "current_instance_type": "ml.m5.large", "current_group_name": "homogeneousCluster", "instance_groups": [{"instance_group_name": "homogeneousCluster", "instance_type": "ml.m5.large", "hosts": ["algo-1"]}]}"#,
    )
    .unwrap();
    let output = run_by_hand();
    assert!(output.status.success(), "{}", both(&output));
    assert!(
        text(&output.stdout).contains("###METRIC###roc_auc_score_test:"),
        "{}",
        both(&output)
    );
    let model: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("model/model.json")).unwrap()).unwrap();
    assert_eq!(model["parameters"]["folds"], 3);
    assert_eq!(model["parameters"]["C"], 0.5);
    assert!(root.join("model/result_df.parquet").is_file());
    assert!(!root.join("output/failure").exists());

    // A failing job leaves its reason where SageMaker reads it, and exits non-zero.
    std::fs::write(
        root.join("input/config/hyperparameters.json"),
        r#"{"folds": "1"}"#,
    )
    .unwrap();
    let output = run_by_hand();
    assert!(!output.status.success(), "{}", both(&output));
    let failure = std::fs::read_to_string(root.join("output/failure")).unwrap();
    assert!(failure.contains("`folds` must be at least 2"), "{failure}");
}

/// The edit-run loop: a code change runs the new code in every local way of running, in the image it
/// ran in before (no build, no new image); a requirements change builds the dependency layer again.
#[test]
fn a_code_change_reuses_the_image_and_a_requirements_change_rebuilds_its_layer() {
    let sandbox = Sandbox::new();
    // `pip` is already in the base image, so installing it needs no index. A fresh requirements file
    // each time the test runs, so the first image cannot come from an earlier run.
    let unique = format!("# {:?}\n", std::time::SystemTime::now());
    sandbox.write("req/src/requirements.txt", &format!("pip\n{unique}"));
    let script = |version: u32| {
        format!(
            "import os\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'channels.txt'), 'w').write(os.environ['SM_CHANNELS'])\n\
             print('###METRIC###version:{version}###')\n"
        )
    };
    sandbox.write("req/src/train.py", &script(1));
    let task = sandbox.write(
        "req/task.toml",
        &format!(
            "[task]\nname = \"req\"\n[task.command]\nsource = \"src\"\nrequirements = \"src/requirements.txt\"\n\
             run = [\"python3\", \"train.py\"]\n[container]\nbase_image = \"{PYTHON_BASE}\"\n"
        ),
    );
    let task = task.to_str().unwrap();
    let (first_out, first) = sandbox.json(&["train", "local", task]);
    assert!(first_out.status.success(), "{}", both(&first_out));
    assert!(
        text(&first_out.stderr)
            .contains("pip install --no-cache-dir -r /opt/grounds/requirements.txt"),
        "{}",
        both(&first_out)
    );
    // Counted, not assumed: the engine may hold images of this task from other runs of the test.
    let images = || docker(&["images", "-q", "grounds/req"]).lines().count();
    let after_the_build = images();
    // One line of code changes before each run: mounted, copied, on two hosts, attached.
    for (version, how) in [
        (2, &[][..]),
        (3, &["--copy"][..]),
        (4, &["--instance-count", "2"][..]),
    ] {
        sandbox.write("req/src/train.py", &script(version));
        let mut args = vec!["train", "local", task];
        args.extend_from_slice(how);
        let (output, answer) = sandbox.json(&args);
        assert!(output.status.success(), "{how:?}: {}", both(&output));
        assert_eq!(answer["metrics"]["version"], f64::from(version), "{how:?}");
        assert_eq!(answer["image"], first["image"], "{how:?}: the same image");
        let stderr = text(&output.stderr);
        assert!(stderr.contains("Reusing image"), "{how:?}: {stderr}");
        assert!(!stderr.contains("Building image"), "{how:?}: {stderr}");
        // The program's channels are the task's: the package's channel is grounds' own.
        let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
        assert_eq!(zip.read("model/channels.txt"), "[]", "{how:?}");
        assert_ne!(
            zip.json("job.json")["package"]["content_hash"],
            ZipFile::open(Path::new(first["result"].as_str().unwrap())).json("job.json")["package"]
                ["content_hash"]
        );
    }
    // `results show` names the package and the image that ran it.
    let shown = sandbox.run(&["results", "show", first["id"].as_str().unwrap()]);
    let shown = text(&shown.stdout);
    let image_line = format!("image:        {}", first["image"].as_str().unwrap());
    assert!(
        shown.contains(&image_line) && shown.contains("package:"),
        "{shown}"
    );
    sandbox.write("req/src/train.py", &script(5));
    let (output, answer) = sandbox.json(&["train", "attached", task]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(answer["metrics"]["version"], 5.0);
    assert_eq!(images(), after_the_build, "a code change made no image");

    // A requirements change builds the dependency layer again, in a new image.
    sandbox.write("req/src/requirements.txt", &format!("pip\n{unique}# v2\n"));
    let (output, third) = sandbox.json(&["train", "local", task]);
    assert!(output.status.success(), "{}", both(&output));
    assert_ne!(third["image"], first["image"]);
    let stderr = text(&output.stderr);
    let pip_step = stderr.find("pip install").expect("the pip step is shown");
    let next_step = stderr[pip_step..]
        .find("Step ")
        .map_or(stderr.len(), |at| pip_step + at);
    assert!(
        !stderr[pip_step..next_step].contains("Using cache"),
        "the pip step ran again: {stderr}"
    );
    assert_eq!(third["metrics"]["version"], 5.0);
    for image in [&first["image"], &third["image"]] {
        docker(&["rmi", image.as_str().unwrap()]);
    }
}

#[test]
fn a_failed_build_step_is_shown_with_its_output() {
    let sandbox = Sandbox::new();
    sandbox.write("broken/src/train.py", "print('never')\n");
    // A Dockerfile written for images that held the code is refused, naming its line.
    sandbox.write("broken/Dockerfile", "FROM {{BASE_IMAGE}}\nRUN echo about to fail && exit 3\nCOPY train /usr/local/bin/train\nCOPY package.zip /opt/grounds/package.zip\n");
    let task = command_task(
        &sandbox,
        "broken",
        &sandbox.path().join("broken/src"),
        "dockerfile = \"Dockerfile\"\n",
    );
    let output = sandbox.run(&["train", "local", task.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("Dockerfile line 4 puts the package into the image")
            && stderr.contains("delete that line"),
        "{stderr}"
    );
    assert!(!stderr.contains("Step "), "nothing was built: {stderr}");
    sandbox.write(
        "broken/Dockerfile",
        "FROM {{BASE_IMAGE}}\nRUN echo about to fail && exit 3\nCOPY train /usr/local/bin/train\n",
    );
    let output = sandbox.run(&["train", "local", task.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("failed at Step 2/4 : RUN echo about to fail && exit 3"),
        "{stderr}"
    );
    assert!(stderr.contains("returned a non-zero code: 3"), "{stderr}");
    assert!(sandbox.result_zips().is_empty());
}

#[test]
fn an_entry_binary_that_cannot_serve_is_refused() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&[
        "train",
        "local",
        fixture("titanic/task.toml").to_str().unwrap(),
        "--entry-binary",
        "/bin/sh",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("/bin/sh cannot serve as the entry")
            && stderr.contains("dynamically linked"),
        "{stderr}"
    );
}

#[test]
fn gc_images_removes_the_images_no_kept_result_ran_in() {
    let sandbox = Sandbox::new();
    let data = fixture("titanic/titanic.csv");
    let run_version = |version: &str| {
        let task = sandbox.write(
            "gc-images/task.toml",
            &format!(
                "[task]\nname = \"gc-images\"\nversion = \"{version}\"\n[task.builtin]\nkind = \"single-frame\"\n\
                 label = \"Survived\"\nfeatures = [\"Pclass\", \"Sex\"]\nmodel = \"logistic-regression\"\nfolds = 2\n\
                 [channels]\ntraining = \"{}\"\n[container]\ndockerfile = \"Dockerfile\"\n",
                data.display()
            ),
        );
        // The versions differ in their image (a code change alone would reuse it).
        sandbox.write(
            "gc-images/Dockerfile",
            &format!("FROM {{{{BASE_IMAGE}}}}\nCOPY train /usr/local/bin/train\nENV GC_VERSION={version}\n"),
        );
        let (output, answer) = sandbox.json(&["train", "local", task.to_str().unwrap(), "--quiet"]);
        assert!(output.status.success(), "{}", both(&output));
        let id = answer["id"].as_str().unwrap().to_string();
        let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
        let image = zip.json("job.json")["image"].as_str().unwrap().to_string();
        assert!(image.starts_with("grounds/gc-images:"), "{image}");
        (id, image)
    };
    let (first, old_image) = run_version("1");
    let (_, new_image) = run_version("2");
    assert_ne!(old_image, new_image);
    let exists = |image: &str| {
        Command::new("docker")
            .args(["image", "inspect", image])
            .output()
            .unwrap()
            .status
            .success()
    };

    let planned_gc = || {
        sandbox
            .json(&[
                "results",
                "gc",
                "--images",
                "--task",
                "gc-images",
                "--dry-run",
            ])
            .1
    };

    // Both images belong to kept results: nothing to remove.
    let planned = planned_gc();
    assert_eq!(
        planned["images"]["removed"],
        serde_json::json!([]),
        "{planned}"
    );
    let removed = sandbox.run(&["results", "rm", &first]);
    assert!(removed.status.success(), "{}", both(&removed));

    // The first result is gone: its image is named by a dry run, and kept by it.
    let planned = planned_gc();
    assert_eq!(
        planned["images"]["removed"][0]["tags"],
        serde_json::json!([old_image]),
        "{planned}"
    );
    assert!(exists(&old_image));
    let (output, done) = sandbox.json(&["results", "gc", "--images", "--task", "gc-images"]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(
        done["images"]["removed"][0]["tags"],
        serde_json::json!([old_image]),
        "{done}"
    );
    assert!(!exists(&old_image), "{old_image} is still there");
    assert!(exists(&new_image), "{new_image} went too");
    docker(&["rmi", &new_image]);
}
