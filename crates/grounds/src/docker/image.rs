//! Images: the Dockerfile rendered from `container/Dockerfile.template`, a tag derived from everything that
//! goes into the image, and the build through the Docker Engine API with its steps shown as they run.
//!
//! An image holds what changes rarely: the base image, system packages, requirements and the entry of
//! the task's kind (a static Linux x86-64 executable, so that it runs in any base image, `scratch`
//! included). The code is not in it: the package is delivered when the job runs, so a code change
//! reuses the image.

use std::collections::HashMap;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::task::{Runner, Task};
use crate::docker::DockerError;
use crate::job::datahash::HashCache;
use crate::printer::{Measure, Reporter};

pub const TEMPLATE: &str = include_str!("../../../../container/Dockerfile.template");
pub const DEFAULT_COMMAND_BASE: &str = "python:3.11-slim";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "{path} cannot serve as the entry in an image: {why}. Build grounds as a static Linux x86-64 \
         executable (`make build` does: see .cargo/config.toml) or pass --entry-binary PATH"
    )]
    EntryNotStatic { path: PathBuf, why: String },
    #[error("reading {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "base image `{image}` is not in the local Docker engine, and grounds does not pull images: \
         `docker pull {image}` (or `docker load`) it first, or set [container] base_image to an image you have"
    )]
    BaseImageMissing { image: String },
    #[error(
        "[task.image] `{image}` is not in the local Docker engine, and grounds does not pull images: \
         `docker pull {image}` (or `docker load`, or build it) first"
    )]
    GivenImageMissing { image: String },
    #[error(
        "{dockerfile} line {line} puts the package into the image (`{text}`): the code is no longer in \
         images, grounds delivers the package when the job runs (the entry unpacks it into /opt/ml/code); \
         delete that line"
    )]
    PackageInImage {
        dockerfile: PathBuf,
        line: usize,
        text: String,
    },
    #[error("building image {tag} failed at {step}: {message}\n{output}")]
    BuildFailed {
        tag: String,
        step: String,
        message: String,
        output: String,
    },
    #[error(transparent)]
    Docker(#[from] DockerError),
}

/// Everything that defines an image, before it is built.
#[derive(Debug, Clone, Serialize)]
pub struct ImagePlan {
    pub tag: String,
    pub base_image: String,
    pub dockerfile: String,
    pub entry_binary: PathBuf,
    /// The content hash of the entry binary the tag was made from: the binary sent to the engine must be
    /// that one.
    #[serde(skip)]
    pub entry_hash: String,
    #[serde(skip)]
    pub requirements: Option<(String, Vec<u8>)>,
    /// An image task's own image: run as it is, never built.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub given: bool,
}

