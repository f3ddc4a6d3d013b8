//! `result://ID/model|output` channels: a stored result's files fed to another job, attached and in local
//! Docker, with provenance in the consuming result and its content in the fingerprint.

use std::path::{Path, PathBuf};

use crate::common::{both, text, Sandbox, ZipFile, PYTHON_BASE};

/// Writes `weights.txt` (the `w` hyperparameter) into model/ and `rows.csv` into output/data.
const PRODUCER: &str = r#"
import os, sys
w = sys.argv[sys.argv.index('-w') + 1] if '-w' in sys.argv else '1'
open(os.path.join(os.environ['SM_MODEL_DIR'], 'weights.txt'), 'w').write(w)
open(os.path.join(os.environ['SM_OUTPUT_DATA_DIR'], 'rows.csv'), 'w').write('x\n1\n2\n')
"#;

/// Reads both channels and prints a score from them.
const CONSUMER: &str = r#"
import os
w = float(open(os.path.join(os.environ['SM_CHANNEL_MODEL'], 'weights.txt')).read())
rows = open(os.path.join(os.environ['SM_CHANNEL_ROWS'], 'rows.csv')).read().splitlines()
print('score: %f' % (w * (len(rows) - 1)), flush=True)
"#;

fn producer(sandbox: &Sandbox, extra: &str) -> PathBuf {
    sandbox.command_task(
        "producer",
        PRODUCER,
        &format!("[hyperparameters]\nw = \"3\"\n{extra}"),
    )
}

fn consumer(sandbox: &Sandbox, model: &str, rows: &str, extra: &str) -> PathBuf {
    sandbox.command_task(
        "consumer",
        CONSUMER,
        &format!(
            "[channels]\nmodel = \"{model}\"\nrows = \"{rows}\"\n[metrics]\nscore = \"score: ([0-9.]+)\"\n{extra}"
        ),
    )
}

fn train(
    sandbox: &Sandbox,
    mode: &str,
    task: &Path,
    extra: &[&str],
) -> (std::process::Output, serde_json::Value) {
    let mut args = vec!["train", mode, task.to_str().unwrap(), "--quiet"];
    args.extend_from_slice(extra);
    let (output, answer) = sandbox.json(&args);
    (output, answer)
}

#[test]
fn a_result_feeds_another_job_attached_with_provenance_and_reuse() {
    let sandbox = Sandbox::new();
    let (made, produced) = train(&sandbox, "attached", &producer(&sandbox, ""), &[]);
    assert!(made.status.success(), "{}", both(&made));
    let id = produced["id"].as_str().unwrap().to_string();
    // A unique prefix is enough.
    let prefix = &id[..id.len() - 2];
    let task = consumer(
        &sandbox,
        &format!("result://{prefix}/model"),
        &format!("result://{id}/output"),
        "",
    );
    let (ran, answer) = train(&sandbox, "attached", &task, &[]);
    assert!(ran.status.success(), "{}", both(&ran));
    assert_eq!(answer["status"], "Completed");
    assert_eq!(answer["metrics"]["score"], 6.0);
    let stderr = text(&ran.stderr);
    assert!(
        stderr.contains(&format!(
            "Reading channel `model` from result {id} (model/)"
        )),
        "{stderr}"
    );
    // Provenance: the full id of what was read, in job.json and in `results show`.
    let consumer_id = answer["id"].as_str().unwrap().to_string();
    let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
    let job = zip.json("job.json");
    assert_eq!(
        job["inputs"],
        serde_json::json!([
            {"channel": "model", "result": id, "folder": "model"},
            {"channel": "rows", "result": id, "folder": "output"},
        ])
    );
    assert_eq!(job["channels"]["model"], format!("result://{id}/model"));
    let shown = sandbox.run(&["results", "show", &consumer_id]);
    assert!(shown.status.success(), "{}", both(&shown));
    let shown = text(&shown.stdout);
    assert!(shown.contains("read from results"), "{shown}");
    assert!(shown.contains(&format!("model  {id} (model/)")), "{shown}");
    assert!(
        // Aligned under the longer channel name.
        shown.contains(&format!("rows   {id} (output/data/)")),
        "{shown}"
    );

    // Unchanged inputs: reused.
    let (again, reused) = train(&sandbox, "attached", &task, &[]);
    assert!(again.status.success(), "{}", both(&again));
    assert_eq!(reused["id"], consumer_id.as_str());
    assert_eq!(reused["reused"], true);

    // The producer again with another weight: a new result with other content; the consumer pointed at
    // it runs again, and its score follows the data.
    let (made, other) = train(
        &sandbox,
        "attached",
        &producer(&sandbox, ""),
        &["--hp", "w=5"],
    );
    assert!(made.status.success(), "{}", both(&made));
    let other_id = other["id"].as_str().unwrap();
    let task = consumer(
        &sandbox,
        &format!("result://{other_id}/model"),
        &format!("result://{id}/output"),
        "",
    );
    let (ran, answer) = train(&sandbox, "attached", &task, &[]);
    assert!(ran.status.success(), "{}", both(&ran));
    assert_ne!(answer["id"], consumer_id.as_str());
    assert_eq!(answer["metrics"]["score"], 10.0);
}

