//! Trust, round two (issue 27), through the real binary: what a job leaves is never read through a link
//! or without a bound; archive names have one spelling; the store acts on the file it names and reads
//! back what it writes; caches are used only when whole; packaging, plans and engines keep secrets in.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{both, docker, measured, text, Sandbox, ZipFile, PYTHON_BASE};
use serde_json::Value;

/// A host file the job was never given: it must not reach a result, a reason or an answer.
const SECRET: &str = "host-secret-7d1e0c-never-in-a-result";

fn secret_file(sandbox: &Sandbox) -> PathBuf {
    sandbox.write("host/credentials.txt", SECRET)
}

/// Every byte of a result zip, decompressed, as text: to look for what must not be there.
fn zip_text(path: &Path) -> String {
    use std::io::Read;
    let mut zip = ZipFile::open(path);
    let mut all = String::new();
    for index in 0..zip.0.len() {
        let mut entry = zip.0.by_index(index).unwrap();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        all.push_str(&String::from_utf8_lossy(&bytes));
        // Nested zips (package.zip) are searched too.
        if entry.name().ends_with(".zip") {
            let mut inner = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
            for i in 0..inner.len() {
                let mut e = inner.by_index(i).unwrap();
                let mut b = Vec::new();
                e.read_to_end(&mut b).unwrap();
                all.push_str(&String::from_utf8_lossy(&b));
            }
        }
    }
    all
}

fn local_task(sandbox: &Sandbox, name: &str, script: &str, extra: &str) -> PathBuf {
    sandbox.command_task(
        name,
        script,
        &format!("[container]\nbase_image = \"{PYTHON_BASE}\"\n{extra}"),
    )
}

// ---- A. Nothing a job wrote is read through a link or without a bound ------------------------------

/// A failing job leaves `output/failure` as a link to a host file (in its own view: an absolute path of
/// the host, which grounds would read on the host), as a pipe, and as a huge file: the reason is never
/// the host file, never blocks, and is at most what SageMaker keeps.
#[test]
fn a_failure_file_is_never_read_through_a_link_a_pipe_or_whole() {
    let sandbox = Sandbox::new();
    let secret = secret_file(&sandbox);
    // A host folder holding a file named `failure`: an `output` that is a link to it must not be read.
    let failure_dir = sandbox
        .write("hostdir/failure", SECRET)
        .parent()
        .unwrap()
        .to_path_buf();
    let script = format!(
        r#"
import os, sys
out = os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output")
kind = sys.argv[sys.argv.index("--kind") + 1]
path = os.path.join(out, "failure")
if kind == "link":
    os.symlink({secret:?}, path)
elif kind == "dir-link":
    os.symlink({host:?}, os.path.join(out, "data", "up"))
    os.symlink("data/up/credentials.txt", path)
elif kind == "fifo":
    os.mkfifo(path)
elif kind == "zero":
    os.symlink("/dev/zero", path)
elif kind == "out-link":
    os.rename(out, out + ".moved")
    os.symlink({hostdir:?}, out)
elif kind == "huge":
    with open(path, "w") as f:
        f.write("E" * (64 << 20))
sys.exit(3)
"#,
        host = secret.parent().unwrap(),
        hostdir = failure_dir
    );
    let task = sandbox.command_task("fails", &script, "[hyperparameters]\nkind = \"link\"\n");
    let task = task.to_str().unwrap();
    for kind in ["link", "dir-link", "out-link", "fifo", "zero", "huge"] {
        let mut command = sandbox.command(&[
            "train",
            "attached",
            task,
            "--hp",
            &format!("kind={kind}"),
            "--json",
        ]);
        let started = std::time::Instant::now();
        let (output, peak_kib) = measured(&mut command);
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{kind}: grounds waited on the failure file"
        );
        assert_eq!(output.status.code(), Some(1), "{kind}: {}", both(&output));
        let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(answer["status"], "Failed", "{kind}");
        let reason = answer["failure_reason"].as_str().unwrap_or_default();
        assert!(
            !reason.contains(SECRET),
            "{kind}: the reason holds the host file: {reason}"
        );
        assert!(
            reason.len() <= 1024,
            "{kind}: a reason of {} bytes",
            reason.len()
        );
        let result = answer["result"].as_str().unwrap();
        let stored = zip_text(Path::new(result));
        assert!(
            !stored.contains(SECRET),
            "{kind}: the result holds the host file"
        );
        assert!(!text(&output.stderr).contains(SECRET), "{kind}: printed");
        match kind {
            "link" | "dir-link" | "out-link" | "fifo" | "zero" => assert!(
                reason.contains("was not read") || reason.contains("left no failure file"),
                "{kind}: {reason}"
            ),
            _ => assert!(reason.starts_with("EEEE"), "{kind}: {reason}"),
        }
        // Not read whole: 64 MiB of reason would show in grounds' memory.
        assert!(peak_kib < 400 * 1024, "{kind}: peak {peak_kib} KiB");
    }
}

