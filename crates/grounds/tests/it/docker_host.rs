//! `grounds train local --docker-host ssh://…`: the engine reached through a real sshd (tests/services.sh)
//! whose `docker` talks to this machine's engine, so nothing is bind-mounted and every file travels through
//! the engine's archive endpoints and data volumes. Compared with `train local` on the same engine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{
    assert_nothing_left, both, docker, fixture, text, Running, Sandbox, ZipFile, PYTHON_BASE,
};

/// `ssh://user@127.0.0.1:PORT` of the test sshd.
fn ssh_host() -> String {
    format!("ssh://{}", crate::common::service("GROUNDS_TEST_SSH"))
}

/// The ssh command with the test's key and known hosts, plus `extra` options.
fn ssh_command(extra: &str) -> String {
    let config = crate::common::service("GROUNDS_TEST_SSH_CONFIG");
    format!("ssh -F {config} {extra}")
}

/// `grounds ARGS` against the test sshd's engine.
fn over_ssh(sandbox: &Sandbox, args: &[&str], extra_ssh: &str) -> Command {
    let mut command = sandbox.command(args);
    command.env("GROUNDS_SSH_COMMAND", ssh_command(extra_ssh));
    command
}

fn json_of(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", both(output)))
}

fn metrics(answer: &serde_json::Value) -> Vec<(String, f64)> {
    answer["metrics"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
        .collect()
}

/// A command task on the Python image with one channel of data unique to this test (so the engine
/// cannot have it yet).
fn command_task(sandbox: &Sandbox, name: &str, script: &str) -> (PathBuf, String, DataVolumes) {
    sandbox.write(&format!("{name}/src/train.py"), script);
    let unique = format!("{}-{}", std::process::id(), fastrand_seed());
    sandbox.write(
        &format!("{name}/data/rows.csv"),
        &format!("x,y\n1,{unique}\n"),
    );
    sandbox.write(&format!("{name}/data/nested/more.txt"), "more\n");
    let task = sandbox.write(
        &format!("{name}/task.toml"),
        &format!(
            "[task]\nname = \"{name}\"\n[task.command]\nsource = \"src\"\nrun = [\"python3\", \"train.py\"]\n\
             [channels]\ntraining = \"data\"\n[container]\nbase_image = \"{PYTHON_BASE}\"\n"
        ),
    );
    let volumes = DataVolumes(data_hash(&sandbox.path().join(name).join("data")));
    (task, unique, volumes)
}

/// The engine's volumes of one test's data, removed when the test ends, passed or failed.
struct DataVolumes(String);

impl Drop for DataVolumes {
    fn drop(&mut self) {
        let filter = format!("label=grounds.data={}", self.0);
        if let Ok(listed) = Command::new("docker")
            .args(["volume", "ls", "-q", "--filter", &filter])
            .output()
        {
            for volume in text(&listed.stdout).split_whitespace() {
                let _ = Command::new("docker")
                    .args(["volume", "rm", "-f", volume])
                    .output();
            }
        }
    }
}

fn fastrand_seed() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// What the job writes: a metric from its channel, files in model/ and output/data, a link inside model/.
const WRITER: &str = r#"
import os, time
rows = open('/opt/ml/input/data/training/rows.csv').read().splitlines()
more = open('/opt/ml/input/data/training/nested/more.txt').read()
print('rows', len(rows), flush=True)
print('loss: %f' % (1.0 / len(rows)), flush=True)
os.makedirs('/opt/ml/model/sub', exist_ok=True)
open('/opt/ml/model/sub/weights.txt', 'w').write(rows[1] + more)
os.symlink('sub/weights.txt', '/opt/ml/model/latest')
open('/opt/ml/output/data/report.txt', 'w').write('report\n')
try:
    open('/opt/ml/input/data/training/new.txt', 'w').write('x')
    print('channel writable', flush=True)
except OSError:
    print('channel read-only', flush=True)
time.sleep(float(os.environ.get('SLEEP', '0')))
"#;

const METRICS: &str = "[metrics]\nloss = \"loss: ([0-9.]+)\"\n";

#[test]
fn builtin_over_ssh_gives_the_same_result_as_train_local() {
    let sandbox = Sandbox::new();
    let task = fixture("titanic/task.toml");
    let task = task.to_str().unwrap();
    let local = sandbox.run(&["train", "local", task, "--quiet", "--json"]);
    assert!(local.status.success(), "{}", both(&local));
    let local = json_of(&local);
    let ssh = ssh_host();
    let remote = over_ssh(
        &sandbox,
        &[
            "train",
            "local",
            task,
            "--force",
            "--docker-host",
            &ssh,
            "--json",
        ],
        "",
    )
    .output()
    .unwrap();
    assert!(remote.status.success(), "{}", both(&remote));
    let stderr = text(&remote.stderr);
    assert!(
        stderr.contains(&format!("Engine {ssh}")) || stderr.contains(&ssh),
        "{stderr}"
    );
    assert!(
        stderr.contains("copied in and out, not mounted"),
        "{stderr}"
    );
    // The job's output streamed live over SSH.
    assert!(
        stderr.contains("[single-frame] stage fit: split 5 of 5"),
        "{stderr}"
    );
    let remote = json_of(&remote);
    assert_eq!(remote["status"], "Completed");
    assert_eq!(remote["mode"], "local");
    assert_eq!(metrics(&remote), metrics(&local));
    let mut local_zip = ZipFile::open(Path::new(local["result"].as_str().unwrap()));
    let mut remote_zip = ZipFile::open(Path::new(remote["result"].as_str().unwrap()));
    assert_eq!(local_zip.names(), remote_zip.names());
    for name in ["model/model.json", "model/metrics.json", "package.json"] {
        assert_eq!(local_zip.read(name), remote_zip.read(name), "{name}");
    }
    assert_nothing_left(remote["id"].as_str().unwrap());
}

#[test]
fn command_task_over_ssh_mounts_nothing_and_brings_every_file_back() {
    let sandbox = Sandbox::new();
    let (task, unique, _volumes) = command_task(&sandbox, "ssh-writer", WRITER);
    std::fs::write(
        &task,
        std::fs::read_to_string(&task).unwrap() + "pass_env = [\"SLEEP\"]\n" + METRICS,
    )
    .unwrap();
    let task = task.to_str().unwrap();
    let ssh = ssh_host();
    let mut first = over_ssh(
        &sandbox,
        &["train", "local", task, "--docker-host", &ssh, "--json"],
        "",
    );
    // Long enough to look at the container while it runs.
    first.env("SLEEP", "4");
    let run = Running::start(first);
    // While the job runs: its container has no bind mount; the channel is a read-only volume.
    let deadline = Instant::now() + Duration::from_secs(180);
    let container = loop {
        let found = docker(&[
            "ps",
            "-q",
            "--filter",
            "label=grounds",
            "--filter",
            "name=ssh-writer",
        ]);
        if let Some(id) = found.lines().next() {
            break id.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no container ran:\n{}",
            run.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mounts: serde_json::Value = serde_json::from_str(&docker(&[
        "inspect",
        "--format",
        "{{json .Mounts}}",
        &container,
    ]))
    .unwrap();
    let mounts = mounts.as_array().unwrap();
    assert!(
        mounts.iter().all(|m| m["Type"] != "bind"),
        "a bind mount in an ssh run: {mounts:?}"
    );
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert_eq!(mounts[0]["Type"], "volume");
    assert_eq!(mounts[0]["Destination"], "/opt/ml/input/data/training");
    assert_eq!(mounts[0]["RW"], false);
    let binds = docker(&[
        "inspect",
        "--format",
        "{{json .HostConfig.Binds}}",
        &container,
    ]);
    assert_eq!(binds.trim(), "null", "{binds}");

    let output = run.finish(180);
    assert!(output.status.success(), "{}", both(&output));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("Sending channel `training`"), "{stderr}");
    assert!(stderr.contains("channel read-only"), "{stderr}");
    let answer = json_of(&output);
    assert_eq!(answer["status"], "Completed");
    assert_eq!(answer["metrics"]["loss"], 0.5);
    let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
    assert_eq!(
        zip.read("model/sub/weights.txt"),
        format!("1,{unique}more\n")
    );
    assert_eq!(zip.read("output/data/report.txt"), "report\n");
    let names = zip.names();
    assert!(names.contains(&"model/latest".to_string()), "{names:?}");
    assert!(
        zip.json("job.json")["left_out"]
            .as_array()
            .is_none_or(|l| l.is_empty()),
        "{}",
        zip.read("job.json")
    );
    assert_nothing_left(answer["id"].as_str().unwrap());

    // A line of code changes, the data does not: the data is not sent (the volume on the engine is used)
    // and the image is not built again (the package comes with the job's root).
    sandbox.write(
        "ssh-writer/src/train.py",
        &format!("{WRITER}print('edited', flush=True)\n"),
    );
    let again = over_ssh(
        &sandbox,
        &["train", "local", task, "--docker-host", &ssh, "--json"],
        "",
    )
    .env("SLEEP", "0")
    .output()
    .unwrap();
    assert!(again.status.success(), "{}", both(&again));
    let stderr = text(&again.stderr);
    assert!(
        stderr.contains("Reusing channel `training` on the engine"),
        "{stderr}"
    );
    assert!(!stderr.contains("Sending channel"), "{stderr}");
    assert!(stderr.contains("Reusing image"), "{stderr}");
    assert!(!stderr.contains("Building image"), "{stderr}");
    assert!(
        stderr.contains("| edited") || stderr.contains("\nedited"),
        "{stderr}"
    );
    assert_eq!(json_of(&again)["image"], answer["image"]);

    // The same task mounted (train local on this machine's socket) gives the same files.
    let local = sandbox.run(&["train", "local", task, "--force", "--json"]);
    assert!(local.status.success(), "{}", both(&local));
    let local = json_of(&local);
    assert_eq!(metrics(&local), metrics(&answer));
    let mut local_zip = ZipFile::open(Path::new(local["result"].as_str().unwrap()));
    assert_eq!(local_zip.names(), names);
    assert_eq!(
        local_zip.read("model/sub/weights.txt"),
        zip.read("model/sub/weights.txt")
    );
    // Mounted runs give each host its own writable copy of the data.
    assert!(local_zip.read("logs.txt").contains("channel writable"));
}

#[test]
fn two_hosts_over_ssh_reach_each_other() {
    let sandbox = Sandbox::new();
    let task = fixture("multi-host/task.toml");
    let output = over_ssh(
        &sandbox,
        &[
            "train",
            "local",
            task.to_str().unwrap(),
            "--docker-host",
            &ssh_host(),
            "--json",
        ],
        "",
    )
    .output()
    .unwrap();
    assert!(output.status.success(), "{}", both(&output));
    let answer = json_of(&output);
    assert_eq!(answer["status"], "Completed");
    let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
    assert_eq!(
        zip.json("job.json")["hosts"],
        serde_json::json!(["algo-1", "algo-2"])
    );
    assert!(zip.read("logs.txt").contains("algo-2 | "));
    assert_nothing_left(answer["id"].as_str().unwrap());
}

#[test]
fn ctrl_c_over_ssh_stops_the_job_and_leaves_no_container_or_ssh_behind() {
    let sandbox = Sandbox::new();
    let (task, _, _volumes) = command_task(
        &sandbox,
        "ssh-sleeper",
        "import time\nprint('sleeping', flush=True)\ntime.sleep(300)\n",
    );
    // A mark on this test's ssh processes, to find them afterwards.
    let mark = format!("SetEnv=GROUNDS_TEST_MARK={}", std::process::id());
    let run = Running::start(over_ssh(
        &sandbox,
        &[
            "train",
            "local",
            task.to_str().unwrap(),
            "--docker-host",
            &ssh_host(),
            "--grace",
            "2",
            "--json",
        ],
        &format!("-o {mark}"),
    ));
    run.wait_for("sleeping", 180);
    run.signal(libc::SIGINT);
    let output = run.finish(60);
    assert_eq!(output.status.code(), Some(130), "{}", both(&output));
    let answer = json_of(&output);
    assert_eq!(answer["status"], "Stopped");
    let mut zip = ZipFile::open(Path::new(answer["result"].as_str().unwrap()));
    assert!(zip.read("logs.txt").contains("sleeping"));
    assert_nothing_left(answer["id"].as_str().unwrap());
    // No ssh of this run outlives it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = Command::new("pgrep").args(["-f", &mark]).output().unwrap();
        if text(&left.stdout).trim().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ssh processes left: {}",
            text(&left.stdout)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A failed connection: exit 2, the message, and nothing stored.
fn refused(sandbox: &Sandbox, host: &str, extra_ssh: &str, says: &str) {
    let output = over_ssh(
        sandbox,
        &[
            "train",
            "local",
            fixture("titanic/task.toml").to_str().unwrap(),
            "--force",
            "--docker-host",
            host,
        ],
        extra_ssh,
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    let stderr = text(&output.stderr);
    assert!(stderr.contains(says), "expected `{says}`:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn what_people_meet_first_gets_a_clear_message() {
    let sandbox = Sandbox::new();
    let ssh = ssh_host();
    // Nobody listens on the port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    refused(
        &sandbox,
        &format!("ssh://127.0.0.1:{port}"),
        "",
        "cannot reach 127.0.0.1 over SSH",
    );
    // A key the server does not know.
    let key = sandbox.path().join("stranger");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", both(&made));
    let stranger = sandbox.write(
        "stranger.config",
        &format!(
            "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile /dev/null\n  \
             StrictHostKeyChecking no\n  LogLevel ERROR\n",
            key.display()
        ),
    );
    let output = sandbox
        .command(&[
            "train",
            "local",
            fixture("titanic/task.toml").to_str().unwrap(),
            "--force",
            "--docker-host",
            &ssh,
        ])
        .env(
            "GROUNDS_SSH_COMMAND",
            format!("ssh -F {}", stranger.display()),
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    assert!(
        text(&output.stderr).contains("refused SSH authentication"),
        "{}",
        both(&output)
    );
    // No docker on the SSH user's PATH.
    let no_docker = format!(
        "ssh://{}",
        crate::common::service("GROUNDS_TEST_SSH_NO_DOCKER")
    );
    refused(&sandbox, &no_docker, "", "there is no `docker` on");
    // An engine that does not answer there.
    refused(
        &sandbox,
        &ssh,
        "-o SetEnv=DOCKER_HOST=unix:///nonexistent/docker.sock",
        "does not answer",
    );
    // A host that is not a Docker host address at all.
    refused(
        &sandbox,
        "gpu-box",
        "",
        "--docker-host `gpu-box` is not a Docker host",
    );
    assert!(
        sandbox.result_zips().is_empty(),
        "a failed connection stored a result"
    );
}

#[test]
fn dry_run_names_the_host_and_says_copy() {
    let sandbox = Sandbox::new();
    let ssh = ssh_host();
    let output = sandbox.run(&[
        "train",
        "local",
        fixture("titanic/task.toml").to_str().unwrap(),
        "--docker-host",
        &ssh,
        "--dry-run",
    ]);
    assert!(output.status.success(), "{}", both(&output));
    let plan = json_of(&output);
    let containers = &plan["containers"];
    assert_eq!(containers["docker_host"], ssh);
    assert_eq!(containers["files"], "copy");
    let host = &containers["hosts"][0];
    assert_eq!(host["mounts"], serde_json::json!([]));
    assert!(host["volumes"][0]
        .as_str()
        .unwrap()
        .contains("/opt/ml/input/data/training"));
    // The mounted plan, for contrast.
    let mounted = sandbox.run(&[
        "train",
        "local",
        fixture("titanic/task.toml").to_str().unwrap(),
        "--dry-run",
    ]);
    let mounted = json_of(&mounted);
    assert_eq!(mounted["containers"]["files"], "mount");
    assert!(mounted["containers"]["hosts"][0]["mounts"][0]
        .as_str()
        .unwrap()
        .ends_with(":/opt/ml"));
}

#[test]
fn cached_data_is_listed_and_cleared() {
    let sandbox = Sandbox::new();
    let (task, _, _volumes) = command_task(&sandbox, "ssh-cache", "print('done')\n");
    let ssh = ssh_host();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "local",
            task.to_str().unwrap(),
            "--docker-host",
            &ssh,
        ];
        args.extend_from_slice(extra);
        let output = over_ssh(&sandbox, &args, "").output().unwrap();
        assert!(output.status.success(), "{}", both(&output));
        text(&output.stderr)
    };
    assert!(run(&[]).contains("Sending channel `training`"));
    let list = over_ssh(
        &sandbox,
        &["cache", "list", "--docker-host", &ssh, "--json"],
        "",
    )
    .output()
    .unwrap();
    assert!(list.status.success(), "{}", both(&list));
    let listed = json_of(&list);
    let ours: Vec<&serde_json::Value> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["channel"] == "training" && d["files"] == 2)
        .collect();
    assert!(!ours.is_empty(), "{listed}");
    // Each of our data sets is in the engine as a volume labelled grounds.
    let hash = data_hash(&task.parent().unwrap().join("data"));
    let entry = ours
        .iter()
        .find(|d| d["hash"] == hash.as_str())
        .unwrap_or_else(|| panic!("{hash} not listed: {listed}"));
    let volume = entry["volume"].as_str().unwrap();
    assert!(docker(&["volume", "inspect", "--format", "{{.Labels}}", volume]).contains("grounds"));

    let cleared = over_ssh(
        &sandbox,
        &[
            "cache",
            "clear",
            "--docker-host",
            &ssh,
            &hash[..16],
            "--json",
        ],
        "",
    )
    .output()
    .unwrap();
    assert!(cleared.status.success(), "{}", both(&cleared));
    let cleared = json_of(&cleared);
    assert_eq!(cleared["removed"][0]["hash"], hash.as_str());
    let gone = Command::new("docker")
        .args(["volume", "inspect", volume])
        .output()
        .unwrap();
    assert!(!gone.status.success(), "{volume} is still there");
    // Gone from the engine: the next run sends the data again.
    assert!(run(&["--force"]).contains("Sending channel `training`"));
}

/// The content hash grounds gives a data folder, as `cache list` shows it and the volumes' labels carry:
/// sha256 over each file's relative name, a 0 byte, its bytes and a 0xff byte, in name order.
fn data_hash(data: &Path) -> String {
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    fn walk(dir: &Path, prefix: &str, files: &mut Vec<(String, PathBuf)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if entry.path().is_dir() {
                walk(&entry.path(), &relative, files);
            } else {
                files.push((relative, entry.path()));
            }
        }
    }
    walk(data, "", &mut files);
    files.sort();
    // grounds' content hash: over each file's name and the SHA-256 of its bytes.
    let mut input = b"grounds-content-v2\0".to_vec();
    for (name, path) in files {
        input.extend_from_slice(name.as_bytes());
        input.push(0);
        input.extend_from_slice(&sha256(&std::fs::read(path).unwrap()));
        input.push(0xff);
    }
    hex(&sha256(&input))
}

/// SHA-256 of `bytes` by the system's `sha256sum`, as raw bytes.
fn sha256(bytes: &[u8]) -> Vec<u8> {
    let output = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(bytes)?;
            child.wait_with_output()
        })
        .unwrap();
    let digits = text(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `grounds train local` against a `tcp://` engine with TLS (tests/tls_proxy.py: client certificates
/// required, as `dockerd --tlsverify`), with the variables the docker CLI reads.
fn over_tls(sandbox: &Sandbox, verify: bool, cert_path: &Path) -> std::process::Output {
    let mut command = sandbox.command(&[
        "train",
        "local",
        fixture("titanic/task.toml").to_str().unwrap(),
        "--force",
        "--quiet",
        "--json",
    ]);
    command
        .env(
            "DOCKER_HOST",
            crate::common::service("GROUNDS_TEST_DOCKER_TLS"),
        )
        .env("DOCKER_CERT_PATH", cert_path);
    if verify {
        command.env("DOCKER_TLS_VERIFY", "1");
    } else {
        command.env_remove("DOCKER_TLS_VERIFY");
    }
    command.output().unwrap()
}

#[test]
fn tcp_with_tls_runs_the_job_with_files_copied() {
    let sandbox = Sandbox::new();
    let certs = PathBuf::from(crate::common::service("GROUNDS_TEST_DOCKER_CERT_PATH"));
    let output = over_tls(&sandbox, true, &certs);
    assert!(output.status.success(), "{}", both(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("copied in and out, not mounted"),
        "{stderr}"
    );
    let answer = json_of(&output);
    assert_eq!(answer["status"], "Completed");
    assert!(answer["metrics"]["roc_auc_score_test"].as_f64().unwrap() > 0.8);
    assert_nothing_left(answer["id"].as_str().unwrap());

    // Plain HTTP to a TLS engine, and a certificate folder without the client's key: clear errors.
    let plain = over_tls(&sandbox, false, &certs);
    assert_eq!(plain.status.code(), Some(2), "{}", both(&plain));
    assert!(
        text(&plain.stderr).contains("cannot reach the Docker engine at tcp://127.0.0.1"),
        "{}",
        both(&plain)
    );
    let partial = sandbox.path().join("partial-certs");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::copy(certs.join("ca.pem"), partial.join("ca.pem")).unwrap();
    std::fs::copy(certs.join("cert.pem"), partial.join("cert.pem")).unwrap();
    let missing = over_tls(&sandbox, true, &partial);
    assert_eq!(missing.status.code(), Some(2), "{}", both(&missing));
    assert!(
        text(&missing.stderr).contains("key.pem is missing"),
        "{}",
        both(&missing)
    );
}
