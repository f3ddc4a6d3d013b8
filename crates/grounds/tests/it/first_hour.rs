//! What a newcomer meets in the first hour (issue 30): the README's promises kept, mistakes refused with
//! what to do instead, never passed over in silence.

use std::path::Path;

use crate::common::{both, docker, text, Sandbox, ZipFile};

/// A quick command task that reports a metric.
fn quick(sandbox: &Sandbox, name: &str) -> std::path::PathBuf {
    sandbox.command_task(
        name,
        "print('###METRIC###loss:0.5###')\n",
        &format!(
            "[hyperparameters]\nepochs = 3\n[container]\nbase_image = \"{}\"\n",
            crate::common::PYTHON_BASE
        ),
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
            "--hp C=abc: hyperparameter `C` = `abc` is not a finite number",
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

/// A job's stdout and stderr are kept in the order the program wrote them, as a terminal shows them:
/// prints inside a traceback stay inside it, attached and in a container alike, on every run.
#[test]
fn stdout_and_stderr_are_kept_in_the_order_written() {
    let sandbox = Sandbox::new();
    let task = sandbox.command_task(
        "ordered",
        "import sys\n\
         for i in range(300):\n\
         \x20   print(f'out {i}', flush=True)\n\
         \x20   print(f'err {i}', file=sys.stderr, flush=True)\n\
         print('before the traceback', flush=True)\n\
         raise SystemExit('the end')\n",
        &format!(
            "[container]\nbase_image = \"{}\"\n",
            crate::common::PYTHON_BASE
        ),
    );
    let expected: Vec<String> = (0..300)
        .flat_map(|i| [format!("out {i}"), format!("err {i}")])
        .chain(["before the traceback".to_string(), "the end".to_string()])
        .collect();
    for mode in ["attached", "local", "attached"] {
        let (output, answer) =
            sandbox.json(&["train", mode, task.to_str().unwrap(), "--quiet", "--force"]);
        assert_eq!(answer["status"], "Failed", "{mode}: {}", both(&output));
        let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
        let logs = zip.read("logs.txt");
        let kept: Vec<&str> = logs
            .lines()
            .filter(|line| {
                line.starts_with("out ")
                    || line.starts_with("err ")
                    || *line == "before the traceback"
                    || *line == "the end"
            })
            .collect();
        assert_eq!(kept, expected, "{mode}: {logs}");
        // The failure reason's last lines are the job's, as written.
        let reason = answer["failure_reason"].as_str().unwrap_or_default();
        assert!(
            reason.ends_with("err 299\nbefore the traceback\nthe end"),
            "{mode}: {reason}"
        );
    }
}

/// Lines that look like metric lines but are not are never dropped in silence: warned once per kind
/// while the job runs, kept as a tally in job.json and shown by `results show`, in every mode.
#[test]
fn malformed_metric_lines_are_warned_once_per_kind_and_kept() {
    let sandbox = Sandbox::new();
    let task = sandbox.command_task(
        "malformed",
        "for i in range(50):\n\
         \x20   print(f'###METRIC###acc={i}###')\n\
         print('###METRIC### acc:0.9###')\n\
         print('###METRIC###acc:0.9')\n\
         print('###METRIC###loss:0.25###')\n",
        &format!(
            "[container]\nbase_image = \"{}\"\n",
            crate::common::PYTHON_BASE
        ),
    );
    for mode in ["attached", "local"] {
        let (output, answer) = sandbox.json(&["train", mode, task.to_str().unwrap(), "--force"]);
        assert!(output.status.success(), "{mode}: {}", both(&output));
        assert_eq!(answer["metrics"]["loss"], 0.25, "{mode}: {answer}");
        let stderr = text(&output.stderr);
        // One warning per kind while it runs, not fifty.
        assert_eq!(
            stderr
                .matches("looks like a metric but is not recorded: `=` between name and value")
                .count(),
            1,
            "{mode}: {stderr}"
        );
        assert!(
            stderr.contains("52 line(s) looked like metric lines"),
            "{mode}: {stderr}"
        );
        assert!(
            stderr.contains("a space between `###METRIC###` and the name"),
            "{mode}: {stderr}"
        );
        assert!(stderr.contains("no closing `###`"), "{mode}: {stderr}");
        let tally = answer["malformed_metric_lines"]
            .as_array()
            .unwrap_or_else(|| panic!("{answer}"));
        let counts: Vec<(String, u64)> = tally
            .iter()
            .map(|m| {
                (
                    m["kind"].as_str().unwrap().to_string(),
                    m["lines"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            counts,
            [
                ("no_closing".to_string(), 1),
                ("space_before_name".to_string(), 1),
                ("equals_for_colon".to_string(), 50)
            ],
            "{mode}: {answer}"
        );
        let id = answer["id"].as_str().unwrap();
        let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
        assert_eq!(
            zip.json("job.json")["malformed_metric_lines"],
            answer["malformed_metric_lines"]
        );
        let shown = sandbox.run(&["results", "show", id]);
        let shown = text(&shown.stdout);
        assert!(
            shown.contains("not recorded as metrics (52 line(s)"),
            "{mode}: {shown}"
        );
        assert!(
            shown.contains("50 line(s)  `=` between name and value, where `:` goes, first: ###METRIC###acc=0###"),
            "{mode}: {shown}"
        );
    }
}

/// A task's name stands for its newest result where one result is meant (`show`, `open`), and for all of
/// them in `rm`: removed with --all or a yes at the prompt, refused (saying how) otherwise, shown by a
/// dry run; a task whose name merely starts the same is not touched.
#[test]
fn a_task_name_names_its_newest_result_and_rm_of_it_asks() {
    let sandbox = Sandbox::new();
    let task = quick(&sandbox, "rmtask");
    let other = quick(&sandbox, "rmtask-v2");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (output, answer) = sandbox.json(&[
            "train",
            "attached",
            task.to_str().unwrap(),
            "--force",
            "--quiet",
        ]);
        assert!(output.status.success(), "{}", both(&output));
        ids.push(answer["id"].as_str().unwrap().to_string());
        // Ids tell their time to the second.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let (output, answer) = sandbox.json(&["train", "attached", other.to_str().unwrap(), "--quiet"]);
    assert!(output.status.success(), "{}", both(&output));
    let other_id = answer["id"].as_str().unwrap().to_string();
    // One result meant: the newest of the task, not of the task whose name starts the same.
    let (output, shown) = sandbox.json(&["results", "show", "rmtask"]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(shown["job"]["id"], ids[2].as_str(), "{shown}");
    let opened = sandbox.run(&["results", "open", "rmtask"]);
    assert!(opened.status.success(), "{}", both(&opened));
    assert!(text(&opened.stdout).contains(&ids[2]), "{}", both(&opened));
    // rm of the name: refused without --all, saying how many and how.
    let refused = sandbox.run(&["results", "rm", "rmtask"]);
    assert_eq!(refused.status.code(), Some(2), "{}", both(&refused));
    let said = text(&refused.stderr);
    assert!(
        said.contains("`rmtask` names 3 result(s), the results of task `rmtask`")
            && said.contains("grounds results rm rmtask --all"),
        "{said}"
    );
    assert_eq!(sandbox.result_zips().len(), 4);
    // A dry run shows them all and removes nothing.
    let (output, dry) = sandbox.json(&["results", "rm", "rmtask", "--dry-run"]);
    assert!(output.status.success(), "{}", both(&output));
    let listed = dry.to_string();
    for id in &ids {
        assert!(listed.contains(id.as_str()), "{dry}");
    }
    assert!(!listed.contains(&other_id), "{dry}");
    assert_eq!(sandbox.result_zips().len(), 4);
    // At a terminal it asks: no keeps them, yes removes them.
    let answered = |typed: &str| {
        let command = sandbox.command(&["results", "rm", "rmtask"]);
        crate::common::on_terminal_typing(command, typed)
    };
    let kept = answered("n\n");
    assert!(!kept.status.success(), "{}", kept.terminal);
    assert!(
        kept.terminal.contains("Remove them all? [y/N]"),
        "{}",
        kept.terminal
    );
    assert_eq!(sandbox.result_zips().len(), 4);
    let gone = answered("y\n");
    assert!(gone.status.success(), "{}", gone.terminal);
    let left: Vec<String> = sandbox
        .result_zips()
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, std::slice::from_ref(&other_id));
    // --all does it without asking.
    let all = sandbox.run(&["results", "rm", "rmtask-v2", "--all"]);
    assert!(all.status.success(), "{}", both(&all));
    assert!(sandbox.result_zips().is_empty());
}

/// `compare` of a sweep labels its columns with the members' short names (full ids in a legend below),
/// shows where each ran, and keeps its lines short; two runs of one task are told apart.
#[test]
fn compare_labels_columns_with_short_names_and_shows_the_mode() {
    let sandbox = Sandbox::new();
    let task = quick(&sandbox, "a-rather-long-task-name-for-columns");
    let (output, swept) = sandbox.json(&[
        "train",
        "attached",
        task.to_str().unwrap(),
        "--set",
        "epochs=1,2,3",
        "--quiet",
    ]);
    assert!(output.status.success(), "{}", both(&output));
    let ids: Vec<String> = swept
        .as_array()
        .unwrap_or_else(|| panic!("{swept}"))
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3, "{swept}");
    let mut args = vec!["results", "compare"];
    args.extend(ids.iter().map(String::as_str));
    let (output, compared) = sandbox.json(&args);
    assert!(output.status.success(), "{}", both(&output));
    let columns = compared["columns"].as_array().unwrap();
    let labels: Vec<&str> = columns
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    for (label, id) in labels.iter().zip(&ids) {
        assert!(label.len() < 12 && id.contains(label), "{compared}");
    }
    assert_eq!(
        labels
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        3
    );
    assert!(
        columns.iter().all(|c| c["mode"] == "attached"),
        "{compared}"
    );
    let table = text(&sandbox.run(&args).stdout);
    assert!(
        table.lines().all(|line| line.chars().count() < 100),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.contains("mode") && l.contains("attached")),
        "{table}"
    );
    for id in &ids {
        assert!(
            table.contains(id.as_str()),
            "the legend names {id}: {table}"
        );
    }
    // The same member run again in another mode: told apart, the mode marked as differing.
    let (output, local) = sandbox.json(&[
        "train",
        "local",
        task.to_str().unwrap(),
        "--hp",
        "epochs=1",
        "--quiet",
    ]);
    assert!(output.status.success(), "{}", both(&output));
    let local_id = local["id"].as_str().unwrap();
    let (output, compared) = sandbox.json(&["results", "compare", &ids[0], local_id]);
    assert!(output.status.success(), "{}", both(&output));
    let labels: Vec<&str> = compared["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    assert_ne!(labels[0], labels[1], "{compared}");
    let table = text(
        &sandbox
            .run(&["results", "compare", &ids[0], local_id])
            .stdout,
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with('*') && l.contains("mode") && l.contains("local")),
        "{table}"
    );
}

/// The man page names only pages that `man --dir` writes, documents the task file and the exit codes and
/// points at nothing that is not installed; `-q` is in the help of the commands it acts on only;
/// completions offer no hidden command.
#[test]
fn man_pages_help_and_completions_say_only_what_is_there() {
    let sandbox = Sandbox::new();
    let pages = sandbox.path().join("man1");
    let output = sandbox.run(&["man", "--dir", pages.to_str().unwrap()]);
    assert!(output.status.success(), "{}", both(&output));
    let main = std::fs::read_to_string(pages.join("grounds.1")).unwrap();
    assert_eq!(main, text(&sandbox.run(&["man"]).stdout));
    for section in [
        ".SH \"TASK FILE\"",
        ".SH \"EXIT STATUS\"",
        ".SH ENVIRONMENT",
        "instance_count",
    ] {
        assert!(main.contains(section), "{section}: {main}");
    }
    assert!(!main.contains("README"), "{main}");
    assert!(
        !main.contains("complete-ids") && !main.contains("complete\\-ids"),
        "{main}"
    );
    // Every page a page names is there.
    let mut named = 0;
    for page in std::fs::read_dir(&pages).unwrap() {
        let body = std::fs::read_to_string(page.unwrap().path()).unwrap();
        for (at, _) in body.match_indices("(1)") {
            let before = &body[..at];
            let start = before
                .rfind(|c: char| c.is_whitespace() || c == 'B')
                .map_or(0, |i| i + 1);
            let name = before[start..].replace("\\fR", "").replace("\\-", "-");
            if name.starts_with("grounds") {
                named += 1;
                assert!(
                    pages.join(format!("{name}.1")).is_file(),
                    "{name}(1) is named but not written"
                );
            }
        }
    }
    assert!(named >= 6, "grounds(1) names its subcommands' pages");
    for page in [
        "grounds-train.1",
        "grounds-train-local.1",
        "grounds-results-rm.1",
        "grounds-init.1",
    ] {
        assert!(pages.join(page).is_file(), "{page}");
    }
    assert!(!pages.join("grounds-complete-ids.1").exists());

    let help = |args: &[&str]| text(&sandbox.run(args).stdout);
    assert!(help(&["train", "attached", "--help"]).contains("--quiet"));
    assert!(help(&["results", "fetch", "--help"]).contains("--quiet"));
    for args in [
        &["init", "--help"][..],
        &["man", "--help"],
        &["results", "list", "--help"],
        &["--help"],
    ] {
        assert!(!help(args).contains("--quiet"), "{args:?}: {}", help(args));
    }
    // Still taken before the command.
    let task = quick(&sandbox, "quiet-first");
    let output = sandbox.run(&["-q", "train", "attached", task.to_str().unwrap()]);
    assert!(output.status.success(), "{}", both(&output));

    let bash = help(&["completions", "bash"]);
    assert!(
        bash.lines()
            .filter(|l| l.trim_start().starts_with("opts="))
            .all(|l| !l.contains("complete-ids")),
        "{bash}"
    );
    assert!(
        bash.contains(" results ") || bash.contains("results"),
        "{bash}"
    );
    let zsh = help(&["completions", "zsh"]);
    assert!(!zsh.contains("'complete-ids:"), "{zsh}");
    let fish = help(&["completions", "fish"]);
    assert!(!fish.contains("-a \"complete-ids\""), "{fish}");
    assert!(fish.contains("-a \"train\""), "{fish}");
}

/// The README's first sections work in the order they give their commands: every `make demo` (as the
/// Makefile runs it), every `grounds …` command in a code block or in the text, run from the clone's
/// folder on a store of their own; the last opens the newest titanic result.
#[test]
fn the_readmes_first_commands_work_in_their_order() {
    let sandbox = Sandbox::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let makefile = std::fs::read_to_string(root.join("Makefile")).unwrap();
    let demo: Vec<String> = makefile
        .lines()
        .skip_while(|line| !line.starts_with("demo:"))
        .nth(1)
        .and_then(|recipe| recipe.split_once("$(DEBUG_BIN)"))
        .map(|(_, args)| args.split_whitespace().map(String::from).collect())
        .unwrap_or_else(|| panic!("the Makefile's demo recipe runs $(DEBUG_BIN)"));
    let start = readme.find("## The two commands").unwrap();
    let end = readme.find("## Modes").unwrap();
    // Code-block lines and `inline` spans, in the order they appear.
    let mut commands: Vec<Vec<String>> = Vec::new();
    let mut in_block = false;
    for line in readme[start..end].lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        let pieces: Vec<&str> = if in_block {
            vec![line.split(" #").next().unwrap_or_default().trim()]
        } else {
            line.split('`').skip(1).step_by(2).collect()
        };
        for piece in pieces {
            let words: Vec<String> = piece.split_whitespace().map(String::from).collect();
            match words.first().map(String::as_str) {
                Some("make") if words.get(1).map(String::as_str) == Some("demo") => {
                    commands.push(demo.clone())
                }
                Some(program)
                    if (program == "grounds" || program.ends_with("/grounds"))
                        && words.len() > 1 =>
                {
                    commands.push(words[1..].to_vec())
                }
                _ => {}
            }
        }
    }
    assert!(commands.len() >= 5, "{commands:?}");
    let mut last = String::new();
    for args in &commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut command = sandbox.command(&args);
        command.current_dir(&root);
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "grounds {args:?}: {}",
            both(&output)
        );
        last = text(&output.stdout);
    }
    let (_, listed) = sandbox.json(&["results", "list"]);
    let newest = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["id"].as_str().unwrap().to_string())
        // As the store orders them: by the time in the id, then by the id.
        .max_by_key(|id| {
            (
                id.rsplit_once('-').map_or("", |(head, _)| head).to_string(),
                id.clone(),
            )
        })
        .unwrap();
    assert!(
        last.contains(&newest),
        "the last command opened the newest result {newest}: {last}"
    );
}

/// Run from outside the project (no `.grounds` here or above), a task's run finds its project's store
/// above the task file before making a new one here.
#[test]
fn the_store_is_found_above_the_task_file_too() {
    let sandbox = Sandbox::new();
    let task = quick(&sandbox, "project-store");
    let project = task.parent().unwrap().to_path_buf();
    std::fs::create_dir_all(project.join(".grounds")).unwrap();
    let elsewhere = sandbox.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let mut command = sandbox.command(&["train", "attached", task.to_str().unwrap(), "--json"]);
    command.env_remove("GROUNDS_HOME").current_dir(&elsewhere);
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", both(&output));
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let result = answer["result"].as_str().unwrap();
    assert!(
        result.starts_with(project.join(".grounds/results").to_str().unwrap()),
        "{result}"
    );
    assert!(!elsewhere.join(".grounds").exists());
}
