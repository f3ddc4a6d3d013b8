//! `grounds results list | show | open` against a real store, including results that try to escape.

use std::io::Write;

use crate::common::{both, fixture, text, Sandbox, ZipFile};

fn run_fixture(sandbox: &Sandbox, name: &str) -> String {
    let task = fixture(&format!("{name}/task.toml"));
    let (_, answer) = sandbox.json(&["train", "attached", task.to_str().unwrap(), "--quiet"]);
    answer["id"].as_str().unwrap().to_string()
}

#[test]
fn list_show_and_open_a_result_by_prefix() {
    let sandbox = Sandbox::new();
    let done = run_fixture(&sandbox, "script-mode");
    let failed = run_fixture(&sandbox, "failing");

    let output = sandbox.run(&["results", "list"]);
    assert!(output.status.success(), "{}", both(&output));
    let table = text(&output.stdout);
    assert!(table.starts_with("ID"), "{table}");
    for expected in [
        &done,
        &failed,
        "Completed",
        "Failed",
        "attached",
        "accuracy=",
    ] {
        assert!(table.contains(expected), "{expected} in {table}");
    }
    let (_, list) = sandbox.json(&["results", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["status"], "Completed");
    assert!(list[0]["metrics"]["accuracy"].as_f64().is_some());

    // Any unique prefix works.
    let output = sandbox.run(&["results", "show", "script"]);
    assert!(output.status.success(), "{}", both(&output));
    let shown = text(&output.stdout);
    for expected in [
        done.as_str(),
        "Completed",
        "epochs",
        "train_loss",
        "model/model.json",
        "output/data/predictions.csv",
    ] {
        assert!(shown.contains(expected), "{expected} in {shown}");
    }
    let (_, shown) = sandbox.json(&["results", "show", &failed[..12]]);
    assert_eq!(shown["job"]["status"], "Failed");
    assert!(shown["job"]["failure_reason"]
        .as_str()
        .unwrap()
        .contains("ZeroDivisionError"));
    assert!(shown["files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["name"] == "output/failure"));

    let (output, opened) = sandbox.json(&["results", "open", "script"]);
    assert!(output.status.success(), "{}", both(&output));
    let folder = std::path::PathBuf::from(opened["folder"].as_str().unwrap());
    assert_eq!(folder, sandbox.home().join("open").join(&done));
    assert!(folder.join("model/model.json").is_file());
    assert!(folder.join("logs.txt").is_file());
    assert!(opened["metrics"]["accuracy"].as_f64().is_some());
    // Opening again replaces the folder grounds owns.
    let output = sandbox.run(&["results", "open", &done]);
    assert!(output.status.success(), "{}", both(&output));
    assert!(text(&output.stdout).contains(folder.to_str().unwrap()));

    // --to: a new folder works, a folder with something in it is refused and left alone.
    let output = sandbox.run(&["results", "open", &done, "--to", "unpacked"]);
    assert!(output.status.success(), "{}", both(&output));
    assert!(sandbox.path().join("unpacked/job.json").is_file());
    sandbox.write("occupied/mine.txt", "keep me");
    let output = sandbox.run(&["results", "open", &done, "--to", "occupied"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("is not empty"),
        "{}",
        both(&output)
    );
    assert_eq!(
        std::fs::read_to_string(sandbox.path().join("occupied/mine.txt")).unwrap(),
        "keep me"
    );

    // A job that ended with its grounds cannot be fetched or stopped; the error says why, and nothing
    // is changed (no AWS is reached).
    for command in ["fetch", "stop"] {
        let args: Vec<&str> = match command {
            "fetch" => vec!["results", "fetch", &done],
            _ => vec!["stop", &done],
        };
        let output = sandbox.run(&args);
        assert_eq!(output.status.code(), Some(2), "{}", both(&output));
        let said = text(&output.stderr);
        assert!(
            said.contains(&done)
                && said.contains("not a SageMaker job")
                && said.contains("attached"),
            "{}",
            both(&output)
        );
    }
    let (_, still) = sandbox.json(&["results", "show", &done]);
    assert_eq!(still["job"]["status"], "Completed");
}

#[test]
fn unknown_and_ambiguous_prefixes_list_candidates() {
    let sandbox = Sandbox::new();
    let first = run_fixture(&sandbox, "failing");
    let second = run_fixture(&sandbox, "failing");
    // A task's name stands for its newest result.
    let (output, shown) = sandbox.json(&["results", "show", "failing"]);
    assert!(output.status.success(), "{}", both(&output));
    let newest = [&first, &second]
        .into_iter()
        .max_by_key(|id| {
            (
                id.rsplit_once('-').map_or("", |(head, _)| head).to_string(),
                (*id).clone(),
            )
        })
        .unwrap();
    assert_eq!(shown["job"]["id"], newest.as_str());
    // A prefix both ids share is ambiguous.
    let shared: String = first
        .chars()
        .zip(second.chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect();
    let output = sandbox.run(&["results", "show", &shared]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("ambiguous") && stderr.contains(&first) && stderr.contains(&second),
        "{stderr}"
    );
    let output = sandbox.run(&["results", "open", "nothing-like-it"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("no result matches `nothing-like-it`"),
        "{}",
        both(&output)
    );
    let empty = Sandbox::new();
    let output = empty.run(&["results", "list"]);
    assert!(output.status.success());
    assert!(text(&output.stdout).contains("No results yet"));
}

/// Writes a result zip by hand: a real job.json from another result (renamed to `id`), plus the given
/// entries.
fn forge(sandbox: &Sandbox, id: &str, job_json: &str, entries: &[(&str, &[u8])]) {
    let path = sandbox.home().join("results").join(format!("{id}.zip"));
    let mut zip = ::zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = ::zip::write::SimpleFileOptions::default();
    zip.start_file("job.json", options).unwrap();
    // Named as its file is: a zip whose job.json names another result is refused as damaged first.
    let mut job: serde_json::Value = serde_json::from_str(job_json).unwrap();
    job["id"] = serde_json::Value::from(id);
    zip.write_all(job.to_string().as_bytes()).unwrap();
    for (name, bytes) in entries {
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn open_refuses_entries_that_escape_and_archives_that_explode() {
    let sandbox = Sandbox::new();
    let real = run_fixture(&sandbox, "failing");
    let job_json = ZipFile::open(&sandbox.result_zips()[0]).read("job.json");
    let _ = real;
    let cases: [(&str, &str, &str); 3] = [
        (
            "evil-parent",
            "../../escaped.txt",
            "climbs out of the folder",
        ),
        (
            "evil-absolute",
            "/tmp/grounds-escaped-absolute.txt",
            "absolute path",
        ),
        (
            "evil-nested",
            "model/../../../escaped.txt",
            "climbs out of the folder",
        ),
    ];
    for (id, entry, why) in cases {
        forge(
            &sandbox,
            id,
            &job_json,
            &[("model/fine.txt", b"ok"), (entry, b"gotcha")],
        );
        let output = sandbox.run(&["results", "open", id]);
        assert_eq!(output.status.code(), Some(2), "{}", both(&output));
        let stderr = text(&output.stderr);
        assert!(stderr.contains(entry) && stderr.contains(why), "{stderr}");
        assert!(
            !sandbox.home().join("open").join(id).exists(),
            "nothing unpacked for {id}"
        );
    }
    assert!(!sandbox.path().join("escaped.txt").exists());
    assert!(!sandbox.home().join("escaped.txt").exists());
    assert!(!std::path::Path::new("/tmp/grounds-escaped-absolute.txt").exists());

    // A symlink entry.
    let path = sandbox.home().join("results/evil-link.zip");
    let mut zip = ::zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    zip.start_file("job.json", ::zip::write::SimpleFileOptions::default())
        .unwrap();
    let mut job: serde_json::Value = serde_json::from_str(&job_json).unwrap();
    job["id"] = serde_json::Value::from("evil-link");
    zip.write_all(job.to_string().as_bytes()).unwrap();
    zip.add_symlink(
        "model/link",
        "/etc",
        ::zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    zip.finish().unwrap();
    let output = sandbox.run(&["results", "open", "evil-link"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("`model/link` is a symbolic link"),
        "{}",
        both(&output)
    );

    // Beyond the bound (here set low; the default is 16 GiB).
    let big = vec![0u8; 200_000];
    forge(
        &sandbox,
        "evil-bomb",
        &job_json,
        &[("model/a.bin", &big), ("model/b.bin", &big)],
    );
    let output = sandbox.run(&["results", "open", "evil-bomb", "--max-bytes", "300000"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("more than 300000 bytes"),
        "{}",
        both(&output)
    );
    assert!(!sandbox.home().join("open/evil-bomb").exists());
}

#[test]
fn list_filters_and_sorts_and_compare_marks_differences() {
    let sandbox = Sandbox::new();
    let task = fixture("script-mode/task.toml");
    let task = task.to_str().unwrap();
    for epochs in ["2", "8"] {
        let (output, _) = sandbox.json(&[
            "train",
            "attached",
            task,
            "--quiet",
            "--hp",
            &format!("epochs={epochs}"),
        ]);
        assert!(output.status.success(), "{}", both(&output));
    }
    run_fixture(&sandbox, "failing");

    let (_, all) = sandbox.json(&["results", "list"]);
    assert_eq!(all.as_array().unwrap().len(), 3);
    let (_, scripts) = sandbox.json(&[
        "results",
        "list",
        "--task",
        "script-mode",
        "--sort",
        "train_loss",
        "--ascending",
    ]);
    let scripts = scripts.as_array().unwrap();
    assert_eq!(scripts.len(), 2);
    let losses: Vec<f64> = scripts
        .iter()
        .map(|r| r["metrics"]["train_loss"].as_f64().unwrap())
        .collect();
    assert!(losses[0] < losses[1], "ascending: {losses:?}");
    let (_, failed) = sandbox.json(&["results", "list", "--status", "failed"]);
    assert_eq!(failed.as_array().unwrap().len(), 1);
    let output = sandbox.run(&["results", "list", "--status", "broken"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("unknown status `broken`"),
        "{}",
        both(&output)
    );

    let (output, compared) = sandbox.json(&["results", "compare", "--task", "script-mode"]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(compared["results"].as_array().unwrap().len(), 2);
    let differing: Vec<&str> = compared["differing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        differing.contains(&"epochs") && differing.contains(&"train_loss"),
        "{differing:?}"
    );
    assert!(!differing.contains(&"learning_rate"), "{differing:?}");
    let table = text(
        &sandbox
            .run(&["results", "compare", "--task", "script-mode"])
            .stdout,
    );
    assert!(
        table.contains("* hp epochs")
            || table
                .lines()
                .any(|l| l.starts_with('*') && l.contains("hp epochs")),
        "{table}"
    );
    let output = sandbox.run(&["results", "compare", "script"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "one prefix matching two is ambiguous: {}",
        both(&output)
    );
}
