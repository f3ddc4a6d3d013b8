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

#[test]
fn names_have_one_canonical_spelling() {
    for (raw, canonical) in [
        ("model/x", "model/x"),
        ("model/./x", "model/x"),
        ("model//x", "model/x"),
        ("./model/x", "model/x"),
        ("model/x/", "model/x"),
        ("././model/.//x/./", "model/x"),
        ("./", ""),
        (".", ""),
        ("ab:c", "ab:c"),
        ("model/a:b", "model/a:b"),
    ] {
        assert_eq!(canonical_name(raw).as_deref(), Ok(canonical), "{raw}");
    }
    for (raw, why) in [
        ("model/../x", "`..`"),
        ("..", "`..`"),
        ("model/./../../x", "`..`"),
        ("/etc/passwd", "absolute"),
        ("//etc/passwd", "absolute"),
        ("C:/evil", "drive"),
        ("c:evil", "drive"),
        ("model\\x", "backslash"),
        ("..\\evil", "backslash"),
        ("model/\0x", "NUL"),
    ] {
        let err = canonical_name(raw).unwrap_err();
        assert!(err.contains(why), "{raw}: {err}");
    }
}

/// Hostile spellings of names that once let a link's target climb out: each is refused, or unpacked
/// with every link staying inside.
#[test]
fn links_named_with_dot_or_empty_segments_cannot_climb_out() {
    type Links<'a> = &'a [(&'a str, &'a str)];
    type Files<'a> = &'a [(&'a str, &'a [u8])];
    let cases: &[(Links, Files)] = &[
        (&[("model/./a/b", "../../../secret")], &[]),
        (&[("./model/l", "../../secret")], &[]),
        (&[("model//a/b", "../../../secret")], &[]),
        (&[("model/././././l", "../../../../../secret")], &[]),
        (&[("./here", "."), ("up", "here/..")], &[]),
        (&[("d/./up", ".."), ("d/x", "up/../secret")], &[]),
        (&[("model/./l", "x")], &[("model/l", b"dup" as &[u8])]),
        (&[("model/l", "sub")], &[("model/./l/evil", b"x" as &[u8])]),
        (&[("model//l", "sub")], &[("model/l/evil", b"x" as &[u8])]),
    ];
    for (links, files) in cases {
        let base = tempfile::tempdir().unwrap();
        std::fs::write(base.path().join("secret"), b"host").unwrap();
        let dest = base.path().join("store/open/id");
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let bytes = zip_with_links(files, links);
        match unpack(Cursor::new(bytes), "h.zip", "", &dest, Limits::default()) {
            Err(e) => {
                assert!(
                    matches!(e, UnpackError::UnsafeEntry { .. }),
                    "{links:?}: {e}"
                );
                assert!(!dest.exists(), "{links:?}");
            }
            Ok(_) => assert_confined(&dest, &format!("{links:?}")),
        }
        let left: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n != "id")
            .collect();
        assert!(left.is_empty(), "{links:?}: {left:?} left beside");
    }
}

/// Every link below `dest` stays inside it, and nothing outside it can be read through one.
fn assert_confined(dest: &Path, case: &str) {
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        for entry in std::fs::read_dir(dest.join(&relative)).unwrap() {
            let entry = entry.unwrap();
            let path = relative.join(entry.file_name());
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_symlink() {
                let resolution = crate::confined::resolve(dest, Path::new("/no-such-root"), &path);
                assert!(
                    !matches!(resolution, crate::confined::Resolution::Outside(_)),
                    "{case}: {} leads out ({resolution:?})",
                    path.display()
                );
                if let Ok(text) = std::fs::read(dest.join(&path)) {
                    assert_ne!(text, b"host", "{case}: {} reads the host", path.display());
                }
            }
        }
    }
}

/// A property of the unpacker over thousands of random archives made of hostile segments: whatever it
/// accepts, no link leads out of the folder and nothing is written outside it.
#[test]
fn random_hostile_archives_never_reach_outside() {
    const SEGMENTS: &[&str] = &["a", "b", "code", ".", "", "..", "model"];
    let mut rng = fastrand::Rng::with_seed(27);
    let name = |rng: &mut fastrand::Rng| {
        let count = rng.usize(1..5);
        let mut parts: Vec<&str> = (0..count)
            .map(|_| SEGMENTS[rng.usize(..SEGMENTS.len())])
            .collect();
        if rng.u8(..10) == 0 {
            parts.insert(0, "");
        }
        parts.join("/")
    };
    let mut accepted = 0;
    for case in 0..3000 {
        let entries: Vec<(String, Option<String>)> = (0..rng.usize(1..5))
            .map(|_| {
                let target = (rng.bool()).then(|| name(&mut rng));
                (name(&mut rng), target)
            })
            .collect();
        let mut zip = DeterministicZip::new(Cursor::new(Vec::new()));
        let mut seen = std::collections::BTreeSet::new();
        for (entry, target) in &entries {
            if !seen.insert(entry.clone()) {
                continue;
            }
            let written = match target {
                Some(target) => zip.add_symlink(entry, target),
                None => zip.add(entry, b"x", false),
            };
            if written.is_err() {
                continue;
            }
        }
        let Ok(cursor) = zip.finish() else { continue };
        let base = tempfile::tempdir().unwrap();
        std::fs::write(base.path().join("secret"), b"host").unwrap();
        let dest = base.path().join("store/open/id");
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let only = if case % 3 == 0 { "code/" } else { "" };
        let result = unpack(
            Cursor::new(cursor.into_inner()),
            "r.zip",
            only,
            &dest,
            Limits::default(),
        );
        if result.is_ok() {
            accepted += 1;
            assert_confined(&dest, &format!("{entries:?} only={only}"));
        }
        let mut outside: Vec<_> = std::fs::read_dir(base.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        outside.sort();
        assert_eq!(outside, ["secret", "store"], "{entries:?}");
        assert_eq!(std::fs::read(base.path().join("secret")).unwrap(), b"host");
        let beside: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n != "id")
            .collect();
        assert!(beside.is_empty(), "{entries:?}: {beside:?}");
    }
    assert!(
        accepted > 100,
        "the cases must reach the unpacker: {accepted}"
    );
}