/// Checks that `path` is an x86-64 Linux ELF executable without a dynamic loader.
pub fn check_static_entry(path: &Path) -> Result<(), ImageError> {
    let mut header = vec![0u8; 64];
    let mut file = std::fs::File::open(path).map_err(|error| ImageError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    file.read_exact(&mut header)
        .map_err(|error| ImageError::Read {
            path: path.to_path_buf(),
            error,
        })?;
    let not = |why: &str| {
        Err(ImageError::EntryNotStatic {
            path: path.to_path_buf(),
            why: why.to_string(),
        })
    };
    if &header[..4] != b"\x7fELF" {
        return not("it is not an ELF executable (Linux)");
    }
    if header[4] != 2 || header[5] != 1 {
        return not("it is not a 64-bit little-endian executable");
    }
    if u16::from_le_bytes([header[18], header[19]]) != 62 {
        return not("it is not built for x86-64");
    }
    let phoff = u64::from_le_bytes([
        header[32], header[33], header[34], header[35], header[36], header[37], header[38],
        header[39],
    ]) as usize;
    let phentsize = u16::from_le_bytes([header[54], header[55]]) as usize;
    let phnum = u16::from_le_bytes([header[56], header[57]]) as usize;
    // Only the program headers are read (not the whole binary, which may be a hundred megabytes).
    let table = phnum.checked_mul(phentsize).filter(|n| *n <= 1 << 20);
    let Some(table) = table else {
        return not("its program headers are truncated");
    };
    let mut headers = vec![0u8; table];
    let read = file
        .seek(std::io::SeekFrom::Start(phoff as u64))
        .and_then(|_| file.read_exact(&mut headers));
    if read.is_err() {
        return not("its program headers are truncated");
    }
    for i in 0..phnum {
        // Offsets come from the file, which may be anything: checked, never trusted.
        let entry = i
            .checked_mul(phentsize)
            .and_then(|start| headers.get(start..start.checked_add(4)?));
        let Some(&[a, b, c, d]) = entry else {
            return not("its program headers are truncated");
        };
        if u32::from_le_bytes([a, b, c, d]) == 3 {
            return not("it is dynamically linked (it names a program interpreter)");
        }
    }
    Ok(())
}

/// The hash of the entry binary: remembered by its file system stamp, as channels' are, so that an
/// unchanged binary of a hundred megabytes is not read on every run.
fn entry_binary_hash(path: &Path, hashes: &HashCache) -> Result<String, ImageError> {
    hashes
        .content_hash(path)
        .map(|(hash, _)| hex::encode(hash))
        .map_err(|error| ImageError::Read {
            path: path.to_path_buf(),
            error: std::io::Error::other(format!("{error:#}")),
        })
}

/// The base image a task builds on.
pub fn base_image(task: &Task) -> String {
    task.spec
        .container
        .base_image
        .clone()
        .unwrap_or_else(|| match &task.spec.runner {
            Runner::Command(_) => DEFAULT_COMMAND_BASE.to_string(),
            Runner::Builtin(_) => "scratch".to_string(),
            Runner::Image(image) => image.uri.clone(),
        })
}

impl ImagePlan {
    /// Renders the Dockerfile and derives the tag from it (base image, system packages), the entry binary
    /// and the requirements: never from the code, which the image does not hold.
    pub fn new(task: &Task, entry_binary: &Path, hashes: &HashCache) -> anyhow::Result<ImagePlan> {
        let given = match &task.spec.runner {
            Runner::Image(image) => Some(&image.uri),
            Runner::Command(command) => command.framework_image.as_ref(),
            Runner::Builtin(_) => None,
        };
        if let Some(uri) = given {
            return Ok(ImagePlan {
                tag: uri.clone(),
                base_image: uri.clone(),
                dockerfile: String::new(),
                entry_binary: PathBuf::new(),
                entry_hash: String::new(),
                requirements: None,
                given: true,
            });
        }
        check_static_entry(entry_binary)?;
        let template = match &task.spec.container.dockerfile {
            Some(path) => {
                let full = task.file.parent().unwrap_or(Path::new(".")).join(path);
                let text = std::fs::read_to_string(&full).map_err(|error| ImageError::Read {
                    path: full.clone(),
                    error,
                })?;
                refuse_package_lines(&full, &text)?;
                text
            }
            None => TEMPLATE.to_string(),
        };
        let base = base_image(task);
        let packages = &task.spec.container.system_packages;
        let system_packages = if packages.is_empty() {
            String::new()
        } else {
            format!(
                "RUN apt-get update && apt-get install -y --no-install-recommends {} && rm -rf /var/lib/apt/lists/*",
                packages.join(" ")
            )
        };
        let requirements = match (&task.spec.runner, &task.source) {
            (Runner::Command(command), Some(source)) => match &command.requirements {
                Some(relative) => {
                    let path = source.join(relative);
                    let bytes = std::fs::read(&path).map_err(|error| ImageError::Read {
                        path: path.clone(),
                        error,
                    })?;
                    Some((relative.clone(), bytes))
                }
                None => None,
            },
            _ => None,
        };
        let requirements_block = if requirements.is_some() {
            "COPY requirements.txt /opt/grounds/requirements.txt\n\
             RUN PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir -r /opt/grounds/requirements.txt"
                .to_string()
        } else {
            String::new()
        };
        let dockerfile = render(
            &template,
            &[
                ("{{BASE_IMAGE}}", &base),
                ("{{SYSTEM_PACKAGES}}", &system_packages),
                ("{{REQUIREMENTS}}", &requirements_block),
            ],
        );
        let mut hasher = Sha256::new();
        hasher.update(dockerfile.as_bytes());
        let entry_hash = entry_binary_hash(entry_binary, hashes)?;
        hasher.update(entry_hash.as_bytes());
        if let Some((_, bytes)) = &requirements {
            hasher.update(bytes);
        }
        let digest = hex::encode(hasher.finalize());
        Ok(ImagePlan {
            tag: format!(
                "grounds/{}:{}",
                task.spec.name.to_lowercase(),
                &digest[..16]
            ),
            base_image: base,
            dockerfile,
            entry_binary: entry_binary.to_path_buf(),
            entry_hash,
            requirements,
            given: false,
        })
    }
}

/// A Dockerfile of the user's that still puts the package into the image (as the template once did):
/// the image would hold a package its tag does not know of, and the entry would run it instead of the
/// delivered one.
fn refuse_package_lines(dockerfile: &Path, text: &str) -> Result<(), ImageError> {
    let instruction = |line: &str| !line.trim_start().starts_with('#');
    match text.lines().enumerate().find(|(_, line)| {
        instruction(line)
            && (line.contains("package.zip") || line.contains(grounds_job::entry::PACKAGE_ENV))
    }) {
        Some((index, line)) => Err(ImageError::PackageInImage {
            dockerfile: dockerfile.to_path_buf(),
            line: index + 1,
            text: line.trim().to_string(),
        }),
        None => Ok(()),
    }
}

/// Fills the placeholders on instruction lines; comments are left as written.
fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    for line in template.lines() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
        } else {
            let mut line = line.to_string();
            for (placeholder, value) in values {
                line = line.replace(placeholder, value);
            }
            out.push_str(&line);
        }
        out.push('\n');
    }
    out
}

