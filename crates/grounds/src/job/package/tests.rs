//! Packages: what is taken from a source folder, what is refused, and their hashes.
use super::*;
use crate::printer::Silent;

fn task_in(dir: &Path) -> Task {
    let text = "[task]\nname = \"pkg\"\nversion = \"2\"\n[task.command]\nsource = \"src\"\nrun = [\"python3\", \"train.py\"]\n";
    std::fs::write(dir.join("task.toml"), text).unwrap();
    Task::load(&dir.join("task.toml")).unwrap()
}

fn source(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("lib")).unwrap();
    std::fs::write(src.join("train.py"), "print('hi')\n").unwrap();
    std::fs::write(src.join("lib/util.py"), "X = 1\n").unwrap();
    src
}

fn names(package: &Package) -> Vec<String> {
    let zip = ::zip::ZipArchive::new(package.open().unwrap()).unwrap();
    let mut names: Vec<String> = zip.file_names().map(str::to_string).collect();
    names.sort();
    names
}

fn build_quietly(task: &Task) -> Result<Package, PackageError> {
    build(task, &Silent)
}

#[test]
fn packages_are_deterministic_and_hash_the_content() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let first = build_quietly(&task_in(dir.path())).unwrap();
    // Touching a file (new mtime) changes nothing.
    std::fs::write(src.join("train.py"), "print('hi')\n").unwrap();
    let second = build_quietly(&task_in(dir.path())).unwrap();
    assert_eq!(
        std::fs::read(first.path()).unwrap(),
        std::fs::read(second.path()).unwrap()
    );
    assert_eq!(first.info.files, 2);
    std::fs::write(src.join("train.py"), "print('hi!')\n").unwrap();
    let third = build_quietly(&task_in(dir.path())).unwrap();
    assert_ne!(first.info.content_hash, third.info.content_hash);
    assert_eq!(
        names(&first),
        [
            "code/lib/util.py",
            "code/train.py",
            "package.json",
            "task.json"
        ]
    );
    let (spec, info) = read_manifest(first.open().unwrap()).unwrap();
    assert_eq!(spec.name, "pkg");
    assert_eq!(info, first.info);
}

#[test]
fn honours_gitignore_and_groundsignore() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    std::fs::write(src.join(".gitignore"), "*.log\n").unwrap();
    std::fs::write(src.join(".groundsignore"), "data/\n").unwrap();
    std::fs::write(src.join("run.log"), "x").unwrap();
    std::fs::create_dir(src.join("data")).unwrap();
    std::fs::write(src.join("data/big.bin"), "x").unwrap();
    std::fs::create_dir(src.join(".git")).unwrap();
    std::fs::write(src.join(".git/HEAD"), "x").unwrap();
    let listed = names(&build_quietly(&task_in(dir.path())).unwrap());
    assert!(
        !listed
            .iter()
            .any(|n| n.contains("run.log") || n.contains("big.bin") || n.contains(".git/")),
        "{listed:?}"
    );
    assert!(listed.contains(&"code/.gitignore".to_string()));
}

#[test]
fn refuses_secrets_unless_named() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    std::fs::write(src.join(".env"), "AWS_SECRET_ACCESS_KEY=x").unwrap();
    std::fs::write(src.join("server.pem"), "x").unwrap();
    let err = build_quietly(&task_in(dir.path())).unwrap_err().to_string();
    assert!(
        err.contains(".env, server.pem") && err.contains("include_secrets"),
        "{err}"
    );
    let mut task = task_in(dir.path());
    task.include_secrets = vec![".env".into(), "server.pem".into()];
    assert!(names(&build_quietly(&task).unwrap()).contains(&"code/server.pem".to_string()));
}

#[test]
fn links_inside_are_kept_as_links_and_links_out_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    std::os::unix::fs::symlink("lib", src.join("shared")).unwrap();
    std::os::unix::fs::symlink("lib/util.py", src.join("util.py")).unwrap();
    let package = build_quietly(&task_in(dir.path())).unwrap();
    let listed = names(&package);
    assert!(listed.contains(&"code/shared".to_string()), "{listed:?}");
    let unpacked = dir.path().join("unpacked");
    archive::unpack(
        package.open().unwrap(),
        "p",
        CODE_PREFIX,
        &unpacked,
        archive::Limits::default(),
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(unpacked.join("shared/util.py")).unwrap(),
        "X = 1\n"
    );
    assert_eq!(
        std::fs::read_to_string(unpacked.join("util.py")).unwrap(),
        "X = 1\n"
    );

    let outside = dir.path().join("credentials-outside.ini");
    std::fs::write(&outside, "secret").unwrap();
    std::os::unix::fs::symlink(&outside, src.join("settings.ini")).unwrap();
    let err = build_quietly(&task_in(dir.path())).unwrap_err().to_string();
    assert!(
        err.contains("settings.ini")
            && err.contains("credentials-outside.ini")
            && err.contains("leaves"),
        "{err}"
    );
    std::fs::remove_file(src.join("settings.ini")).unwrap();
    std::fs::write(src.join(".env"), "KEY=1").unwrap();
    std::fs::write(src.join(".groundsignore"), ".env\n").unwrap();
    std::os::unix::fs::symlink(".env", src.join("config.txt")).unwrap();
    let err = build_quietly(&task_in(dir.path())).unwrap_err().to_string();
    assert!(err.contains("config.txt (a link to .env)"), "{err}");
}
