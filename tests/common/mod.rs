//! Helpers for tests that run the real `grounds` binary in a temporary folder with its own GROUNDS_HOME.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_grounds");

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// A temporary working folder with its own result store.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Sandbox {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .current_dir(self.path())
            .env("GROUNDS_HOME", self.home())
            .env("NO_COLOR", "1");
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("grounds runs")
    }

    /// Runs with `--json` and parses standard output.
    pub fn json(&self, args: &[&str]) -> (Output, Value) {
        let mut all = args.to_vec();
        all.push("--json");
        let output = self.run(&all);
        let value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                text(&output.stdout),
                text(&output.stderr)
            )
        });
        (output, value)
    }

    pub fn write(&self, relative: &str, content: &str) -> PathBuf {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    /// A command task in `name/` with `train.py` and extra task-file text.
    pub fn command_task(&self, name: &str, script: &str, extra: &str) -> PathBuf {
        self.write(&format!("{name}/src/train.py"), script);
        self.write(
            &format!("{name}/task.toml"),
            &format!("[task]\nname = \"{name}\"\n\n[task.command]\nsource = \"src\"\nrun = [\"python3\", \"train.py\"]\n{extra}"),
        )
    }

    pub fn result_zips(&self) -> Vec<PathBuf> {
        let mut zips: Vec<PathBuf> = std::fs::read_dir(self.home().join("results"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "zip"))
                    .collect()
            })
            .unwrap_or_default();
        zips.sort();
        zips
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Both streams, for assertion messages.
pub fn both(output: &Output) -> String {
    format!(
        "status: {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    )
}

/// The names of the entries of a zip file, and a reader for single entries.
pub struct ZipFile(pub ::zip::ZipArchive<std::fs::File>);

impl ZipFile {
    pub fn open(path: &Path) -> Self {
        ZipFile(::zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap())
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.0.file_names().map(str::to_string).collect();
        names.sort();
        names
    }

    pub fn read(&mut self, name: &str) -> String {
        let mut file = self
            .0
            .by_name(name)
            .unwrap_or_else(|_| panic!("{name} is in the zip"));
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        text
    }

    pub fn json(&mut self, name: &str) -> Value {
        serde_json::from_str(&self.read(name)).unwrap()
    }
}