/// Hashes what passes through.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The build context as a tar in a temporary file: the entry binary is streamed into it, and from it to
/// the engine, so it is never held in memory whole.
fn context(plan: &ImagePlan) -> Result<std::fs::File, ImageError> {
    let io = |error| ImageError::Read {
        path: PathBuf::from("<build context>"),
        error,
    };
    let file = tempfile::tempfile().map_err(io)?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    let header = |size: u64, mode: u32| {
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_cksum();
        header
    };
    // Each file is sent as exactly the size its header says, and hashed as it is: the image holds what
    // its tag was made from.
    let mut add_file = |name: &str, path: &Path, mode: u32| -> Result<[u8; 32], ImageError> {
        let read = |error| ImageError::Read {
            path: path.to_path_buf(),
            error,
        };
        let file = std::fs::File::open(path).map_err(read)?;
        let size = file.metadata().map_err(read)?.len();
        let mut hashing = HashingReader {
            inner: grounds_job::archive::tar::Exact::new(file, size, path),
            hasher: Sha256::new(),
        };
        builder
            .append_data(&mut header(size, mode), name, &mut hashing)
            .map_err(read)?;
        Ok(hashing.hasher.finalize().into())
    };
    let sent = add_file("train", &plan.entry_binary, 0o755)?;
    if !plan.given && !plan.entry_hash.is_empty() {
        let mut combined = crate::job::datahash::Combined::new();
        let name = plan
            .entry_binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        combined.add(&name, &sent);
        if hex::encode(combined.finish()) != plan.entry_hash {
            return Err(ImageError::Read {
                path: plan.entry_binary.clone(),
                error: std::io::Error::other(
                    "it changed after the image's tag was made from it (was grounds rebuilt \
                     meanwhile?); run again",
                ),
            });
        }
    }
    let mut add = |name: &str, bytes: &[u8]| {
        builder.append_data(&mut header(bytes.len() as u64, 0o644), name, bytes)
    };
    add("Dockerfile", plan.dockerfile.as_bytes()).map_err(io)?;
    if let Some((_, bytes)) = &plan.requirements {
        add("requirements.txt", bytes).map_err(io)?;
    }
    let writer = builder.into_inner().map_err(io)?;
    let mut file = writer.into_inner().map_err(|e| io(e.into_error()))?;
    std::io::Seek::rewind(&mut file).map_err(io)?;
    Ok(file)
}

/// What stands for an image in a fingerprint: its content tag, or, for an image task's own image, its id
/// in the engine that runs it (what it is, not what it is called); a missing image task image is an error.
pub async fn identity(
    plan: &ImagePlan,
    engine: &crate::docker::EngineAddress,
) -> anyhow::Result<String> {
    if !plan.given {
        return Ok(plan.tag.clone());
    }
    let docker = engine.connect().await?;
    match crate::docker::image_id(&docker, &plan.tag).await? {
        Some(id) => Ok(id),
        None => Err(ImageError::GivenImageMissing {
            image: plan.tag.clone(),
        }
        .into()),
    }
}

