//! Helpers for tests that run the real `grounds` binary in a temporary folder with its own GROUNDS_HOME.
#![allow(dead_code, reason = "each test binary uses some of these helpers")]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_grounds");

/// The grounds binary the tests run: this build, or the one `GROUNDS_TEST_BIN` names (to see a test fail
/// on an older build of grounds).
pub fn bin() -> String {
    match std::env::var("GROUNDS_TEST_BIN") {
        Ok(other) => other,
        Err(_) => {
            entries_are_built();
            BIN.to_string()
        }
    }
}

/// `cargo test -p grounds` builds this package's binary but not the entries, which are other packages'
/// binaries (`cargo test --workspace` builds them, for their own tests): say so once, plainly, instead of
/// letting every test fail on grounds' own "entry binary missing".
fn entries_are_built() {
    static CHECKED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    CHECKED.get_or_init(|| {
        let missing: Vec<String> = ["grounds-entry", "grounds-builtin"]
            .into_iter()
            .filter(|name| !entry_bin(name).is_file())
            .map(|name| entry_bin(name).display().to_string())
            .collect();
        assert!(
            missing.is_empty(),
            "the entry binaries are not built ({}): run `make test` or `cargo test --workspace`, or \
             `cargo build -p grounds-entry -p grounds-builtin` before `cargo test -p grounds`",
            missing.join(", ")
        );
    });
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
}

/// An entry binary of this build (`grounds-entry`, `grounds-builtin`), beside `grounds`.
pub fn entry_bin(name: &str) -> PathBuf {
    Path::new(BIN).with_file_name(name)
}

/// grounds and its entry binaries copied into `dir` (as `make install` lays them beside each other):
/// what a test runs as another build, or as a user who cannot read the build's folder.
pub fn copy_of_grounds(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for name in ["grounds-entry", "grounds-builtin"] {
        std::fs::copy(entry_bin(name), dir.join(name)).unwrap();
    }
    let copy = dir.join("grounds");
    std::fs::copy(BIN, &copy).unwrap();
    copy
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
        needs_for(args);
        let mut command = Command::new(bin());
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
        String::from_utf8(self.bytes(name)).unwrap_or_else(|_| panic!("{name} is text"))
    }

    pub fn bytes(&mut self, name: &str) -> Vec<u8> {
        let mut file = self
            .0
            .by_name(name)
            .unwrap_or_else(|_| panic!("{name} is in the zip"));
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).unwrap();
        bytes
    }

    pub fn json(&mut self, name: &str) -> Value {
        serde_json::from_str(&self.read(name)).unwrap()
    }
}

/// Made by `make base-image` (container/python-base.sh), which `make test` runs first.
pub const PYTHON_BASE: &str = "grounds-test/python:bookworm";

/// The docker CLI, for looking at the engine from outside; fails the test when it fails.
pub fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI runs");
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        both(&output)
    );
    text(&output.stdout)
}

/// Nothing of this job is left in the engine.
pub fn assert_nothing_left(id: &str) {
    let filter = format!("label=grounds.job={id}");
    assert_eq!(
        docker(&["ps", "-a", "-q", "--filter", &filter]).trim(),
        "",
        "containers of {id} left"
    );
    assert_eq!(
        docker(&["network", "ls", "-q", "--filter", &filter]).trim(),
        "",
        "networks of {id} left"
    );
}

/// Runs a command to its end and measures it: its output, and the peak resident memory (KiB) of it and
/// of every process below it that it waited for.
pub fn measured(command: &mut Command) -> (Output, u64) {
    use std::process::Stdio;
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        stdout.read_to_end(&mut bytes).unwrap();
        bytes
    });
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        stderr.read_to_end(&mut bytes).unwrap();
        bytes
    });
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as i32;
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4");
    use std::os::unix::process::ExitStatusExt;
    let output = Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    // The child was reaped by wait4 above; the handle must not wait again.
    std::mem::forget(child);
    (output, usage.ru_maxrss as u64)
}