#[test]
fn a_result_feeds_a_job_in_local_docker() {
    let sandbox = Sandbox::new();
    let container = format!("[container]\nbase_image = \"{PYTHON_BASE}\"\n");
    let (made, produced) = train(&sandbox, "local", &producer(&sandbox, &container), &[]);
    assert!(made.status.success(), "{}", both(&made));
    let id = produced["id"].as_str().unwrap();
    let task = consumer(
        &sandbox,
        &format!("result://{id}/model"),
        &format!("result://{id}/output"),
        &container,
    );
    let (ran, answer) = train(&sandbox, "local", &task, &[]);
    assert!(ran.status.success(), "{}", both(&ran));
    assert_eq!(answer["metrics"]["score"], 6.0);
    let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
    assert_eq!(zip.json("job.json")["inputs"][0]["result"], id);
}

#[test]
fn a_result_channel_that_cannot_be_read_is_refused_before_anything_runs() {
    let sandbox = Sandbox::new();
    let refused = |task: &Path, says: &str| {
        let output = sandbox.run(&["train", "attached", task.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(2), "{}", both(&output));
        let stderr = text(&output.stderr);
        assert!(stderr.contains(says), "expected `{says}`:\n{stderr}");
    };
    // Not a folder a result has, with the line of the task file.
    let task = consumer(
        &sandbox,
        "result://abc/checkpoints",
        "result://abc/output",
        "",
    );
    refused(&task, "is not result://ID/model or result://ID/output");
    refused(&task, "task.toml:8:9");
    // No such result.
    let task = consumer(
        &sandbox,
        "result://nothing-like-this/model",
        "result://nothing-like-this/output",
        "",
    );
    refused(&task, "channel `model` (result://nothing-like-this/model)");
    // A failed result, and a result whose job wrote no output files.
    let failing = sandbox.command_task("failing", "import sys\nsys.exit(3)\n", "");
    let (failed, answer) = train(&sandbox, "attached", &failing, &[]);
    assert_eq!(failed.status.code(), Some(1), "{}", both(&failed));
    let failed_id = answer["id"].as_str().unwrap();
    let task = consumer(
        &sandbox,
        &format!("result://{failed_id}/model"),
        &format!("result://{failed_id}/output"),
        "",
    );
    refused(
        &task,
        "is Failed: only a completed result can feed a channel",
    );
    let quiet = sandbox.command_task("quiet", "print('nothing written')\n", "");
    let (ok, answer) = train(&sandbox, "attached", &quiet, &[]);
    assert!(ok.status.success(), "{}", both(&ok));
    let quiet_id = answer["id"].as_str().unwrap();
    let task = consumer(
        &sandbox,
        &format!("result://{quiet_id}/model"),
        &format!("result://{quiet_id}/output"),
        "",
    );
    refused(&task, "has no files in model/");
    assert_eq!(
        sandbox.result_zips().len(),
        2,
        "a refused run stored a result"
    );
}
