//! Pipeline files through the real binary: `fixtures/pipeline` (prepare → train → evaluate, small stdlib
//! Python scripts whose outputs really flow), attached and in local Docker; reuse, reruns of what changed,
//! a failed step skipping what reads it, and every pipeline-file error before anything runs.

use std::path::Path;

use crate::common::{both, pipeline_copy, text, Sandbox, ZipFile, PYTHON_BASE};
use serde_json::Value;

fn run(
    sandbox: &Sandbox,
    mode: &str,
    file: &Path,
    extra: &[&str],
) -> (std::process::Output, Value) {
    let mut args = vec!["train", mode, file.to_str().unwrap(), "--quiet", "--json"];
    args.extend_from_slice(extra);
    let output = sandbox.run(&args);
    let answer = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (output, answer)
}

/// (step, reused) of each step, in order.
fn steps(answer: &Value) -> Vec<(String, bool)> {
    answer
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {answer}"))
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["reused"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

#[test]
fn a_pipeline_runs_in_order_reuses_what_did_not_change_and_reruns_what_did() {
    let sandbox = Sandbox::new();
    let file = pipeline_copy(&sandbox, "");
    let (output, answer) = run(&sandbox, "attached", &file, &[]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(
        steps(&answer),
        [
            ("prepare".into(), false),
            ("train".into(), false),
            ("evaluate".into(), false)
        ]
    );
    for step in answer.as_array().unwrap() {
        assert_eq!(step["status"], "Completed", "{step}");
    }
    // The outputs really flowed: evaluate scored train's model on prepare's held-out rows.
    let accuracy = answer[2]["metrics"]["test_accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.7 && accuracy < 0.9, "{accuracy}");
    let prepare_id = answer[0]["id"].as_str().unwrap().to_string();
    let train_id = answer[1]["id"].as_str().unwrap().to_string();
    let mut zip = ZipFile::open(Path::new(answer[2]["result"].as_str().unwrap()));
    let job = zip.json("job.json");
    assert_eq!(
        job["pipeline"],
        serde_json::json!({"name": "titanic-flow", "step": "evaluate"})
    );
    let read: Vec<&str> = job["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["result"].as_str().unwrap())
        .collect();
    assert_eq!(read, [train_id.as_str(), prepare_id.as_str()]);
    assert_eq!(
        job["channels"]["model"],
        format!("result://{train_id}/model")
    );

    // Nothing changed: nothing runs.
    let (output, again) = run(&sandbox, "attached", &file, &[]);
    assert!(output.status.success(), "{}", both(&output));
    assert!(steps(&again).iter().all(|(_, reused)| *reused), "{again}");
    assert_eq!(again[1]["id"], train_id.as_str());

    // A hyperparameter of the middle step: prepare reused, train and evaluate run again.
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace(
            "channels = { training = \"step://prepare/output\" }",
            "channels = { training = \"step://prepare/output\" }\nhyperparameters = { smoothing = 5 }",
        ),
    )
    .unwrap();
    let (output, changed) = run(&sandbox, "attached", &file, &[]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(
        steps(&changed),
        [
            ("prepare".into(), true),
            ("train".into(), false),
            ("evaluate".into(), false)
        ]
    );
    // The dry run of the same file now runs nothing; --force-step train would run train and evaluate.
    let (output, plan) = run(
        &sandbox,
        "attached",
        &file,
        &["--dry-run", "--force-step", "train"],
    );
    assert!(output.status.success(), "{}", both(&output));
    let would: Vec<&str> = plan
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["would"].as_str().unwrap())
        .collect();
    assert_eq!(would, ["reuse", "run", "run"], "{plan}");
    let (output, forced) = run(&sandbox, "attached", &file, &["--force-step", "train"]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(
        steps(&forced),
        [
            ("prepare".into(), true),
            ("train".into(), false),
            ("evaluate".into(), false)
        ]
    );
    // Every run of the pipeline is listed by its name.
    let listed = sandbox.run(&["results", "list", "--pipeline", "titanic-flow", "--json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3 + 2 + 2, "{listed}");
    let shown = sandbox.run(&["results", "show", &train_id]);
    assert!(text_of(&shown).contains("pipeline:     titanic-flow, step train"));
}

fn text_of(output: &std::process::Output) -> String {
    text(&output.stdout)
}

#[test]
fn a_pipeline_runs_in_local_docker() {
    let sandbox = Sandbox::new();
    let file = pipeline_copy(
        &sandbox,
        &format!("\n[container]\nbase_image = \"{PYTHON_BASE}\"\n"),
    );
    let (output, answer) = run(&sandbox, "local", &file, &["--parallel", "2"]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(answer.as_array().unwrap().len(), 3);
    assert_eq!(answer[2]["status"], "Completed");
    assert_eq!(answer[2]["mode"], "local");
    assert!(answer[2]["metrics"]["test_accuracy"].as_f64().unwrap() > 0.7);
    let (output, again) = run(&sandbox, "local", &file, &[]);
    assert!(output.status.success(), "{}", both(&output));
    assert!(steps(&again).iter().all(|(_, reused)| *reused), "{again}");
}

#[test]
fn a_failed_step_skips_what_reads_it_and_the_other_branch_goes_on() {
    let sandbox = Sandbox::new();
    sandbox.command_task(
        "bad",
        "import sys\nprint('giving up', flush=True)\nsys.exit(4)\n",
        "",
    );
    sandbox.command_task(
        "reader",
        "print('never', flush=True)\n",
        "[channels]\nmodel = \"../bad/task.toml\"\n",
    );
    sandbox.command_task(
        "fine",
        "import os\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'x'), 'w').write('x')\n",
        "",
    );
    let file = sandbox.write(
        "branches.toml",
        "[pipeline]\nname = \"branches\"\n[steps.bad]\ntask = \"bad/task.toml\"\n\
         [steps.reader]\ntask = \"reader/task.toml\"\nchannels = { model = \"step://bad/model\" }\n\
         [steps.fine]\ntask = \"fine/task.toml\"\n",
    );
    let (output, answer) = run(&sandbox, "attached", &file, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", both(&output));
    let by_step = |name: &str| {
        answer
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {answer}"))
            .clone()
    };
    assert_eq!(by_step("bad")["status"], "Failed");
    assert_eq!(by_step("fine")["status"], "Completed");
    let reader = by_step("reader");
    assert_eq!(reader["status"], "Skipped");
    assert!(
        reader["reason"]
            .as_str()
            .unwrap()
            .contains("step `bad` ended Failed"),
        "{reader}"
    );
    // The table says the same to a person.
    let output = sandbox.run(&["train", "attached", file.to_str().unwrap(), "--quiet"]);
    let table = text(&output.stdout);
    assert!(table.contains("Skipped"), "{table}");
}

#[test]
fn pipeline_file_errors_name_the_file_line_and_step_before_anything_runs() {
    let sandbox = Sandbox::new();
    sandbox.command_task("one", "print(1)\n", "");
    let refused = |name: &str, body: &str, says: &[&str]| {
        let file = sandbox.write(name, &format!("[pipeline]\nname = \"p\"\n{body}"));
        let output = sandbox.run(&["train", "attached", file.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(2), "{}", both(&output));
        let stderr = text(&output.stderr);
        for needle in says {
            assert!(stderr.contains(needle), "expected `{needle}`:\n{stderr}");
        }
    };
    refused(
        "cycle.toml",
        "[steps.a]\ntask = \"one/task.toml\"\nchannels = { x = \"step://b/model\" }\n\
         [steps.b]\ntask = \"one/task.toml\"\nchannels = { x = \"step://a/model\" }\n",
        &["cycle.toml", "in a circle", "a → b → a"],
    );
    refused(
        "unknown.toml",
        "[steps.a]\ntask = \"one/task.toml\"\nchannels = { x = \"step://nope/model\" }\n",
        &["unknown.toml:5:", "step `a`", "there is no step `nope`"],
    );
    refused(
        "folder.toml",
        "[steps.a]\ntask = \"one/task.toml\"\n[steps.b]\ntask = \"one/task.toml\"\nchannels = { x = \"step://a/checkpoints\" }\n",
        &["folder.toml:7:", "step `b`", "not `checkpoints`"],
    );
    refused(
        "given.toml",
        "[steps.a]\ntask = \"one/task.toml\"\nchannels = { x = \"result://abc/checkpoints\", y = \"no/such/dir\" }\n",
        &["given.toml:5:", "step `a`", "is not result://ID/model or result://ID/output"],
    );
    refused(
        "missing.toml",
        "[steps.a]\ntask = \"one/task.toml\"\nchannels = { y = \"no/such/dir\" }\n",
        &[
            "missing.toml:5:",
            "step `a`",
            "relative to the pipeline file",
        ],
    );
    refused(
        "name.toml",
        "[steps.a]\ntask = \"one/task.toml\"\nchannels = { \"bad name!\" = \"step://a/model\" }\n",
        &["name.toml:5:", "step `a`", "bad name!"],
    );
    refused(
        "task.toml.pipeline",
        "[steps.a]\ntask = \"missing/task.toml\"\n",
        &["task.toml.pipeline:4:", "step `a`", "missing/task.toml"],
    );
    assert!(
        sandbox.result_zips().is_empty(),
        "an invalid pipeline ran something"
    );
}

#[test]
fn sweeping_a_step_fans_out_what_reads_it_and_shares_the_rest() {
    let sandbox = Sandbox::new();
    let file = pipeline_copy(&sandbox, "");
    let (output, answer) = run(
        &sandbox,
        "attached",
        &file,
        &["--set", "train.smoothing=1,50", "--parallel", "2"],
    );
    assert!(output.status.success(), "{}", both(&output));
    let steps = answer.as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 5, "{names:?}");
    assert_eq!(
        names[0], "prepare",
        "prepare runs once, before the branches"
    );
    let trains: Vec<&Value> = steps
        .iter()
        .filter(|s| s["step"].as_str().unwrap().starts_with("train@"))
        .collect();
    let evaluates: Vec<&Value> = steps
        .iter()
        .filter(|s| s["step"].as_str().unwrap().starts_with("evaluate@"))
        .collect();
    assert_eq!((trains.len(), evaluates.len()), (2, 2), "{names:?}");
    // Each branch's evaluate read its own branch's train and the one shared prepare.
    let prepare_id = steps[0]["id"].as_str().unwrap();
    for evaluate in &evaluates {
        let branch = evaluate["step"]
            .as_str()
            .unwrap()
            .split('@')
            .nth(1)
            .unwrap();
        let train = trains
            .iter()
            .find(|t| t["step"].as_str().unwrap().ends_with(&format!("@{branch}")))
            .unwrap();
        let mut zip = ZipFile::open(Path::new(evaluate["result"].as_str().unwrap()));
        let job = zip.json("job.json");
        let read: Vec<&str> = job["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["result"].as_str().unwrap())
            .collect();
        assert_eq!(read, [train["id"].as_str().unwrap(), prepare_id]);
    }
    // The branches really differ: another smoothing, another model.
    let models: Vec<String> = trains
        .iter()
        .map(|t| ZipFile::open(Path::new(t["result"].as_str().unwrap())).read("model/rates.json"))
        .collect();
    assert_ne!(models[0], models[1]);
    // A step that does not exist is refused before anything runs.
    let output = sandbox.run(&[
        "train",
        "attached",
        file.to_str().unwrap(),
        "--set",
        "nope.x=1,2",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    assert!(
        text(&output.stderr).contains("there is no step `nope`"),
        "{}",
        both(&output)
    );
}