/// A tar with entries as given (raw names, so hostile spellings are possible): files, symbolic links.
fn tar_with(entries: &[(&str, ::tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut builder = ::tar::Builder::new(Vec::new());
    for (name, kind, data, link) in entries {
        let mut header = ::tar::Header::new_gnu();
        let bytes = name.as_bytes();
        header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        header.set_entry_type(*kind);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        if let Some(link) = link {
            let bytes = link.as_bytes();
            header.as_old_mut().linkname[..bytes.len()].copy_from_slice(bytes);
        }
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

#[test]
fn tars_are_judged_by_canonical_names_and_held_to_their_bounds() {
    use ::tar::EntryType::{Directory, Link, Regular, Symlink};
    let dir = tempfile::tempdir().unwrap();
    let into = dir.path().join("root");
    let bytes = tar_with(&[
        ("model/", Directory, b"", None),
        ("./model/./a.txt", Regular, b"a", None),
        ("model//b.txt", Regular, b"b", None),
        ("model/../escape", Regular, b"x", None),
        ("model\\c", Regular, b"c", None),
        ("model/keep", Symlink, b"", Some("a.txt")),
        ("model/hard", Link, b"", Some("model/a.txt")),
        (
            "model/config",
            Link,
            b"",
            Some("input/config/hyperparameters.json"),
        ),
    ]);
    let left = tar::unpack(Cursor::new(bytes), &into, "", true, Limits::default()).unwrap();
    assert_eq!(std::fs::read(into.join("model/a.txt")).unwrap(), b"a");
    assert_eq!(std::fs::read(into.join("model/b.txt")).unwrap(), b"b");
    assert_eq!(std::fs::read(into.join("model/hard")).unwrap(), b"a");
    assert!(std::fs::symlink_metadata(into.join("model/keep"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!dir.path().join("escape").exists() && !into.join("escape").exists());
    let names: Vec<&str> = left.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["model/../escape", "model\\c", "model/config"],
        "{left:?}"
    );

    // Entry count and bytes: what came before stays, nothing is kept half, the rest is named.
    let big = vec![7u8; 4096];
    let bytes = tar_with(&[
        ("model/1", Regular, &big, None),
        ("model/2", Regular, &big, None),
        ("model/3", Regular, &big, None),
    ]);
    let into = dir.path().join("bounded");
    // 4000 bytes of content (and 1536 of headers for each of 3 entries): the second file is cut.
    let limits = Limits {
        max_bytes: 4000,
        max_entries: 3,
    };
    let left = tar::unpack(Cursor::new(bytes.clone()), &into, "model", false, limits).unwrap();
    assert!(into.join("model/1").exists());
    assert!(!into.join("model/2").exists(), "never half a file");
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        left[0].1.contains("more than the bound of 4000 bytes"),
        "{left:?}"
    );
    let into = dir.path().join("counted");
    let limits = Limits {
        max_bytes: 1 << 20,
        max_entries: 2,
    };
    let left = tar::unpack(Cursor::new(bytes), &into, "", false, limits).unwrap();
    assert!(into.join("model/2").exists() && !into.join("model/3").exists());
    assert!(
        left[0].1.contains("more than the bound of 2 entries"),
        "{left:?}"
    );
}

#[test]
fn a_long_name_header_is_bounded_before_it_is_read() {
    // A GNU long-name entry declaring 64 MiB: refused once its first mebibyte has been read.
    let mut header = ::tar::Header::new_gnu();
    header.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    header.set_entry_type(::tar::EntryType::GNULongName);
    header.set_size(64 << 20);
    header.set_cksum();
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend(std::iter::repeat_n(b'a', 2 << 20));
    let dir = tempfile::tempdir().unwrap();
    let left = tar::unpack(
        Cursor::new(bytes),
        &dir.path().join("r"),
        "model",
        false,
        Limits::default(),
    )
    .unwrap();
    assert!(left[0].1.contains("headers"), "{left:?}");
}