/// The same in a container on the real engine, mounted and copied: the link is written in the job's
/// view, and grounds on the host never follows it.
#[test]
fn a_container_jobs_failure_link_is_never_followed_on_the_host() {
    let sandbox = Sandbox::new();
    let secret = secret_file(&sandbox);
    let script =
        format!("import os, sys\nos.symlink({secret:?}, '/opt/ml/output/failure')\nsys.exit(2)\n");
    let task = local_task(&sandbox, "fails-local", &script, "");
    let task = task.to_str().unwrap();
    for extra in [&[][..], &["--copy"][..]] {
        let mut args = vec!["train", "local", task, "--force"];
        args.extend_from_slice(extra);
        let (output, answer) = sandbox.json(&args);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{extra:?}: {}",
            both(&output)
        );
        let reason = answer["failure_reason"].as_str().unwrap_or_default();
        assert!(!reason.contains(SECRET), "{extra:?}: {reason}");
        assert!(reason.contains("was not read"), "{extra:?}: {reason}");
        let stored = zip_text(Path::new(answer["result"].as_str().unwrap()));
        assert!(
            !stored.contains(SECRET),
            "{extra:?}: the result holds the host file"
        );
    }
}

// ---- B. Archive names have one canonical form ------------------------------------------------------

/// Copies the zip at `from` to `to`, renaming its result to `id` (job.json's id) and adding `extra`
/// entries (name, link target) as symbolic links.
fn crafted_copy(from: &Path, to: &Path, id: &str, links: &[(&str, &str)]) {
    use std::io::{Read, Write};
    let mut source = ZipFile::open(from);
    let mut out = zip::ZipWriter::new(std::fs::File::create(to).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    for index in 0..source.0.len() {
        let mut entry = source.0.by_index(index).unwrap();
        let name = entry.name().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if name == "job.json" {
            let mut job: Value = serde_json::from_slice(&bytes).unwrap();
            job["id"] = Value::from(id);
            bytes = serde_json::to_vec(&job).unwrap();
        }
        out.start_file(name, options).unwrap();
        out.write_all(&bytes).unwrap();
    }
    for (name, target) in links {
        out.add_symlink(*name, *target, options).unwrap();
    }
    out.finish().unwrap();
}

/// A result zip whose link is named with `.` segments (`model/./././a/b`), fed to a job through
/// `result://`: its target, judged from the name as written, seemed to stay inside, but climbed out of
/// the unpack folder to a host file. It is refused before the job runs; nothing of the host is read.
#[test]
fn a_crafted_result_zip_cannot_make_a_job_read_host_files() {
    let sandbox = Sandbox::new();
    let producer = sandbox.command_task(
        "producer",
        "import os\nopen(os.environ['SM_MODEL_DIR'] + '/w.txt', 'w').write('weights')\n",
        "",
    );
    let (output, made) = sandbox.json(&["train", "attached", producer.to_str().unwrap()]);
    assert!(output.status.success(), "{}", both(&output));
    // From cache/results/<id>/model/a, five levels up is $GROUNDS_HOME.
    std::fs::write(sandbox.home().join("secret.txt"), SECRET).unwrap();
    let id = "producer-20990101-000000-beef";
    let crafted = sandbox.home().join("results").join(format!("{id}.zip"));
    let cases: &[(&str, &str)] = &[
        ("model/./././a/b", "../../../../../secret.txt"),
        ("model//././a/b", "../../../../../secret.txt"),
        ("./././model/x", "../../../secret.txt"),
    ];
    for (name, target) in cases {
        crafted_copy(
            Path::new(made["result"].as_str().unwrap()),
            &crafted,
            id,
            &[(name, target)],
        );
        let _ = std::fs::remove_dir_all(sandbox.home().join("cache"));
        let consumer = sandbox.command_task(
            "consumer",
            "import os\nfor root, _, files in os.walk(os.environ['SM_CHANNEL_MODEL']):\n    for f in files:\n        print(open(os.path.join(root, f), errors='replace').read())\n",
            &format!("[channels]\nmodel = \"result://{id}/model\"\n"),
        );
        let (output, _) =
            sandbox.json(&["train", "attached", consumer.to_str().unwrap(), "--force"]);
        assert_eq!(output.status.code(), Some(2), "{name}: {}", both(&output));
        let said = both(&output);
        assert!(
            !said.contains(SECRET),
            "{name}: the job read the host file:\n{said}"
        );
        assert!(said.contains("leads out of the folder"), "{name}: {said}");
    }
}

// ---- C. The store acts on the file it names --------------------------------------------------------

fn quick_task(sandbox: &Sandbox, name: &str) -> PathBuf {
    sandbox.command_task(
        name,
        "import os\nprint('###METRIC###acc:0.5###')\nopen(os.environ['SM_MODEL_DIR'] + '/m.txt', 'w').write('m')\n",
        "",
    )
}

/// `cp A.zip copy.zip`: the copy is damaged (its job.json names A), listed as such and never acted on
/// through A's id: `rm copy` removes the copy, A stays. An id with `../` inside a zip reaches nothing.
#[test]
fn results_are_named_by_their_file_and_inner_ids_reach_nothing() {
    let sandbox = Sandbox::new();
    let task = quick_task(&sandbox, "named");
    let (output, a) = sandbox.json(&["train", "attached", task.to_str().unwrap()]);
    assert!(output.status.success(), "{}", both(&output));
    let a_id = a["id"].as_str().unwrap().to_string();
    let results = sandbox.home().join("results");
    let a_zip = results.join(format!("{a_id}.zip"));
    std::fs::copy(&a_zip, results.join("copy.zip")).unwrap();

    let (output, listed) = sandbox.json(&["results", "list"]);
    assert!(output.status.success(), "{}", both(&output));
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a_id.as_str()], "the copy is not listed under A's id");
    assert!(
        text(&output.stderr).contains("damaged"),
        "{}",
        both(&output)
    );
    let show = sandbox.run(&["results", "show", "copy"]);
    assert_eq!(show.status.code(), Some(2), "{}", both(&show));
    assert!(text(&show.stderr).contains("damaged"), "{}", both(&show));

    let rm = sandbox.run(&["results", "rm", "copy"]);
    assert!(rm.status.success(), "{}", both(&rm));
    assert!(
        !results.join("copy.zip").exists(),
        "the file named is removed"
    );
    assert!(
        a_zip.exists(),
        "A is not removed through the copy's inner id"
    );

    // An inner id that climbs out of the store.
    let victim = sandbox.home().join("victim.zip");
    std::fs::write(&victim, b"not grounds'").unwrap();
    crafted_copy(&a_zip, &results.join("evil.zip"), "../victim", &[]);
    let gc = sandbox.run(&[
        "results",
        "gc",
        "--status",
        "Completed",
        "--older-than",
        "0s",
    ]);
    assert!(gc.status.success(), "{}", both(&gc));
    assert!(victim.exists(), "gc followed an inner id out of the store");
    assert!(
        results.join("evil.zip").exists(),
        "a damaged zip is never acted on by gc"
    );
    let rm = sandbox.run(&["results", "rm", "evil"]);
    assert!(rm.status.success(), "{}", both(&rm));
    assert!(victim.exists() && !results.join("evil.zip").exists());
}