/// Makes sure the image exists: reuses it when its tag is there, builds it otherwise.
/// Returns whether it was built.
pub async fn ensure(
    docker: &Docker,
    plan: &ImagePlan,
    reporter: &dyn Reporter,
) -> Result<bool, ImageError> {
    if plan.given {
        return match crate::docker::image_id(docker, &plan.tag).await? {
            Some(_) => Ok(false),
            None => Err(ImageError::GivenImageMissing {
                image: plan.tag.clone(),
            }),
        };
    }
    if crate::docker::image_exists(docker, &plan.tag).await? {
        reporter.stage(
            "Reusing",
            &format!("image {} (the code comes with the job)", plan.tag),
        );
        return Ok(false);
    }
    if plan.base_image != "scratch"
        && !crate::docker::image_exists(docker, &plan.base_image).await?
    {
        return Err(ImageError::BaseImageMissing {
            image: plan.base_image.clone(),
        });
    }
    let body = context(plan)?;
    let size = body.metadata().map(|m| m.len()).unwrap_or(0);
    reporter.stage(
        "Building",
        &format!(
            "image {} from {} ({} MB context)",
            plan.tag,
            plan.base_image,
            size >> 20
        ),
    );
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(&plan.tag)
        .rm(true)
        .forcerm(true)
        .labels(&HashMap::from([("grounds".to_string(), "1".to_string())]))
        .build();
    use futures_util::TryStreamExt;
    let body = bollard::body_try_stream(
        crate::docker::transfer::file_stream(body, Default::default()).map_ok(Into::into),
    );
    let mut stream = docker.build_image(options, None, Some(body));
    let progress = reporter.progress(Measure::Items, "Building", &plan.tag, None);
    let mut step = String::from("the start");
    let mut output: Vec<String> = Vec::new();
    while let Some(item) = stream.next().await {
        let info = match item {
            Ok(info) => info,
            Err(e) => {
                return Err(ImageError::BuildFailed {
                    tag: plan.tag.clone(),
                    step,
                    message: crate::docker::explain(&e),
                    output: output.join("\n"),
                })
            }
        };
        if let Some(detail) = info.error_detail.as_ref().and_then(|d| d.message.clone()) {
            return Err(ImageError::BuildFailed {
                tag: plan.tag.clone(),
                step,
                message: detail,
                output: output.join("\n"),
            });
        }
        if let Some(text) = info.stream {
            for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
                if line.starts_with("Step ") {
                    step = line.to_string();
                    output.clear();
                    // `Step 3/7 : RUN ...`: three steps begun of seven.
                    if let Some((done, total)) = step_count(line) {
                        progress.set_total(total);
                        progress.set(done.saturating_sub(1));
                        progress.message(line.split_once(" : ").map_or(line, |(_, what)| what));
                    }
                    reporter.stage("Step", line.trim_start_matches("Step "));
                } else if line.trim_start() == "---> Using cache" {
                    reporter.job_line(Some("build"), "Using cache");
                } else if line.trim_start().starts_with("--->")
                    || line.starts_with("Removing intermediate container")
                {
                    continue;
                } else {
                    output.push(line.to_string());
                    if output.len() > 30 {
                        output.remove(0);
                    }
                    reporter.job_line(Some("build"), line);
                }
            }
        }
    }
    Ok(true)
}

/// The numbers of a build's `Step N/M : ...` line.
fn step_count(line: &str) -> Option<(u64, u64)> {
    let count = line.strip_prefix("Step ")?.split_whitespace().next()?;
    let (done, total) = count.split_once('/')?;
    Some((done.parse().ok()?, total.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_steps_are_counted_from_their_lines() {
        assert_eq!(step_count("Step 3/7 : RUN pip install x"), Some((3, 7)));
        assert_eq!(step_count("Step 12/12 : CMD [\"train\"]"), Some((12, 12)));
        assert_eq!(step_count("Step three"), None);
        assert_eq!(step_count("Stepping"), None);
    }

    #[test]
    fn placeholders_are_filled_on_instruction_lines_only() {
        let text = render(
            "# {{BASE_IMAGE}} is the base\nFROM {{BASE_IMAGE}}\n{{REQUIREMENTS}}\n",
            &[("{{BASE_IMAGE}}", "scratch"), ("{{REQUIREMENTS}}", "")],
        );
        assert_eq!(text, "# {{BASE_IMAGE}} is the base\nFROM scratch\n\n");
    }

    #[test]
    fn the_running_test_binary_is_static() {
        // The test binaries are built like grounds itself (.cargo/config.toml), so this checks that build.
        check_static_entry(&std::env::current_exe().unwrap()).unwrap();
    }

    #[test]
    fn dynamic_and_foreign_binaries_are_refused() {
        let err = check_static_entry(Path::new("/bin/sh"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("dynamically linked") && err.contains("--entry-binary"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("script");
        std::fs::write(&script, "#!/bin/sh\necho hi\n".repeat(8)).unwrap();
        assert!(check_static_entry(&script)
            .unwrap_err()
            .to_string()
            .contains("not an ELF"));
    }
}
