//! The command entry as a container starts it: a job root, a package, the binary itself. (Also what makes
//! `cargo test` build `grounds-entry`, which grounds' own tests run jobs with.)

use std::path::Path;
use std::process::Command;

use grounds_job::manifest::write_package;
use grounds_job::spec::{CommandSpec, Runner, TaskSpec};

fn command_task(run: &[&str]) -> TaskSpec {
    let run = run.iter().map(|s| s.to_string()).collect();
    let requirements = None;
    TaskSpec::new(
        "entry-test",
        Runner::Command(CommandSpec {
            run,
            requirements,
            framework_image: None,
        }),
    )
}

fn entry(root: &Path, package: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_grounds-entry"))
        .arg("--root")
        .arg(root)
        .arg("--package")
        .arg(package)
        .env_remove("SAGEMAKER_BASE_DIR")
        .env_remove("GROUNDS_PACKAGE")
        .output()
        .unwrap()
}

#[test]
fn a_command_runs_in_its_code_folder_with_the_toolkits_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (root, package) = (dir.path().join("ml"), dir.path().join("package.zip"));
    let script = b"echo \"epochs=$SM_HP_EPOCHS in $(basename \"$PWD\")\"\necho done > \"$SM_MODEL_DIR/made\"\n";
    let task = command_task(&["sh", "train.sh"]);
    // Hyperparameters come from the contract's file, as SageMaker writes it.
    std::fs::create_dir_all(root.join("input/config")).unwrap();
    std::fs::write(
        root.join("input/config/hyperparameters.json"),
        r#"{"epochs": "3"}"#,
    )
    .unwrap();
    write_package(&package, &task, &[("train.sh", script)]).unwrap();
    let out = entry(&root, &package);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("epochs=3 in code"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(root.join("model/made")).unwrap(),
        "done\n"
    );
    assert!(!root.join("output/failure").exists());
}

#[test]
fn a_failing_command_keeps_its_exit_code_and_leaves_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (root, package) = (dir.path().join("ml"), dir.path().join("package.zip"));
    let task = command_task(&["sh", "-c", "echo 'no data here' >&2; exit 3"]);
    write_package(&package, &task, &[]).unwrap();
    let out = entry(&root, &package);
    assert_eq!(out.status.code(), Some(3));
    let reason = std::fs::read_to_string(root.join("output/failure")).unwrap();
    assert!(reason.contains("no data here"), "{reason}");
}

#[test]
fn a_missing_package_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ml");
    std::fs::create_dir(&root).unwrap();
    let out = entry(&root, &dir.path().join("nowhere.zip"));
    assert_eq!(out.status.code(), Some(1));
    let reason = std::fs::read_to_string(root.join("output/failure")).unwrap();
    assert!(reason.contains("nowhere.zip"), "{reason}");
}

/// As a container starts it (`train`, no flags, no GROUNDS_PACKAGE): the package comes from its channel,
/// a regular file; a link planted there is never followed.
#[test]
fn the_package_comes_from_its_channel_and_never_through_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ml");
    let channel = root.join("input/data/grounds_package");
    std::fs::create_dir_all(&channel).unwrap();
    let task = command_task(&["sh", "-c", "echo \"channels=$SM_CHANNELS\""]);
    let elsewhere = dir.path().join("elsewhere.zip");
    write_package(&elsewhere, &task, &[]).unwrap();
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_grounds-entry"))
            .arg("train")
            .env("SAGEMAKER_BASE_DIR", &root)
            .env_remove("GROUNDS_PACKAGE")
            .output()
            .unwrap()
    };
    std::os::unix::fs::symlink(&elsewhere, channel.join("package.zip")).unwrap();
    let out = start();
    assert_eq!(out.status.code(), Some(1));
    let reason = std::fs::read_to_string(root.join("output/failure")).unwrap();
    assert!(
        reason.contains("input/data/grounds_package/package.zip")
            && reason.contains("grounds_package"),
        "{reason}"
    );
    std::fs::remove_file(root.join("output/failure")).unwrap();
    std::fs::remove_file(channel.join("package.zip")).unwrap();
    std::fs::copy(&elsewhere, channel.join("package.zip")).unwrap();
    // Listed in inputdataconfig.json as SageMaker lists it, but not one of the program's channels.
    std::fs::create_dir_all(root.join("input/config")).unwrap();
    std::fs::write(
        root.join("input/config/inputdataconfig.json"),
        r#"{"grounds_package": {"TrainingInputMode": "File"}}"#,
    )
    .unwrap();
    let out = start();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("channels=[]"), "{stdout}");
}