/// A job logging 30 metrics for 100,000 steps (3 million values): its result is stored and read back by
/// every command, its series thinned with a note of how, its final values exact, grounds' memory flat.
#[test]
fn a_job_logging_millions_of_metric_values_keeps_a_readable_result() {
    let sandbox = Sandbox::new();
    let script = r####"
import sys
w = sys.stdout.write
for step in range(100_000):
    w("".join(f"###METRIC###m{k}:{step + k / 100}###" for k in range(30)) + "\n")
"####;
    let task = sandbox.command_task("chatty", script, "");
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
    assert_eq!(answer["metrics"]["m0"], 99_999.0);
    assert_eq!(answer["metrics"]["m29"], 99_999.29);
    assert!(peak_kib < 600 * 1024, "peak {peak_kib} KiB");
    let id = answer["id"].as_str().unwrap();
    let (output, listed) = sandbox.json(&["results", "list"]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(listed.as_array().unwrap().len(), 1, "the result is listed");
    let (output, shown) = sandbox.json(&["results", "show", id]);
    assert!(output.status.success(), "{}", both(&output));
    let m0 = &shown["metrics"]["m0"];
    assert_eq!(m0["final"], 99_999.0);
    assert_eq!(m0["thinned"]["reported"], 100_000);
    let every = m0["thinned"]["every"].as_u64().unwrap();
    let series = m0["series"].as_array().unwrap();
    assert!(
        series.len() <= 10_000 && every >= 10,
        "{} samples, every {every}",
        series.len()
    );
    assert_eq!(series[1]["value"], every as f64, "evenly thinned");
    let (output, _) = sandbox.json(&["results", "open", id]);
    assert!(output.status.success(), "{}", both(&output));
    let (output, again) = sandbox.json(&["train", "attached", task.to_str().unwrap(), "--quiet"]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(again["reused"], true, "reuse reads it back");
}

/// `results rm` and `gc` never delete what a user added to an opened copy: it is kept and named.
#[test]
fn removing_a_result_keeps_files_added_to_its_opened_copy() {
    let sandbox = Sandbox::new();
    let task = quick_task(&sandbox, "opened");
    let (output, first) = sandbox.json(&["train", "attached", task.to_str().unwrap()]);
    assert!(output.status.success(), "{}", both(&output));
    let (_, second) = sandbox.json(&["train", "attached", task.to_str().unwrap(), "--force"]);
    let (first, second) = (
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    );
    for id in [first, second] {
        let (output, _) = sandbox.json(&["results", "open", id]);
        assert!(output.status.success(), "{}", both(&output));
    }
    let notes = sandbox.home().join("open").join(first).join("notes.md");
    std::fs::write(&notes, "my analysis").unwrap();
    let (output, dry) = sandbox.json(&["results", "rm", first, "--dry-run"]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(dry["kept_open"][0]["files"][0], "notes.md", "{dry}");
    let (output, removed) = sandbox.json(&["results", "rm", first, second]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "my analysis");
    assert_eq!(removed["kept_open"][0]["id"], first, "{removed}");
    assert!(
        text(&output.stderr).contains("notes.md"),
        "{}",
        both(&output)
    );
    assert!(
        !sandbox.home().join("open").join(second).exists(),
        "an opened copy holding only the result's files goes with it"
    );
}

/// Several runs reading the same `result://` channel at once all succeed; a cache entry changed by hand
/// is unpacked again instead of used (or refused).
#[test]
fn result_channels_are_shared_at_once_and_rebuilt_when_not_whole() {
    let sandbox = Sandbox::new();
    let producer = quick_task(&sandbox, "source");
    let (output, made) = sandbox.json(&["train", "attached", producer.to_str().unwrap()]);
    assert!(output.status.success(), "{}", both(&output));
    let id = made["id"].as_str().unwrap().to_string();
    let script =
        "import os\nprint(open(os.path.join(os.environ['SM_CHANNEL_MODEL'], 'm.txt')).read())\n";
    let tasks: Vec<PathBuf> = (0..4)
        .map(|i| {
            sandbox.command_task(
                &format!("reader{i}"),
                script,
                &format!("[channels]\nmodel = \"result://{id}/model\"\n"),
            )
        })
        .collect();
    let running: Vec<_> = tasks
        .iter()
        .map(|task| {
            sandbox
                .command(&["train", "attached", task.to_str().unwrap(), "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let logs_of = |answer: &Value| {
        ZipFile::open(Path::new(answer["result"].as_str().unwrap()))
            .read("logs.txt")
            .lines()
            .last()
            .unwrap_or_default()
            .to_string()
    };
    for child in running {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", both(&output));
        let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(logs_of(&answer), "m");
    }
    let cached = sandbox
        .home()
        .join("cache/results")
        .join(&id)
        .join("model/m.txt");
    std::fs::write(&cached, "tampered").unwrap();
    let (output, answer) =
        sandbox.json(&["train", "attached", tasks[0].to_str().unwrap(), "--force"]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(
        logs_of(&answer),
        "m",
        "the job read the result, not the tampered cache"
    );
    assert_eq!(
        std::fs::read_to_string(&cached).unwrap(),
        "m",
        "rebuilt from the result"
    );
    let (output, listed) = sandbox.json(&["cache", "list", "--local"]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(listed["local"]["results"][0]["whole"], true, "{listed}");
    let (output, cleared) = sandbox.json(&["cache", "clear", "--local"]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(
        cleared["local"]["results"]["removed"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(!cached.exists());
}

// ---- D. Caches are used only when whole --------------------------------------------------------------

/// A channel's data volume removed by hand while its marker stays: the next run does not mount an
/// empty volume the engine makes in its place, it sends the data again and the job reads it.
#[test]
fn a_data_volume_removed_by_hand_is_sent_again_not_mounted_empty() {
    let sandbox = Sandbox::new();
    sandbox.write("data/rows.csv", "a,b\n1,2\n");
    let script = "import os, sys\nfiles = os.listdir(os.environ['SM_CHANNEL_TRAINING'])\nprint('files:', files)\nsys.exit(0 if files == ['rows.csv'] else 5)\n";
    let task = local_task(
        &sandbox,
        "volumes",
        script,
        "[channels]\ntraining = \"../data\"\n",
    );
    let task = task.to_str().unwrap();
    let (output, first) = sandbox.json(&["train", "local", task, "--copy"]);
    assert!(output.status.success(), "{}", both(&output));
    let id = first["id"].as_str().unwrap();
    let content: Vec<String> = docker(&["volume", "ls", "-q", "--filter", "label=grounds.data"])
        .lines()
        .filter(|v| v.starts_with("grounds-content-"))
        .map(str::to_string)
        .collect();
    assert!(!content.is_empty());
    for volume in &content {
        let _ = std::process::Command::new("docker")
            .args(["volume", "rm", volume])
            .output();
    }
    let (output, second) = sandbox.json(&["train", "local", task, "--copy", "--force"]);
    assert!(
        output.status.success(),
        "the job read an empty channel: {}",
        both(&output)
    );
    assert_eq!(second["status"], "Completed");
    assert_ne!(second["id"], id);
    // Nothing the engine made by itself is left behind.
    for volume in docker(&["volume", "ls", "-q"]).lines() {
        if volume.starts_with("grounds-content-") {
            let labels = docker(&["volume", "inspect", "-f", "{{json .Labels}}", volume]);
            assert!(
                labels.contains("grounds.data"),
                "{volume} has no labels: {labels}"
            );
        }
    }
    // Its data volumes stay (a few bytes): `cache clear` of the whole engine here would race with the
    // other tests that use the engine's cache at the same time.
}

// ---- F. Smaller holes of the same kind ----------------------------------------------------------------

/// A file of the source folder flipping between a regular file and a link to a host secret while runs
/// package it: what is packaged is the file the walk checked, never the secret through the link.
#[test]
fn a_file_swapped_for_a_link_while_packaging_never_packs_the_target() {
    let sandbox = Sandbox::new();
    let secret = secret_file(&sandbox);
    let task = sandbox.command_task("swap", "print('ok')\n", "");
    let src = task.parent().unwrap().join("src");
    std::fs::write(src.join("big.bin"), vec![b'x'; 4 << 20]).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let (src, secret, stop) = (src.clone(), secret.clone(), stop.clone());
        std::thread::spawn(move || {
            let (regular, link) = (src.join(".regular.tmp"), src.join(".link.tmp"));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::write(&regular, "plain data");
                let _ = std::fs::rename(&regular, src.join("data.txt"));
                let _ = std::fs::remove_file(&link);
                let _ = symlink(&secret, &link);
                let _ = std::fs::rename(&link, src.join("data.txt"));
            }
        })
    };
    for _ in 0..20 {
        let output = sandbox.run(&[
            "train",
            "attached",
            task.to_str().unwrap(),
            "--force",
            "--json",
        ]);
        for zip in sandbox.result_zips() {
            assert!(
                !zip_text(&zip).contains(SECRET),
                "{}: the link's target was packaged",
                zip.display()
            );
        }
        assert!(!text(&output.stdout).contains(SECRET) && !text(&output.stderr).contains(SECRET));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flipper.join().unwrap();
}

/// Files that hold credentials of common tools are refused by name, path or content.
#[test]
fn tool_credentials_are_refused_in_packages() {
    let sandbox = Sandbox::new();
    let key = r#"{"type": "service_account", "project_id": "p", "private_key": "-----BEGIN PRIVATE KEY-----"}"#;
    for (i, name, content) in [
        (".envrc", "export TOKEN=x"),
        (".docker/config.json", r#"{"auths": {}}"#),
        (".kube/config", "apiVersion: v1"),
        ("kubeconfig", "apiVersion: v1"),
        ("infra/prod.tfstate", "{}"),
        (".terraformrc", "credentials {}"),
        ("keys/deployer.json", key),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (name, content))| (i, name, content))
    {
        let dir = format!("c{i}");
        let task = sandbox.command_task(&dir, "print(1)\n", "");
        sandbox.write(&format!("{dir}/src/{name}"), content);
        let output = sandbox.run(&["train", "attached", task.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(2), "{name}: {}", both(&output));
        assert!(
            text(&output.stderr).contains(name.rsplit('/').next().unwrap()),
            "{name}: {}",
            both(&output)
        );
        assert!(sandbox.result_zips().is_empty(), "{name}: nothing runs");
    }
}

/// A dry run shows no credentials: secret-looking hyperparameters masked, and credentials inside values
/// (a URL's password, an AWS secret key) masked wherever they appear.
#[test]
fn dry_runs_mask_credentials_inside_values_and_secret_hyperparameters() {
    let sandbox = Sandbox::new();
    let task = sandbox.command_task(
        "masked",
        "print(1)\n",
        &format!(
            "[hyperparameters]\napi_token = \"tok-12345-secret\"\ndb = \"postgres://admin:hunter2pw@db:5432/x\"\n\
             lr = 0.1\n[container]\nbase_image = \"{PYTHON_BASE}\"\nenv = {{ DATABASE_URL = \"mysql://u:pw-in-url@h/db\", \
             LOG = \"AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\" }}\n"
        ),
    );
    for mode in ["attached", "local"] {
        let (output, plan) = sandbox.json(&["train", mode, task.to_str().unwrap(), "--dry-run"]);
        assert!(output.status.success(), "{mode}: {}", both(&output));
        let shown = plan.to_string();
        for secret in [
            "tok-12345-secret",
            "hunter2pw",
            "pw-in-url",
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI",
        ] {
            assert!(!shown.contains(secret), "{mode}: {secret} in {shown}");
        }
        assert_eq!(plan["hyperparameters"]["lr"], "0.1");
        assert_eq!(
            plan["hyperparameters"]["db"],
            "postgres://admin:***@db:5432/x"
        );
    }
}

/// An engine reached over plain tcp:// off this machine: warned about, and given no pass_env value
/// without --allow-insecure (refused before anything is built or sent).
#[test]
fn plain_tcp_engines_off_this_machine_get_no_secrets() {
    let sandbox = Sandbox::new();
    let task = local_task(
        &sandbox,
        "insecure",
        "print(1)\n",
        "pass_env = [\"GROUNDS_TEST_TOKEN\"]\n",
    );
    let task = task.to_str().unwrap();
    // One of this machine's own addresses that is not loopback, on a port where nothing listens: a
    // connection, if one were tried, is refused at once.
    let addresses = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .unwrap();
    let address = text(&addresses.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .expect("a non-loopback IPv4 address")
        .to_string();
    let port = std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("tcp://{address}:{port}");
    let run = |extra: &[&str]| {
        let mut args = vec!["train", "local", task, "--docker-host", host.as_str()];
        args.extend_from_slice(extra);
        let mut command = sandbox.command(&args);
        command
            .env("GROUNDS_TEST_TOKEN", "tok")
            .env_remove("DOCKER_TLS_VERIFY");
        command.output().unwrap()
    };
    let refused = run(&[]);
    assert_eq!(refused.status.code(), Some(2), "{}", both(&refused));
    let said = text(&refused.stderr);
    assert!(
        said.contains("plain HTTP") && said.contains("--allow-insecure"),
        "{said}"
    );
    assert!(said.contains("GROUNDS_TEST_TOKEN"), "{said}");
    let allowed = run(&["--allow-insecure"]);
    let said = text(&allowed.stderr);
    assert!(said.contains("plain HTTP"), "still warned: {said}");
    assert!(!said.contains("refusing to send"), "{said}");
}
