//! The everyday tool through the real binary: `results export | plot | rm | gc`, sparklines in `results
//! show`, shell completions and the man page, and `grounds init`.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use crate::common::{both, fixture, text, Sandbox};
use polars::prelude::SerReader;
use serde_json::Value;

/// A sweep of the script-mode fixture (two members, a series of train_loss each) and a failing run.
fn sweep_and_failure(sandbox: &Sandbox) -> (Vec<String>, String) {
    let task = fixture("script-mode/task.toml");
    let (output, members) = sandbox.json(&[
        "train",
        "attached",
        task.to_str().unwrap(),
        "--quiet",
        "--set",
        "epochs=2,4",
    ]);
    assert!(output.status.success(), "{}", both(&output));
    let ids: Vec<String> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    let failing = fixture("failing/task.toml");
    let (_, failed) = sandbox.json(&["train", "attached", failing.to_str().unwrap(), "--quiet"]);
    (ids, failed["id"].as_str().unwrap().to_string())
}

#[test]
fn export_gives_one_row_per_result_that_polars_and_csv_readers_read_back() {
    let sandbox = Sandbox::new();
    let (ids, failed) = sweep_and_failure(&sandbox);

    let out = sandbox.path().join("history.parquet");
    let (output, answer) = sandbox.json(&["results", "export", "-o", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(answer["results"], 3);
    assert_eq!(answer["format"], "parquet");
    let df = polars::prelude::ParquetReader::new(std::fs::File::open(&out).unwrap())
        .finish()
        .unwrap();
    assert_eq!(df.height(), 3);
    let id_column = df.column("id").unwrap();
    let got: Vec<&str> = id_column.str().unwrap().iter().flatten().collect();
    for id in ids.iter().chain([&failed]) {
        assert!(got.contains(&id.as_str()), "{id} in {got:?}");
    }
    // Hyperparameters that are whole numbers stay whole; metrics are columns of their own.
    let epochs = df.column("hp.epochs").unwrap();
    assert_eq!(epochs.dtype(), &polars::prelude::DataType::Int64);
    let mut epochs: Vec<i64> = epochs.i64().unwrap().iter().flatten().collect();
    epochs.sort();
    assert_eq!(epochs, [2, 4]);
    let accuracy = df.column("metric.accuracy").unwrap();
    assert_eq!(accuracy.f64().unwrap().iter().flatten().count(), 2);
    let status: Vec<&str> = df
        .column("status")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    assert_eq!(status.iter().filter(|s| **s == "Failed").count(), 1);

    // CSV on standard output, filtered as `results list` filters.
    let csv = sandbox.run(&["results", "export", "--status", "Completed"]);
    assert!(csv.status.success(), "{}", both(&csv));
    let csv = text(&csv.stdout);
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for column in [
        "id",
        "task",
        "mode",
        "status",
        "created",
        "duration_seconds",
        "hp.epochs",
        "metric.accuracy",
        "result",
    ] {
        assert!(header.contains(&column), "{column} in {header:?}");
    }
    assert_eq!(lines.count(), 2, "{csv}");
    let epochs_at = header.iter().position(|c| *c == "hp.epochs").unwrap();
    for line in csv.lines().skip(1) {
        let epochs = line.split(',').nth(epochs_at).unwrap_or_default();
        assert!(["2", "4"].contains(&epochs), "whole, not {epochs}: {csv}");
    }

    // JSON, as records.
    let json = sandbox.run(&["results", "export", "--format", "json", "--task", "failing"]);
    let records: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(records.as_array().unwrap().len(), 1);
    assert_eq!(records[0]["id"], failed.as_str());
    assert!(
        records[0]["hp.epochs"].is_i64() || records[0]["hp.epochs"].is_null(),
        "{records}"
    );

    // Parquet needs a file; nothing is half-written.
    let refused = sandbox.run(&["results", "export", "--format", "parquet"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("-o"), "{}", both(&refused));
}

#[test]
fn plots_draw_every_series_and_show_has_sparklines() {
    let sandbox = Sandbox::new();
    let (ids, _) = sweep_and_failure(&sandbox);

    // Two results, one metric with a series each: two lines, named by their sweep names.
    let svg = sandbox.path().join("curves.svg");
    let (output, drawn) = sandbox.json(&[
        "results",
        "plot",
        &ids[0],
        &ids[1],
        "--metric",
        "train_loss",
        "-o",
        svg.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(drawn["series"], 2, "{drawn}");
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(
        picture.starts_with("<svg"),
        "{}",
        &picture[..100.min(picture.len())]
    );
    let texts = picture.replace('\n', "");
    for label in ["E2", "E4", "train_loss"] {
        assert!(texts.contains(&format!(">{label}<")), "{label} in the SVG");
    }
    // One thick line per series plus one per legend entry (and none for a metric not asked for).
    let lines = picture
        .lines()
        .filter(|l| l.starts_with("<polyline") && l.contains("stroke-width=\"2\""))
        .count();
    assert_eq!(lines, 4, "{picture}");
    // Steps are whole: the horizontal axis is labelled at whole numbers only. The legend lies below the
    // chart (below the axis's name), never on the curves.
    let texts: Vec<(String, f64, String)> = svg_texts(&picture);
    let steps: Vec<&str> = texts
        .iter()
        .filter(|(anchor, _, body)| anchor == "middle" && body.parse::<f64>().is_ok())
        .map(|(_, _, body)| body.as_str())
        .collect();
    assert!(steps.len() >= 2, "{texts:?}");
    assert!(steps.iter().all(|s| s.parse::<i64>().is_ok()), "{steps:?}");
    let axis_name = texts.iter().find(|(_, _, body)| body == "step").unwrap().1;
    for label in ["E2", "E4"] {
        let at = texts.iter().find(|(_, _, body)| body == label).unwrap().1;
        assert!(
            at > axis_name,
            "{label} at y={at}, the axis name at y={axis_name}"
        );
    }

    // Without -o: a PNG under $GROUNDS_HOME/plots, every metric with a series, the path printed.
    let png = sandbox.run(&["results", "plot", &ids[1]]);
    assert!(png.status.success(), "{}", both(&png));
    let path = text(&png.stdout).trim().to_string();
    assert!(
        path.starts_with(sandbox.home().join("plots").to_str().unwrap()),
        "{path}"
    );
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert!(width >= 600 && height >= 300, "{width}x{height}");

    // A metric no result has is named with the ones they have; nothing is written.
    let missing = sandbox.path().join("missing.png");
    let wrong = sandbox.run(&[
        "results",
        "plot",
        &ids[0],
        "--metric",
        "nope",
        "-o",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        text(&wrong.stderr).contains("train_loss"),
        "{}",
        both(&wrong)
    );
    assert!(!missing.exists());

    // `results show`: a sparkline for the series, none for the single accuracy.
    let show = text(&sandbox.run(&["results", "show", &ids[1]]).stdout);
    let loss_line = show
        .lines()
        .find(|l| l.trim_start().starts_with("train_loss"))
        .unwrap();
    assert!(
        loss_line.contains('▁') || loss_line.contains('█'),
        "{loss_line}"
    );
    let accuracy_line = show
        .lines()
        .find(|l| l.trim_start().starts_with("accuracy"))
        .unwrap();
    assert!(
        !accuracy_line.contains('▁') && !accuracy_line.contains('█'),
        "{accuracy_line}"
    );
}

/// Copies a stored result under a new id with its job.json changed (status, start time).
fn forge(sandbox: &Sandbox, from: &str, id: &str, status: &str, days_ago: i64) {
    let results = sandbox.home().join("results");
    let mut source =
        zip::ZipArchive::new(std::fs::File::open(results.join(format!("{from}.zip"))).unwrap())
            .unwrap();
    let mut target =
        zip::ZipWriter::new(std::fs::File::create(results.join(format!("{id}.zip"))).unwrap());
    for index in 0..source.len() {
        let mut entry = source.by_index(index).unwrap();
        let name = entry.name().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if name == "job.json" {
            let mut job: Value = serde_json::from_slice(&bytes).unwrap();
            job["id"] = id.into();
            job["status"] = status.into();
            let started = chrono::Utc::now() - chrono::Duration::days(days_ago);
            job["started_at"] = started.to_rfc3339().into();
            bytes = serde_json::to_vec(&job).unwrap();
        }
        target
            .start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        target.write_all(&bytes).unwrap();
    }
    target.finish().unwrap();
}

fn stored_ids(sandbox: &Sandbox) -> Vec<String> {
    sandbox
        .result_zips()
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn rm_and_gc_remove_exactly_what_they_say() {
    let sandbox = Sandbox::new();
    let (ids, failed) = sweep_and_failure(&sandbox);
    forge(
        &sandbox,
        &ids[0],
        "script-mode-old-20250101-000000-aaaa",
        "Completed",
        90,
    );
    forge(
        &sandbox,
        &ids[0],
        "script-mode-remote-20250101-000000-bbbb",
        "InProgress",
        90,
    );
    assert_eq!(stored_ids(&sandbox).len(), 5);

    // Nothing to go by: an error, nothing removed.
    let bare = sandbox.run(&["results", "gc"]);
    assert_eq!(bare.status.code(), Some(2), "{}", both(&bare));
    assert_eq!(stored_ids(&sandbox).len(), 5);

    // Old results: a dry run names the old completed one and spares the InProgress record; nothing goes.
    let (dry, planned) = sandbox.json(&["results", "gc", "--older-than", "30d", "--dry-run"]);
    assert!(dry.status.success(), "{}", both(&dry));
    assert_eq!(
        planned["removed"],
        serde_json::json!(["script-mode-old-20250101-000000-aaaa"])
    );
    assert_eq!(
        planned["spared"][0]["id"],
        "script-mode-remote-20250101-000000-bbbb"
    );
    assert!(planned["bytes"].as_u64().unwrap() > 0);
    assert_eq!(stored_ids(&sandbox).len(), 5);
    let (done, removed) = sandbox.json(&["results", "gc", "--older-than", "30d"]);
    assert!(done.status.success(), "{}", both(&done));
    assert_eq!(removed["removed"], planned["removed"]);
    assert_eq!(stored_ids(&sandbox).len(), 4);

    // By status.
    let (_, removed) = sandbox.json(&["results", "gc", "--status", "failed"]);
    assert_eq!(removed["removed"], serde_json::json!([failed]));
    assert!(!stored_ids(&sandbox).contains(&failed));

    // Keep the newest of each task: the older sweep member goes, the InProgress record stays unforced.
    let (_, removed) = sandbox.json(&["results", "gc", "--keep-last", "1"]);
    let gone: Vec<&str> = removed["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(gone.len(), 1, "{removed}");
    assert!(ids.iter().any(|id| id == gone[0]), "{gone:?}");
    let left = stored_ids(&sandbox);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&"script-mode-remote-20250101-000000-bbbb".to_string()));

    // rm: an InProgress record needs --force; an unknown id removes nothing.
    let refused = sandbox.run(&["results", "rm", "script-mode-remote"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("--force"),
        "{}",
        both(&refused)
    );
    let unknown = sandbox.run(&["results", "rm", "nothing-like-it", "script-mode-remote"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert_eq!(stored_ids(&sandbox).len(), 2);
    let forced = sandbox.run(&["results", "rm", "script-mode-remote", "--force"]);
    assert!(forced.status.success(), "{}", both(&forced));
    assert_eq!(stored_ids(&sandbox).len(), 1);

    // `results list` says how big the store is.
    let list = text(&sandbox.run(&["results", "list"]).stdout);
    assert!(list.contains("MB"), "{list}");
}

#[test]
fn completions_cover_the_commands_and_complete_result_ids() {
    let sandbox = Sandbox::new();
    let task = fixture("titanic/task.toml");
    let (_, ran) = sandbox.json(&["train", "attached", task.to_str().unwrap(), "--quiet"]);
    let id = ran["id"].as_str().unwrap().to_string();
    for shell in ["bash", "zsh", "fish"] {
        let script = sandbox.run(&["completions", shell]);
        assert!(script.status.success(), "{}", both(&script));
        let script = text(&script.stdout);
        for word in [
            "train",
            "results",
            "export",
            "plot",
            "gc",
            "completions",
            "init",
            "complete-ids",
        ] {
            assert!(script.contains(word), "{shell}: {word}");
        }
    }
    // Bash, for real: an id prefix after `results show` completes to the stored id.
    let script = sandbox.path().join("grounds.bash");
    std::fs::write(&script, sandbox.run(&["completions", "bash"]).stdout).unwrap();
    let bin_dir = Path::new(crate::common::BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let prefix = &id[..12];
    let completed = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(grounds results show {prefix}); COMP_CWORD=3; _grounds_ids; echo \"${{COMPREPLY[@]}}\"",
            script.display()
        ))
        .env("PATH", path)
        .env("GROUNDS_HOME", sandbox.home())
        .output()
        .unwrap();
    assert_eq!(text(&completed.stdout).trim(), id, "{}", both(&completed));

    let man = sandbox.run(&["man"]);
    assert!(man.status.success());
    let man = text(&man.stdout);
    assert!(
        man.contains(".TH grounds") && man.contains("results"),
        "{man}"
    );
}

#[test]
fn init_writes_a_task_that_runs_and_never_overwrites() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "project/src/train.py",
        &std::fs::read_to_string(fixture("script-mode/src/train.py")).unwrap(),
    );
    let made = sandbox.run(&["init", "project", "--from", "project/src/train.py"]);
    assert!(made.status.success(), "{}", both(&made));
    let task_file = sandbox.path().join("project/task.toml");
    let written = std::fs::read_to_string(&task_file).unwrap();
    assert!(
        written.contains("epochs = 10") && written.contains("learning_rate = 0.1"),
        "{written}"
    );
    assert!(!written.contains("model-dir ="), "{written}");
    let plan = sandbox.run(&[
        "train",
        "attached",
        task_file.to_str().unwrap(),
        "--dry-run",
    ]);
    assert!(plan.status.success(), "{}", both(&plan));
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(plan["hyperparameters"]["epochs"], "10", "{plan}");

    // Again: refused, the file as it was.
    std::fs::write(&task_file, "# mine\n").unwrap();
    let again = sandbox.run(&["init", "project", "--from", "project/src/train.py"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("never overwrites"),
        "{}",
        both(&again)
    );
    assert_eq!(std::fs::read_to_string(&task_file).unwrap(), "# mine\n");

    // A builtin task on a CSV: it trains.
    let mut csv = String::from("Age,Fare,Sex,Survived\n");
    for i in 0..300 {
        let sex = if i % 3 == 0 { "male" } else { "female" };
        let survived = u8::from(sex == "female" && i % 5 != 0);
        csv.push_str(&format!("{},{}.5,{sex},{survived}\n", 20 + i % 40, i % 70));
    }
    std::fs::write(sandbox.path().join("titanic.csv"), csv).unwrap();
    let made = sandbox.run(&[
        "init",
        "tabular",
        "--builtin",
        "titanic.csv",
        "--label",
        "Survived",
    ]);
    assert!(made.status.success(), "{}", both(&made));
    let tabular = sandbox.path().join("tabular/task.toml");
    let (ran, answer) = sandbox.json(&["train", "attached", tabular.to_str().unwrap(), "--quiet"]);
    assert!(ran.status.success(), "{}", both(&ran));
    assert!(
        answer["metrics"]["roc_auc_score_test"].as_f64().unwrap() > 0.7,
        "{answer}"
    );
    // A label that is not a column names the columns there are.
    let wrong = sandbox.run(&[
        "init",
        "other",
        "--builtin",
        "titanic.csv",
        "--label",
        "survived",
    ]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(text(&wrong.stderr).contains("Survived"), "{}", both(&wrong));
    assert!(!sandbox.path().join("other/task.toml").exists());
}

/// Progress bars: drawn in place when standard error is a terminal (in colour unless `NO_COLOR` or
/// `--color never`), never with `--quiet` or `--json`, and plain lines when standard error is a pipe.
#[test]
fn progress_bars_redraw_on_a_terminal_and_stay_plain_lines_elsewhere() {
    let sandbox = Sandbox::new();
    let task = fixture("script-mode/task.toml");
    let sweep = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "attached",
            task.to_str().unwrap(),
            "--set",
            "epochs=2,3",
        ];
        args.extend_from_slice(extra);
        let mut command = sandbox.command(&args);
        command.env_remove("NO_COLOR").env("TERM", "xterm");
        command
    };
    const BAR: &str = "script-mode: members ended";
    const CLEAR_LINE: &str = "\x1b[2K";

    // At a terminal: the members bar is drawn and redrawn, coloured; the answer on standard output is plain.
    let shown = crate::common::on_terminal(sweep(&[]));
    assert!(shown.status.success(), "{}", shown.terminal);
    let terminal = &shown.terminal;
    assert!(terminal.contains(BAR), "{terminal}");
    assert!(terminal.contains("/2 "), "a count of 2 members: {terminal}");
    assert!(
        terminal.contains(CLEAR_LINE),
        "redrawn in place: {terminal}"
    );
    assert!(
        terminal.contains("\x1b[1;36m    Sweeping"),
        "coloured: {terminal}"
    );
    // The status lines stay above the bar, and the job's own lines too.
    assert!(terminal.contains("Packaged"), "{terminal}");
    // Every line of the jobs once (epochs 2 and 3: five epoch lines), none lost or doubled by redraws.
    assert_eq!(
        terminal.matches("###METRIC###train_loss").count(),
        5,
        "{terminal}"
    );
    let table = text(&shown.stdout);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(!table.contains('\x1b'), "{table}");

    // NO_COLOR and --color never: still drawn, without colour.
    let mut no_color = sweep(&[]);
    no_color.env("NO_COLOR", "1");
    for shown in [
        crate::common::on_terminal(no_color),
        crate::common::on_terminal(sweep(&["--color", "never"])),
    ] {
        assert!(shown.terminal.contains(BAR), "{}", shown.terminal);
        assert!(!shown.terminal.contains("\x1b[1;"), "{}", shown.terminal);
    }

    // --quiet and --json: no bar at all, not a single redraw.
    for flag in ["--quiet", "--json"] {
        let shown = crate::common::on_terminal(sweep(&[flag]));
        assert!(shown.status.success(), "{flag}: {}", shown.terminal);
        assert!(!shown.terminal.contains(BAR), "{flag}: {}", shown.terminal);
        assert!(
            !shown.terminal.contains(CLEAR_LINE),
            "{flag}: {}",
            shown.terminal
        );
        assert!(
            shown.terminal.contains("Sweeping"),
            "{flag}: {}",
            shown.terminal
        );
        if flag == "--json" {
            let rows: Value = serde_json::from_slice(&shown.stdout).unwrap();
            assert_eq!(rows.as_array().unwrap().len(), 2);
        }
    }

    // Standard error a pipe: plain lines, no bar, nothing that moves a cursor; colour only when asked.
    let output = sweep(&[]).output().unwrap();
    assert!(output.status.success(), "{}", both(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("Sweeping 2 members of script-mode"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(BAR) && !stderr.contains('\r') && !stderr.contains('\x1b'),
        "{stderr}"
    );
    let output = sweep(&["--color", "always"]).output().unwrap();
    let stderr = text(&output.stderr);
    assert!(stderr.contains("\x1b[1;32m    Sweeping\x1b[0m"), "{stderr}");
    assert!(
        !stderr.contains(BAR) && !stderr.contains(CLEAR_LINE),
        "{stderr}"
    );

    // A pipeline counts its steps the same way.
    let flow = crate::common::pipeline_copy(&sandbox, "");
    let mut command = sandbox.command(&["train", "attached", flow.to_str().unwrap()]);
    command.env_remove("NO_COLOR");
    let shown = crate::common::on_terminal(command);
    assert!(shown.status.success(), "{}", shown.terminal);
    assert!(shown.terminal.contains("steps ended"), "{}", shown.terminal);
    assert!(shown.terminal.contains("/3 "), "{}", shown.terminal);
}

/// A `.env` line dotenvy cannot read is skipped with a warning that names the file, the line and the
/// variable it seems to set, never its value; the job still runs.
#[test]
fn unreadable_dotenv_lines_are_named_without_their_values() {
    let sandbox = Sandbox::new();
    let task = sandbox.command_task("envs", "print('ran')\n", "");
    sandbox.write(
        "envs/.env",
        "GOOD=yes\nAWS_SECRET_ACCESS_KEY=\"never-shown\nOTHER=1\n",
    );
    let output = sandbox.run(&["train", "attached", task.to_str().unwrap()]);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(".env: line 2 (setting AWS_SECRET_ACCESS_KEY) is not a KEY=VALUE line"),
        "{stderr}"
    );
    assert!(!stderr.contains("never-shown"), "{stderr}");
    assert!(output.status.success(), "{}", both(&output));
}

/// The `<text>` elements of an SVG: (text-anchor, y, text).
fn svg_texts(svg: &str) -> Vec<(String, f64, String)> {
    let attribute = |tag: &str, name: &str| {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let end = tag[start..].find('"')? + start;
        Some(tag[start..end].to_string())
    };
    svg.split("<text")
        .skip(1)
        .filter_map(|rest| {
            let (tag, after) = rest.split_once('>')?;
            let body = after.split("</text>").next()?.trim().to_string();
            let y = attribute(tag, "y")?.parse().ok()?;
            let anchor = attribute(tag, "text-anchor").unwrap_or_default();
            Some((anchor, y, body))
        })
        .collect()
}