/// A running grounds whose standard error is collected as it comes, for tests that act in the middle
/// of a run (signals, kill -9).
pub struct Running {
    pub child: std::process::Child,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    pub fn start(mut command: Command) -> Running {
        use std::io::BufRead;
        use std::process::Stdio;
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starts");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let collected = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut all = collected.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        Running {
            child,
            stderr,
            reader: Some(reader),
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until standard error holds `needle`; panics with what it holds after `seconds`.
    pub fn wait_for(&self, needle: &str, seconds: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        while std::time::Instant::now() < deadline {
            if self.stderr().contains(needle) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!(
            "`{needle}` did not appear within {seconds}s:\n{}",
            self.stderr()
        );
    }

    pub fn signal(&self, signal: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// Waits for the end (at most `seconds`); returns the output.
    pub fn finish(mut self, seconds: u64) -> Output {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                if let Some(reader) = self.reader.take() {
                    reader.join().unwrap();
                }
                let mut stdout = Vec::new();
                if let Some(mut out) = self.child.stdout.take() {
                    out.read_to_end(&mut stdout).unwrap();
                }
                return Output {
                    status,
                    stdout,
                    stderr: self.stderr().into_bytes(),
                };
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("grounds did not end within {seconds}s:\n{}", self.stderr());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// Whether a process runs (a zombie does not count).
pub fn process_runs(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Waits until none of `pids` runs; false when some still run after `seconds`.
pub fn all_gone(pids: &[i32], seconds: u64) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        if pids.iter().all(|p| !process_runs(*p)) {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The fixture pipeline copied into the sandbox (so it can be changed), with `extra` appended to each
/// step's task file.
pub fn pipeline_copy(sandbox: &Sandbox, extra: &str) -> PathBuf {
    let from = fixture("pipeline");
    for step in ["prepare", "train", "evaluate"] {
        let task = std::fs::read_to_string(from.join(step).join("task.toml")).unwrap();
        // The fixture's data path is relative to fixtures/pipeline/STEP.
        let task = task.replace(
            "../../titanic/titanic.csv",
            &fixture("titanic/titanic.csv").display().to_string(),
        );
        sandbox.write(&format!("flow/{step}/task.toml"), &format!("{task}{extra}"));
        for entry in std::fs::read_dir(from.join(step).join("src")).unwrap() {
            let entry = entry.unwrap();
            sandbox.write(
                &format!("flow/{step}/src/{}", entry.file_name().to_string_lossy()),
                &std::fs::read_to_string(entry.path()).unwrap(),
            );
        }
    }
    sandbox.write(
        "flow/pipeline.toml",
        &std::fs::read_to_string(from.join("pipeline.toml")).unwrap(),
    )
}

/// What a command wrote when its standard error was a terminal (a pseudo-terminal, 160 columns).
pub struct OnTerminal {
    pub status: std::process::ExitStatus,
    pub stdout: Vec<u8>,
    /// Everything written to the terminal, control sequences included.
    pub terminal: String,
}

/// Runs `command` with standard error on a new pseudo-terminal and standard output piped, as a person
/// running `grounds ... > out` at a terminal would.
pub fn on_terminal(command: Command) -> OnTerminal {
    at_terminal(command, None)
}

/// As [`on_terminal`], with standard input on the terminal too and `typed` typed at it, as a person
/// answering a question would.
pub fn on_terminal_typing(command: Command, typed: &str) -> OnTerminal {
    at_terminal(command, Some(typed))
}

fn at_terminal(mut command: Command, typed: Option<&str>) -> OnTerminal {
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize {
        ws_row: 40,
        ws_col: 160,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two descriptors into the integers given; both are owned from here on.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let stdin = match typed {
        Some(_) => std::process::Stdio::from(slave.try_clone().expect("a second terminal fd")),
        None => std::process::Stdio::null(),
    };
    command
        .stdin(stdin)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::from(slave));
    let child = command.spawn().expect("grounds runs");
    // The command holds the terminal's other end until dropped; the reader sees its end only after.
    drop(command);
    if let Some(typed) = typed {
        // Typed ahead: the terminal holds the line until the program reads it.
        let mut keyboard = std::fs::File::from(master.try_clone().expect("a second master fd"));
        std::io::Write::write_all(&mut keyboard, typed.as_bytes()).expect("typing");
    }
    let reader = std::thread::spawn(move || {
        let mut file = std::fs::File::from(master);
        let mut all = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            match file.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => all.extend_from_slice(&chunk[..n]),
                // EIO: every process holding the other end has closed it.
                Err(_) => break,
            }
        }
        all
    });
    let output = child.wait_with_output().expect("grounds ends");
    OnTerminal {
        status: output.status,
        stdout: output.stdout,
        terminal: text(&reader.join().expect("the terminal reader")),
    }
}

/// Checks, before a test runs grounds with `args`, that what those arguments reach is there: the Docker
/// engine (and the test image) for `train local`, a `--docker-host` and `cache` of an engine; the
/// services of `tests/services.sh` for `train remote`, `--s3`, `stop` and `results fetch`. What is
/// missing is named with what starts it, instead of a failure deep inside the test.
pub fn needs_for(args: &[&str]) {
    let has = |flag: &str| args.contains(&flag);
    let command = (args.first().copied(), args.get(1).copied());
    let engine = matches!(command, (Some("train"), Some("local")))
        || has("--docker-host")
        || (command.0 == Some("cache") && !has("--local") && !has("--s3"));
    let services = matches!(command, (Some("train"), Some("remote")))
        || matches!(command, (Some("results"), Some("fetch")))
        || command.0 == Some("stop")
        || has("--s3");
    if engine {
        needs_docker();
    }
    if services {
        needs_services();
    }
}

/// The Docker engine and the test image: they are there, or the test stops saying what to start.
pub fn needs_docker() {
    static READY: std::sync::LazyLock<Result<(), String>> = std::sync::LazyLock::new(|| {
        let ok = |args: &[&str]| {
            Command::new("docker")
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !ok(&["info"]) {
            return Err(
                "this test runs jobs in Docker, and the Docker engine is not reachable \
                        (`docker info` fails): start it (make test needs it too)"
                    .to_string(),
            );
        }
        if !ok(&["image", "inspect", PYTHON_BASE]) {
            return Err(format!(
                "this test runs jobs on the image {PYTHON_BASE}, which the engine does not have: \
                 `make base-image` makes it (make test does)"
            ));
        }
        Ok(())
    });
    if let Err(why) = &*READY {
        panic!("{why}");
    }
}

/// The services `tests/services.sh` starts (moto, a registry, the SageMaker stand-in, an sshd, a TLS
/// proxy): they are there, or the test stops saying what to start.
pub fn needs_services() {
    for name in [
        "GROUNDS_TEST_MOTO",
        "GROUNDS_TEST_REGISTRY",
        "GROUNDS_TEST_SAGEMAKER",
        "GROUNDS_TEST_TOOLKIT_PYTHON",
        "GROUNDS_TEST_SSH",
    ] {
        if std::env::var_os(name).is_none() {
            panic!(
                "this test needs the services tests/services.sh starts ({name} is not set): run \
                 `make test`, or `tests/services.sh cargo test --workspace`"
            );
        }
    }
}

/// A service's address, as tests/services.sh exports it.
pub fn service(name: &str) -> String {
    needs_services();
    std::env::var(name).unwrap_or_default()
}
