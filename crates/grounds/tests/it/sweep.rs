//! Sweeps through the real binary: the grid, automatic names, parallel members with their own results,
//! reuse of completed members, a failing member, and the same sweep in local Docker.

use crate::common::{both, fixture, text, Sandbox, ZipFile};

fn sweep_task(sandbox: &Sandbox) -> String {
    sandbox.write("sweep/data/d.csv", "a\n1\n");
    let script = "import argparse, sys\np = argparse.ArgumentParser()\np.add_argument('--learning_rate', type=float)\np.add_argument('--network_size', type=int)\na = p.parse_args()\nif a.network_size == 99: sys.exit('network too large')\nprint(f'###METRIC###score:{a.learning_rate * a.network_size}###')\n";
    let task = sandbox.command_task("sweep", script, "[channels]\ntraining = \"data\"\n[hyperparameters]\nlearning_rate = 1.0\nnetwork_size = 1\n");
    task.to_str().unwrap().to_string()
}

fn by_name(rows: &serde_json::Value) -> std::collections::BTreeMap<String, serde_json::Value> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

#[test]
fn a_two_by_two_sweep_runs_reuses_and_runs_only_what_changed() {
    let sandbox = Sandbox::new();
    let task = sweep_task(&sandbox);
    let args = [
        "train",
        "attached",
        &task,
        "--set",
        "learning_rate=0.1,1",
        "--set",
        "network_size=10,20",
        "--quiet",
        "--parallel",
        "2",
    ];
    let (output, rows) = sandbox.json(&args);
    assert!(output.status.success(), "{}", both(&output));
    let rows = by_name(&rows);
    assert_eq!(
        rows.keys().cloned().collect::<Vec<_>>(),
        ["LR0p1-NS10", "LR0p1-NS20", "LR1-NS10", "LR1-NS20"]
    );
    for (name, row) in &rows {
        assert_eq!(row["status"], "Completed", "{name}");
        assert_eq!(row["reused"], false);
        let id = row["id"].as_str().unwrap();
        assert!(id.starts_with(&format!("sweep-{name}-")), "{id}");
        let mut zip = ZipFile::open(std::path::Path::new(row["result"].as_str().unwrap()));
        let job = zip.json("job.json");
        assert_eq!(
            job["hyperparameters"]["learning_rate"],
            row["hyperparameters"]["learning_rate"]
        );
        assert_eq!(
            job["hyperparameters"]["network_size"],
            row["hyperparameters"]["network_size"]
        );
    }
    assert_eq!(rows["LR1-NS20"]["metrics"]["score"], 20.0);
    assert_eq!(rows["LR0p1-NS10"]["metrics"]["score"], 1.0);
    let table = text(
        &sandbox
            .run(
                &args[..args.len() - 2]
                    .iter()
                    .chain(["--sort", "score"].iter())
                    .copied()
                    .collect::<Vec<_>>(),
            )
            .stdout,
    );
    let first = table.lines().nth(1).unwrap_or_default();
    assert!(
        first.starts_with("LR1-NS20") && first.contains("(reused)"),
        "{table}"
    );

    // The same sweep again: every member reused.
    let (_, again) = sandbox.json(&args);
    assert!(
        again
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["reused"] == true),
        "{again}"
    );
    assert_eq!(sandbox.result_zips().len(), 4);
    // One more value: only the new members run.
    let mut more = args.to_vec();
    more[4] = "learning_rate=0.1,1,2";
    let (_, grown) = sandbox.json(&more);
    let grown = by_name(&grown);
    let ran: Vec<&String> = grown
        .iter()
        .filter(|(_, r)| r["reused"] == false)
        .map(|(n, _)| n)
        .collect();
    assert_eq!(ran, ["LR2-NS10", "LR2-NS20"]);
    // A changed data file: everything runs again.
    sandbox.write("sweep/data/d.csv", "a\n2\n");
    let (_, changed) = sandbox.json(&args);
    assert!(
        changed
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["reused"] == false),
        "{changed}"
    );
    assert_eq!(sandbox.result_zips().len(), 10);
}

#[test]
fn a_failing_member_does_not_stop_the_others() {
    let sandbox = Sandbox::new();
    let task = sweep_task(&sandbox);
    let (output, rows) = sandbox.json(&[
        "train",
        "attached",
        &task,
        "--set",
        "network_size=1,99,3",
        "--quiet",
    ]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "the sweep did not all complete: {}",
        both(&output)
    );
    let rows = by_name(&rows);
    assert_eq!(rows["NS99"]["status"], "Failed");
    assert!(rows["NS99"]["failure_reason"]
        .as_str()
        .unwrap()
        .contains("network too large"));
    assert_eq!(rows["NS1"]["status"], "Completed");
    assert_eq!(rows["NS3"]["metrics"]["score"], 3.0);
}

#[test]
fn a_sweep_table_in_the_task_file_and_set_together() {
    let sandbox = Sandbox::new();
    let task = sweep_task(&sandbox);
    let text_of_task = std::fs::read_to_string(&task).unwrap();
    std::fs::write(
        &task,
        format!("{text_of_task}[sweep]\nlearning_rate = [0.5, 2.0]\n"),
    )
    .unwrap();
    let (output, rows) = sandbox.json(&[
        "train",
        "attached",
        &task,
        "--set",
        "network_size=4",
        "--quiet",
    ]);
    assert!(output.status.success(), "{}", both(&output));
    let rows = by_name(&rows);
    assert_eq!(rows.keys().cloned().collect::<Vec<_>>(), ["LR0p5", "LR2p0"]);
    assert_eq!(rows["LR2p0"]["metrics"]["score"], 8.0);
    // A [sweep] value that is not a list is a task-file error.
    std::fs::write(
        &task,
        format!("{text_of_task}[sweep]\nlearning_rate = 0.5\n"),
    )
    .unwrap();
    let output = sandbox.run(&["train", "attached", &task]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("sweep `learning_rate` must be a list"),
        "{}",
        both(&output)
    );
}

#[test]
fn the_same_sweep_runs_in_local_docker() {
    let sandbox = Sandbox::new();
    let task = fixture("titanic/task.toml");
    let (output, rows) = sandbox.json(&[
        "train",
        "local",
        task.to_str().unwrap(),
        "--set",
        "C=0.01,1",
        "--quiet",
        "--parallel",
        "2",
    ]);
    assert!(output.status.success(), "{}", both(&output));
    let rows = by_name(&rows);
    assert_eq!(rows.keys().cloned().collect::<Vec<_>>(), ["C0p01", "C1"]);
    for row in rows.values() {
        assert_eq!(row["status"], "Completed");
        assert_eq!(row["mode"], "local");
    }
    let strong = rows["C0p01"]["metrics"]["roc_auc_score_test"]
        .as_f64()
        .unwrap();
    let weak = rows["C1"]["metrics"]["roc_auc_score_test"]
        .as_f64()
        .unwrap();
    assert!(
        (weak - 0.853).abs() < 0.01 && strong != weak,
        "{strong} {weak}"
    );
}
