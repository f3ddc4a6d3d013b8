//! The builtin entry as a container starts it: titanic in the training channel, a builtin package, the
//! binary itself. (Also what makes `cargo test` build `grounds-builtin`, which grounds' own tests run
//! builtin jobs with.)

use std::path::Path;
use std::process::Command;

use grounds_job::manifest::write_package;
use grounds_job::spec::{BuiltinKind, BuiltinSpec, ModelKind, Runner, TaskSpec};

fn builtin_task(label: &str, features: &[&str]) -> TaskSpec {
    let spec = BuiltinSpec {
        kind: BuiltinKind::SingleFrame,
        label: label.into(),
        features: Some(features.iter().map(|s| s.to_string()).collect()),
        model: ModelKind::LogisticRegression,
        folds: Some(3),
        test_size: None,
        seed: Some(7),
    };
    let mut task = TaskSpec::new("builtin-entry-test", Runner::Builtin(spec));
    task.channels = vec!["training".into()];
    task
}

/// The entry as an image starts it: the root and the package from the environment, no flags.
fn run_entry(root: &Path, package: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_grounds-builtin"))
        .arg("train")
        .env("SAGEMAKER_BASE_DIR", root)
        .env("GROUNDS_PACKAGE", package)
        .output()
        .unwrap()
}

fn titanic_root(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("ml");
    let training = root.join("input/data/training");
    std::fs::create_dir_all(&training).unwrap();
    let titanic = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/titanic/titanic.csv");
    std::fs::copy(titanic, training.join("titanic.csv")).unwrap();
    root
}

#[test]
fn the_builtin_entry_trains_titanic_from_its_channel() {
    let dir = tempfile::tempdir().unwrap();
    let root = titanic_root(dir.path());
    let package = dir.path().join("package.zip");
    let task = builtin_task("Survived", &["Pclass", "Sex", "Age", "Fare"]);
    write_package(&package, &task, &[]).unwrap();
    let out = run_entry(&root, &package);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let model: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("model/model.json")).unwrap()).unwrap();
    let features = model.to_string();
    for feature in ["Pclass", "Sex", "Age", "Fare"] {
        assert!(features.contains(feature), "{feature} not in model.json");
    }
    assert!(root.join("model/result_df.parquet").is_file());
}

#[test]
fn a_feature_named_twice_fails_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let root = titanic_root(dir.path());
    let package = dir.path().join("package.zip");
    write_package(&package, &builtin_task("Survived", &["Age", "Age"]), &[]).unwrap();
    let out = run_entry(&root, &package);
    assert_eq!(out.status.code(), Some(1));
    let reason = std::fs::read_to_string(root.join("output/failure")).unwrap();
    assert!(
        reason.contains("column `Age` is asked for twice"),
        "{reason}"
    );
}
