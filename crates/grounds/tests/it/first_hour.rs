//! What a newcomer meets in the first hour (issue 30): the README's promises kept, mistakes refused with
//! what to do instead, never passed over in silence.

use std::path::Path;

use crate::common::{both, docker, text, Sandbox};

/// A quick command task that reports a metric.
fn quick(sandbox: &Sandbox, name: &str) -> std::path::PathBuf {
    sandbox.command_task(
        name,
        "print('###METRIC###loss:0.5###')\n",
        "[hyperparameters]\nepochs = 3\n",
    )
}

#[test]
fn an_export_to_a_file_of_another_kind_is_refused_naming_the_formats() {
    let sandbox = Sandbox::new();
    let task = quick(&sandbox, "exported");
    let (output, _) = sandbox.json(&["train", "attached", task.to_str().unwrap()]);
    assert!(output.status.success(), "{}", both(&output));
    let target = sandbox.path().join("hist.xlsx");
    let output = sandbox.run(&["results", "export", "-o", target.to_str().unwrap()]);
    assert!(!output.status.success(), "{}", both(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("hist.xlsx")
            && stderr.contains(".csv")
            && stderr.contains(".parquet")
            && stderr.contains(".json")
            && stderr.contains("not .xlsx"),
        "{stderr}"
    );
    assert!(!target.exists(), "nothing is written");
    // The kinds it names work; a name without an extension is CSV.
    for name in ["hist.csv", "hist.JSON", "hist"] {
        let target = sandbox.path().join(name);
        let output = sandbox.run(&["results", "export", "-o", target.to_str().unwrap()]);
        assert!(output.status.success(), "{name}: {}", both(&output));
    }
}

#[test]
fn a_list_that_matches_nothing_says_what_the_store_holds_and_a_sort_by_no_metric_is_refused() {
    let sandbox = Sandbox::new();
    let task = quick(&sandbox, "listed");
    let (output, _) = sandbox.json(&["train", "attached", task.to_str().unwrap()]);
    assert!(output.status.success(), "{}", both(&output));
    let output = sandbox.run(&["results", "list", "--task", "nosuch"]);
    assert!(output.status.success(), "{}", both(&output));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("No results match task `nosuch`")
            && stdout.contains("1 result(s), of the tasks: listed"),
        "{stdout}"
    );
    // An empty store still says so plainly.
    let empty = Sandbox::new();
    let output = empty.run(&["results", "list"]);
    assert!(
        text(&output.stdout).contains("No results yet"),
        "{}",
        both(&output)
    );

    let output = sandbox.run(&["results", "list", "--sort", "accuracy"]);
    assert!(!output.status.success(), "{}", both(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("no result listed has a metric `accuracy`") && stderr.contains("loss"),
        "{stderr}"
    );
    let output = sandbox.run(&["results", "list", "--sort", "loss"]);
    assert!(output.status.success(), "{}", both(&output));
}

#[test]
fn a_reused_run_answers_with_where_it_ran() {
    let sandbox = Sandbox::new();
    let task = quick(&sandbox, "reused");
    let task = task.to_str().unwrap();
    let (output, first) = sandbox.json(&["train", "attached", task]);
    assert!(output.status.success(), "{}", both(&output));
    let (output, again) = sandbox.json(&["train", "attached", task]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(again["reused"], true, "{again}");
    // An attached run has no image: the key is there, null, as for the run itself.
    assert!(again.get("image").is_some_and(|i| i.is_null()), "{again}");
    assert_eq!(first.get("image"), again.get("image"));
}

#[test]
fn a_reused_local_run_names_its_image() {
    let sandbox = Sandbox::new();
    let task = crate::common::fixture("titanic/task.toml");
    let task = task.to_str().unwrap();
    let (output, first) = sandbox.json(&["train", "local", task, "--quiet"]);
    assert!(output.status.success(), "{}", both(&output));
    let (output, again) = sandbox.json(&["train", "local", task, "--quiet"]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(again["reused"], true, "{again}");
    let image = again["image"].as_str().unwrap_or_default();
    assert!(image.starts_with("grounds/titanic:"), "{again}");
    assert_eq!(first["image"], again["image"]);
    docker(&["image", "inspect", image]);
}

#[test]
fn a_folder_given_as_the_task_stands_for_its_task_toml() {
    let sandbox = Sandbox::new();
    let task = quick(&sandbox, "foldered");
    let folder = task.parent().unwrap();
    let (output, answer) = sandbox.json(&["train", "attached", folder.to_str().unwrap()]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(answer["metrics"]["loss"], 0.5);
    let empty = sandbox.path().join("no-task-here");
    std::fs::create_dir_all(&empty).unwrap();
    let output = sandbox.run(&["train", "attached", empty.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("no-task-here is a folder with no task.toml in it")
            && stderr.contains("grounds init"),
        "{stderr}"
    );
    assert!(!Path::new(&sandbox.path().join("no-task-here/task.toml")).exists());
}

#[test]
fn train_without_a_mode_says_which_modes_there_are() {
    let sandbox = Sandbox::new();
    let task = quick(&sandbox, "modeless");
    for args in [
        vec!["train", task.to_str().unwrap()],
        vec!["--json", "train", task.to_str().unwrap()],
    ] {
        let output = sandbox.run(&args);
        assert_eq!(output.status.code(), Some(2), "{}", both(&output));
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("attached (here), local (in Docker) or remote (on SageMaker)")
                && stderr.contains(&format!("grounds train attached {}", task.display())),
            "{stderr}"
        );
    }
    // Other mistakes keep clap's own words.
    let output = sandbox.run(&["results", "frob"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("unrecognized subcommand 'frob'"));
}

#[test]
fn a_bad_hyperparameter_is_blamed_on_where_it_came_from_in_words() {
    let sandbox = Sandbox::new();
    let titanic = crate::common::fixture("titanic/task.toml");
    let file = std::fs::read_to_string(&titanic).unwrap().replace(
        "training = \"titanic.csv\"",
        &format!(
            "training = \"{}\"",
            crate::common::fixture("titanic/titanic.csv").display()
        ),
    );
    let task = sandbox.write("blamed/task.toml", &file);
    let task = task.to_str().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (
            &["--hp", "C=abc"],
            "--hp C=abc: hyperparameter `C` = `abc` is not a number",
        ),
        (&["--set", "C=1,abc"], "a sweep member of"),
        (
            &["--hp", "folds=2.5"],
            "`folds` = `2.5` is not a whole number",
        ),
    ];
    for (extra, says) in cases {
        let mut args = vec!["train", "attached", task, "--dry-run"];
        args.extend_from_slice(extra);
        let output = sandbox.run(&args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{extra:?}: {}",
            both(&output)
        );
        let stderr = text(&output.stderr);
        assert!(stderr.contains(says), "{extra:?}: {stderr}");
        assert!(
            !stderr.contains("f64") && !stderr.contains("usize"),
            "{stderr}"
        );
    }
    // A bad value in the file is the file's.
    std::fs::write(
        task,
        format!(
            "{}\n",
            file.replace("[hyperparameters]", "[hyperparameters]\nC = \"abc\"")
        ),
    )
    .unwrap();
    let output = sandbox.run(&["train", "attached", task, "--dry-run"]);
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("{task}: hyperparameter `C`")),
        "{stderr}"
    );
}

/// What `init` writes works when its comments are taken at their word: the requirements line is
/// relative to the task file, and a script of a generic name in a folder of a generic name is named by
/// its project.
#[test]
fn init_names_the_project_and_writes_a_requirements_line_that_works_uncommented() {
    let sandbox = Sandbox::new();
    sandbox.write("myproj/src/train.py", "print('###METRIC###loss:0.5###')\n");
    sandbox.write("myproj/src/requirements.txt", "pip\n");
    let made = sandbox.run(&["init", "myproj", "--from", "myproj/src/train.py"]);
    assert!(made.status.success(), "{}", both(&made));
    // Said once.
    let said = format!("{}{}", text(&made.stdout), text(&made.stderr));
    assert_eq!(
        said.matches("Wrote").count() + said.matches("Created").count(),
        1,
        "{said}"
    );
    let task_file = sandbox.path().join("myproj/task.toml");
    let written = std::fs::read_to_string(&task_file).unwrap();
    assert!(written.contains("name = \"myproj\""), "{written}");
    let commented = "# requirements = \"src/requirements.txt\"";
    assert!(written.contains(commented), "{written}");
    std::fs::write(
        &task_file,
        written.replace(commented, "requirements = \"src/requirements.txt\""),
    )
    .unwrap();
    let plan = sandbox.run(&["train", "local", task_file.to_str().unwrap(), "--dry-run"]);
    assert!(plan.status.success(), "{}", both(&plan));
    assert!(
        text(&plan.stdout).contains("pip install"),
        "{}",
        both(&plan)
    );
}

/// An id that names nothing lists the newest results first, whatever their tasks' names.
#[test]
fn an_unknown_id_lists_the_newest_results_first() {
    let sandbox = Sandbox::new();
    let mut ids = Vec::new();
    for name in ["zzz-older", "aaa-newer"] {
        let task = quick(&sandbox, name);
        let (output, answer) = sandbox.json(&["train", "attached", task.to_str().unwrap()]);
        assert!(output.status.success(), "{}", both(&output));
        ids.push(answer["id"].as_str().unwrap().to_string());
        // Ids carry the second they were made in.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let output = sandbox.run(&["results", "show", "nosuch"]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    let listed = stderr
        .split("the most recent are: ")
        .nth(1)
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(listed.starts_with(&ids[1]), "{stderr}");
    assert!(listed.find(&ids[1]) < listed.find(&ids[0]), "{stderr}");
}

/// A sweep sorted by a metric no member reported says so (the jobs ran: their results stay).
#[test]
fn a_sweep_sorted_by_no_metric_says_so() {
    let sandbox = Sandbox::new();
    let task = quick(&sandbox, "sorted");
    let task = task.to_str().unwrap();
    let args = [
        "train",
        "attached",
        task,
        "--set",
        "epochs=1,2",
        "--sort",
        "accuracy",
    ];
    let output = sandbox.run(&args);
    assert!(output.status.success(), "{}", both(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("--sort accuracy: no member reported a metric `accuracy` (theirs: loss)"),
        "{stderr}"
    );
    let output = sandbox.run(&[
        "train",
        "attached",
        task,
        "--set",
        "epochs=1,2",
        "--sort",
        "loss",
    ]);
    assert!(output.status.success(), "{}", both(&output));
    assert!(
        !text(&output.stderr).contains("--sort"),
        "{}",
        both(&output)
    );
}

/// A builtin's label or feature that is not a column of the data is refused before anything runs,
/// naming the user's file (not the job's copy of it) and its columns.
#[test]
fn a_builtin_label_that_is_not_a_column_is_refused_before_anything_runs() {
    let sandbox = Sandbox::new();
    let data = crate::common::fixture("titanic/titanic.csv");
    for (label, features, missing) in [
        ("Survivd", "[\"Pclass\"]", "Survivd"),
        ("Survived", "[\"Pclass\", \"Agee\"]", "Agee"),
    ] {
        let task = sandbox.write(
            "typo/task.toml",
            &format!(
                "[task]\nname = \"typo\"\n[task.builtin]\nkind = \"single-frame\"\nlabel = \"{label}\"\n\
                 features = {features}\n[channels]\ntraining = \"{}\"\n",
                data.display()
            ),
        );
        for mode in ["attached", "local"] {
            let output = sandbox.run(&["train", mode, task.to_str().unwrap()]);
            assert_eq!(output.status.code(), Some(2), "{mode}: {}", both(&output));
            let stderr = text(&output.stderr);
            assert!(
                stderr.contains(&format!("column `{missing}` is not in {}", data.display()))
                    && stderr.contains("its columns are: PassengerId, Survived"),
                "{mode}: {stderr}"
            );
            assert!(!stderr.contains("Running"), "{mode}: nothing ran: {stderr}");
        }
    }
    assert!(sandbox.result_zips().is_empty());
}

/// Task-file slips said with what to write: a requirements file named as if paths were relative to the
/// source folder, and a regex with `\d` in a basic TOML string.
#[test]
fn task_file_slips_say_what_to_write_instead() {
    let sandbox = Sandbox::new();
    sandbox.write("slips/src/train.py", "print('hi')\n");
    sandbox.write("slips/src/requirements.txt", "pip\n");
    let task = sandbox.write(
        "slips/task.toml",
        "[task]\nname = \"slips\"\n[task.command]\nsource = \"src\"\nrequirements = \"requirements.txt\"\nrun = [\"python3\", \"train.py\"]\n",
    );
    let output = sandbox.run(&["train", "attached", task.to_str().unwrap(), "--dry-run"]);
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("relative to the task file's folder")
            && stderr.contains("write requirements = \"src/requirements.txt\""),
        "{stderr}"
    );
    let task = sandbox.write(
        "slips/task.toml",
        "[task]\nname = \"slips\"\n[task.command]\nsource = \"src\"\nrun = [\"python3\", \"train.py\"]\n[metrics]\nloss = \"loss: (\\d+)\"\n",
    );
    let output = sandbox.run(&["train", "attached", task.to_str().unwrap(), "--dry-run"]);
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("literal string in single quotes") && stderr.contains("task.toml"),
        "{stderr}"
    );
}

/// Ctrl-C while the image builds: said, exit 130, and nothing left behind (no package file, no result).
#[test]
fn ctrl_c_while_an_image_builds_says_so_and_leaves_nothing() {
    let sandbox = Sandbox::new();
    sandbox.write("slowbuild/src/train.py", "print('never')\n");
    // A step that takes long, new each time the test runs, so that it is built and not cached.
    let unique = format!("{:?}", std::time::SystemTime::now());
    sandbox.write(
        "slowbuild/Dockerfile",
        &format!("FROM {{{{BASE_IMAGE}}}}\nRUN echo '{unique}' && sleep 20\nCOPY train /usr/local/bin/train\n"),
    );
    let task = sandbox.write(
        "slowbuild/task.toml",
        &format!(
            "[task]\nname = \"slowbuild\"\n[task.command]\nsource = \"src\"\nrun = [\"python3\", \"train.py\"]\n\
             [container]\nbase_image = \"{}\"\ndockerfile = \"Dockerfile\"\n",
            crate::common::PYTHON_BASE
        ),
    );
    let temp = sandbox.path().join("tmp");
    std::fs::create_dir_all(&temp).unwrap();
    let mut command = sandbox.command(&["train", "local", task.to_str().unwrap()]);
    command.env("TMPDIR", &temp);
    let running = crate::common::Running::start(command);
    running.wait_for("Step 2/", 120);
    running.signal(libc::SIGINT);
    let output = running.finish(60);
    assert_eq!(output.status.code(), Some(130), "{}", both(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("stopped (SIGINT) while getting the job ready")
            && stderr.contains("nothing ran"),
        "{stderr}"
    );
    let left: Vec<String> = std::fs::read_dir(&temp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(sandbox.result_zips().is_empty());
}

/// `results show` lines its channel rows up, whatever the channels' names.
#[test]
fn results_show_aligns_its_rows() {
    let sandbox = Sandbox::new();
    sandbox.write("aligned/a/x.txt", "x\n");
    sandbox.write("aligned/training-data/y.txt", "y\n");
    let task = sandbox.command_task(
        "aligned",
        "print('###METRIC###loss:0.5###')\n",
        "[channels]\na = \"a\"\ntraining = \"training-data\"\n",
    );
    let (output, answer) = sandbox.json(&["train", "attached", task.to_str().unwrap()]);
    assert!(output.status.success(), "{}", both(&output));
    let shown = sandbox.run(&["results", "show", answer["id"].as_str().unwrap()]);
    let shown = text(&shown.stdout);
    let column_of = |name: &str, value: &str| {
        let line = shown
            .lines()
            .find(|l| l.starts_with(&format!("  {name} ")))
            .unwrap_or_else(|| panic!("no row {name}: {shown}"));
        line.find(value)
            .unwrap_or_else(|| panic!("{value} in {line}"))
    };
    assert_eq!(
        column_of("a", "/aligned/a"),
        column_of("training", "/aligned/training-data"),
        "{shown}"
    );
}

/// Without GROUNDS_HOME the store is found as git finds its repository: the nearest `.grounds` here or
/// above, so a project's history and reuse stay in reach from its subfolders.
#[test]
fn the_store_is_found_from_a_subfolder() {
    let sandbox = Sandbox::new();
    let task = quick(&sandbox, "upward");
    let project = task.parent().unwrap().to_path_buf();
    let deeper = project.join("src/deeper");
    std::fs::create_dir_all(&deeper).unwrap();
    let in_folder = |folder: &Path, args: &[&str]| {
        let mut command = sandbox.command(args);
        command.env_remove("GROUNDS_HOME").current_dir(folder);
        command.output().unwrap()
    };
    // The project's store (made here so that no `.grounds` above the test's folder is found first).
    std::fs::create_dir_all(project.join(".grounds")).unwrap();
    let task = task.to_str().unwrap();
    let first = in_folder(&project, &["train", "attached", task, "--json"]);
    assert!(first.status.success(), "{}", both(&first));
    assert!(project.join(".grounds/results").is_dir());
    let again = in_folder(&deeper, &["train", "attached", task, "--json"]);
    assert!(again.status.success(), "{}", both(&again));
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["reused"], true, "{again}");
    let listed = in_folder(&deeper, &["results", "list"]);
    let listed = text(&listed.stdout);
    assert!(
        listed.contains(&project.join(".grounds/results").display().to_string()),
        "{listed}"
    );
    assert!(!deeper.join(".grounds").exists());
}
