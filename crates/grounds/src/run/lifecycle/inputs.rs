//! A job's channels made readable before it is fingerprinted: `result://` channels resolved to the files of
//! stored results, `s3://` channels listed (their ETags) and, for modes that read local data, downloaded.

use std::collections::BTreeMap;

use anyhow::Context;

use crate::config::task::ChannelSource;
use crate::job::ResultInput;
use crate::printer::Reporter;
use crate::settings::TrainSettings;

/// Resolves the task's `result://` channels to the files of the stored results they name (unpacked
/// once into `$GROUNDS_HOME/cache/results`), so every mode reads them as local data and the fingerprint
/// holds their content; records which results were read.
pub fn with_result_channels(
    settings: TrainSettings,
    reporter: &dyn Reporter,
) -> anyhow::Result<TrainSettings> {
    let mut folders = BTreeMap::new();
    let mut inputs = Vec::new();
    let mut holds = Vec::new();
    for (name, source) in &settings.task.channels {
        let ChannelSource::Result { id, folder } = source else {
            continue;
        };
        let (full, path, held) = settings
            .store
            .result_folder(id, *folder, reporter)
            .with_context(|| format!("channel `{name}` ({})", source.describe()))?;
        holds.push(std::sync::Arc::new(held));
        reporter.stage(
            "Reading",
            &format!(
                "channel `{name}` from result {full} ({}/)",
                folder.path_in_result()
            ),
        );
        folders.insert(name.clone(), path);
        inputs.push(ResultInput {
            channel: name.clone(),
            result: full,
            folder: *folder,
        });
    }
    if inputs.is_empty() {
        return Ok(settings);
    }
    let mut settings = settings.with_local_channels(&folders);
    for input in &inputs {
        settings.sources.insert(
            input.channel.clone(),
            format!("result://{}/{}", input.result, input.folder),
        );
    }
    settings.inputs = inputs;
    settings.holds.extend(holds);
    Ok(settings)
}

/// Lists the task's `s3://` channels (their ETags go into the fingerprint); with `download` (attached
/// and local runs, which read local data) fetches them into `$GROUNDS_HOME/cache/s3` and points the
/// channels at the copies. A dry run lists and downloads nothing.
pub async fn with_s3_channels(
    settings: TrainSettings,
    download: bool,
    reporter: &dyn Reporter,
) -> anyhow::Result<TrainSettings> {
    let uris = settings.s3_channels();
    if uris.is_empty() {
        return Ok(settings);
    }
    let aws = crate::cloud::aws::Aws::connect(
        settings.aws.profile.as_deref(),
        settings.aws.region.as_deref(),
    )
    .await
    .with_context(|| {
        format!(
            "channels {} are in S3, which needs AWS settings",
            uris.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    let cache = settings.store.home.join("cache").join("s3");
    let resolved = crate::cloud::s3cache::resolve(
        &aws.s3(),
        &uris,
        &cache,
        download && !settings.dry_run,
        reporter,
    )
    .await?;
    let mut settings = if download {
        settings.with_local_channels(&resolved.folders)
    } else {
        settings
    };
    settings
        .holds
        .extend(resolved.holds.into_iter().map(std::sync::Arc::new));
    settings.data = resolved
        .channels
        .iter()
        .map(|(name, channel)| {
            (
                name.clone(),
                format!("{} {}", channel.uri, channel.identity),
            )
        })
        .collect();
    Ok(settings)
}
