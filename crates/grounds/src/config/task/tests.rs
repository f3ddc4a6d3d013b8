//! Task files: parsing, checks and their messages.
use super::*;

fn parse(text: &str) -> Result<Task, TaskError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.csv"), "a,b\n1,2\n").unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    Task::parse(&dir.path().join("task.toml"), text)
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

const BUILTIN: &str =
    "[task]\nname = \"t\"\n[task.builtin]\nkind = \"single-frame\"\nlabel = \"b\"\n";

#[test]
fn builtin_task_parses_with_channels_and_hyperparameters() {
    let text = format!("{BUILTIN}[channels]\ntraining = \"data.csv\"\n[hyperparameters]\nmax_iter = 1000\nC = 0.5\nflag = true\nname = \"x y\"\n");
    let task = parse(&text).unwrap();
    assert_eq!(task.spec.hyperparameters["max_iter"], "1000");
    assert_eq!(task.spec.hyperparameters["C"], "0.5");
    assert_eq!(task.spec.hyperparameters["flag"], "true");
    assert_eq!(task.spec.hyperparameters["name"], "x y");
    assert!(
        matches!(task.channels["training"], ChannelSource::Local(ref p) if p.ends_with("data.csv"))
    );
}

#[test]
fn unknown_key_names_line_and_column() {
    let message = error(&format!("{BUILTIN}lable = \"x\"\n"));
    assert!(message.contains("task.toml:6:1"), "{message}");
    assert!(message.contains("unknown field `lable`"), "{message}");
}

#[test]
fn bad_name_characters_and_length() {
    let message = error(
        "[task]\nname = \"my_task\"\n[task.builtin]\nkind = \"single-frame\"\nlabel = \"b\"\n",
    );
    assert!(
        message.contains(":2:8") && message.contains("`_`"),
        "{message}"
    );
    let long = "a".repeat(TASK_NAME_MAX + 1);
    let message = error(&format!(
        "[task]\nname = \"{long}\"\n[task.builtin]\nkind = \"single-frame\"\nlabel = \"b\"\n"
    ));
    assert!(message.contains("at most 42"), "{message}");
}

#[test]
fn both_or_neither_runner_is_refused() {
    assert!(error("[task]\nname = \"t\"\n").contains("needs [task.builtin]"));
    let both = format!("{BUILTIN}[task.command]\nsource = \"src\"\nrun = [\"python3\"]\n");
    assert!(error(&both).contains("not several"));
}

#[test]
fn channel_names_paths_and_count() {
    assert!(error(&format!(
        "{BUILTIN}[channels]\n\"bad name\" = \"data.csv\"\n"
    ))
    .contains("channel name `bad name`"));
    let missing = error(&format!("{BUILTIN}[channels]\ntraining = \"nope.csv\"\n"));
    assert!(
        missing.contains("nope.csv does not exist") && missing.contains(":7:12"),
        "{missing}"
    );
    let many: String = (0..21)
        .map(|i| format!("c{i} = \"s3://b/{i}\"\n"))
        .collect();
    assert!(error(&format!("{BUILTIN}[channels]\n{many}")).contains("at most 20"));
}

#[test]
fn hyperparameter_limits() {
    let many: String = (0..101).map(|i| format!("h{i} = {i}\n")).collect();
    assert!(error(&format!("{BUILTIN}[hyperparameters]\n{many}")).contains("at most 100"));
    let long = "x".repeat(2501);
    assert!(
        error(&format!("{BUILTIN}[hyperparameters]\nh = \"{long}\"\n")).contains("at most 2500")
    );
    let task = parse(BUILTIN).unwrap();
    let err = task
        .with_overrides(&[("k".repeat(257), "1".into())])
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 to 256 characters"), "{err}");
}

#[test]
fn command_task_checks_source_and_run() {
    let ok = parse("[task]\nname = \"t\"\n[task.command]\nsource = \"src\"\nrun = [\"python3\", \"train.py\"]\n").unwrap();
    assert!(matches!(ok.spec.runner, Runner::Command(ref c) if c.run == ["python3", "train.py"]));
    assert!(
        error("[task]\nname = \"t\"\n[task.command]\nsource = \"nowhere\"\nrun = [\"x\"]\n")
            .contains("source folder `nowhere` does not exist")
    );
    assert!(
        error("[task]\nname = \"t\"\n[task.command]\nsource = \"src\"\nrun = []\n")
            .contains("must name the program")
    );
    assert!(error("[task]\nname = \"t\"\n[task.command]\nsource = \"src\"\nrun = [\"x\"]\nrequirements = \"data.csv\"\n").contains("outside the source folder"));
}

#[test]
fn overrides_parse() {
    assert_eq!(parse_override("a=b=c").unwrap(), ("a".into(), "b=c".into()));
    assert!(parse_override("novalue").is_err());
}

#[test]
fn hyperparameters_are_written_as_pythons_json_dumps_writes_them() {
    let value = |text: &str| {
        let table: toml::Table = toml::from_str(&format!("v = {text}")).unwrap();
        hyperparameter_string(&table["v"]).unwrap()
    };
    assert_eq!(value("nan"), "NaN");
    assert_eq!(value("inf"), "Infinity");
    assert_eq!(value("-inf"), "-Infinity");
    assert_eq!(value("1e-5"), "1e-05");
    assert_eq!(value("1000.0"), "1000.0");
    assert_eq!(value("[0.1, nan]"), "[0.1,NaN]");
    assert_eq!(value("{ b = 1, a = -inf }"), "{\"a\":-Infinity,\"b\":1}");
    assert_eq!(value("\"Infinity\""), "Infinity");
    assert_eq!(value("7"), "7");
}

#[test]
fn a_framework_task_runs_a_script_of_its_source_and_installs_requirements_txt_only() {
    let head =
        "[task]\nname = \"fw\"\n[task.command]\nsource = \"src\"\nframework_image = \"img:1\"\n";
    let message = error(&format!("{head}run = [\"python3\", \"-m\", \"train\"]\n"));
    assert!(
        message.contains("`run` is the interpreter and the script"),
        "{message}"
    );
    let message = error(&format!("{head}run = [\"python3\", \"missing.py\"]\n"));
    assert!(message.contains("a file of the source folder"), "{message}");
}
