//! Archives: deterministic zips, zip64, safe unpacking of links and odd entries.
use super::*;
use std::io::Cursor;

fn zip_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = DeterministicZip::new(Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        zip.add(name, bytes, false).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[test]
fn same_content_gives_same_bytes() {
    let a = zip_with(&[("a.txt", b"hello"), ("b/c.txt", b"world")]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b = zip_with(&[("a.txt", b"hello"), ("b/c.txt", b"world")]);
    assert_eq!(a, b);
}

#[test]
fn unpacks_a_prefix_only() {
    let bytes = zip_with(&[("code/a.py", b"print(1)"), ("task.json", b"{}")]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    unpack(
        Cursor::new(bytes),
        "p.zip",
        "code/",
        &dest,
        Limits::default(),
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(dest.join("a.py")).unwrap(),
        "print(1)"
    );
    assert!(!dest.join("task.json").exists());
}

#[test]
fn refuses_escaping_entries_and_writes_nothing() {
    for name in ["../evil.txt", "/etc/evil", "a/../../evil", "C:/evil"] {
        let bytes = zip_with(&[("fine.txt", b"ok"), (name, b"x")]);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let err = unpack(Cursor::new(bytes), "bad.zip", "", &dest, Limits::default()).unwrap_err();
        assert!(err.to_string().contains(name), "{err}");
        assert!(!dest.exists(), "nothing is written for {name}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

fn zip_with_links(entries: &[(&str, &[u8])], links: &[(&str, &str)]) -> Vec<u8> {
    let mut zip = DeterministicZip::new(Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        zip.add(name, bytes, false).unwrap();
    }
    for (name, target) in links {
        zip.add_symlink(name, target).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[test]
fn links_that_stay_inside_are_unpacked_and_others_refused() {
    let good = zip_with_links(
        &[("model/ckpt/3.bin", b"w"), ("output/data/p.csv", b"p")],
        &[
            ("model/latest", "ckpt/3.bin"),
            ("model/preds", "../output/data/p.csv"),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("o");
    unpack(Cursor::new(good), "g.zip", "", &dest, Limits::default()).unwrap();
    assert_eq!(std::fs::read(dest.join("model/latest")).unwrap(), b"w");
    assert_eq!(
        std::fs::read_link(dest.join("model/preds")).unwrap(),
        Path::new("../output/data/p.csv")
    );
    for (links, entries, why) in [
        (vec![("link", "/etc/passwd")], vec![], "absolute"),
        (vec![("a/link", "../../etc/passwd")], vec![], "leads out"),
        (
            vec![("here", "."), ("up", "here/..")],
            vec![],
            "through another",
        ),
        (
            vec![("d", "sub")],
            vec![("d/evil", b"x" as &[u8])],
            "below a symbolic link",
        ),
    ] {
        let bytes = zip_with_links(&entries, &links);
        let dir = tempfile::tempdir().unwrap();
        let err = unpack(
            Cursor::new(bytes),
            "l.zip",
            "",
            &dir.path().join("o"),
            Limits::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(why), "{why}: {err}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing left: {why}"
        );
    }
}

/// A reader that gives `good` bytes, then fails as a disk would.
struct Failing {
    good: usize,
}

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.good == 0 {
            return Err(std::io::Error::other("input/output error"));
        }
        let n = buf.len().min(self.good);
        buf[..n].fill(7);
        self.good -= n;
        Ok(n)
    }
}

#[test]
fn an_entry_that_fails_while_read_is_taken_out_and_the_rest_is_whole() {
    let mut zip = DeterministicZip::new(Cursor::new(Vec::new()));
    zip.add("first.txt", b"first", false).unwrap();
    let err = zip
        .add_reader("broken.bin", &mut Failing { good: 3 << 20 }, 4 << 20, false)
        .unwrap_err();
    assert!(matches!(err, AddError::Read(_)), "{err}");
    zip.add("last.txt", b"last", false).unwrap();
    let cursor = zip.finish().unwrap();
    // As a result's commit does: the archive ends where its directory ends.
    let end = cursor.position() as usize;
    let mut bytes = cursor.into_inner();
    assert!(bytes.len() >= end);
    bytes.truncate(end);
    let mut back = ZipArchive::new(Cursor::new(bytes)).unwrap();
    let names: Vec<&str> = back.file_names().collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(
        read_entry(&mut back, "last.txt", 100).unwrap().unwrap(),
        b"last"
    );
    assert!(read_entry(&mut back, "broken.bin", 100).unwrap().is_none());
}

#[test]
fn entries_beyond_four_gibibytes_are_written_with_zip64_and_read_back() {
    let size: u64 = (4 << 30) + 5;
    let file = tempfile::tempfile().unwrap();
    let mut zip = DeterministicZip::new(std::io::BufWriter::new(file));
    zip.add("small.txt", b"small", false).unwrap();
    let copied = zip
        .add_reader("big.bin", &mut std::io::repeat(0).take(size), size, false)
        .unwrap();
    assert_eq!(copied, size);
    let mut file = zip.finish().unwrap().into_inner().unwrap();
    std::io::Seek::rewind(&mut file).unwrap();
    let mut back = ZipArchive::new(file).unwrap();
    let mut entry = back.by_name("big.bin").unwrap();
    assert_eq!(entry.size(), size);
    // Reading it through checks its CRC too.
    assert_eq!(
        std::io::copy(&mut entry, &mut std::io::sink()).unwrap(),
        size
    );
}

#[test]
fn read_entry_does_not_trust_the_declared_size() {
    let bytes = zip_with(&[("job.json", &[b' '; 5000])]);
    let mut zip = ZipArchive::new(Cursor::new(bytes)).unwrap();
    assert!(read_entry(&mut zip, "job.json", 10_000).unwrap().is_some());
    let err = read_entry(&mut zip, "job.json", 100)
        .unwrap_err()
        .to_string();
    assert!(err.contains("larger than"), "{err}");
    assert!(read_entry(&mut zip, "nope", 100).unwrap().is_none());
}

#[test]
fn refuses_archives_beyond_the_bound() {
    let big = vec![0u8; 10_000];
    let bytes = zip_with(&[("a", &big), ("b", &big)]);
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_bytes: 15_000,
        max_entries: 10,
    };
    let err = unpack(
        Cursor::new(bytes.clone()),
        "bomb.zip",
        "",
        &dir.path().join("o"),
        limits,
    )
    .unwrap_err();
    assert!(matches!(err, UnpackError::TooLarge { .. }), "{err}");
    let limits = Limits {
        max_bytes: 1 << 20,
        max_entries: 1,
    };
    let err = unpack(
        Cursor::new(bytes),
        "many.zip",
        "",
        &dir.path().join("o"),
        limits,
    )
    .unwrap_err();
    assert!(matches!(err, UnpackError::TooManyEntries { .. }), "{err}");
}

#[test]
fn compressed_formats_are_stored_and_the_rest_deflated() {
    let text = vec![b'a'; 10_000];
    let bytes = zip_with(&[("model/result_df.parquet", &text), ("logs.txt", &text)]);
    let mut archive = ::zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let parquet = archive.by_name("model/result_df.parquet").unwrap();
    assert_eq!(parquet.compression(), ::zip::CompressionMethod::Stored);
    assert_eq!(parquet.compressed_size(), 10_000);
    drop(parquet);
    let logs = archive.by_name("logs.txt").unwrap();
    assert_eq!(logs.compression(), ::zip::CompressionMethod::Deflated);
    assert!(logs.compressed_size() < 1_000);
    assert!(already_compressed("a/B.PNG") && !already_compressed("model.json"));
}
