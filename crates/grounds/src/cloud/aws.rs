//! AWS: one configuration from the standard chain (profiles, `AWS_REGION`, `AWS_ENDPOINT_URL*`), checked
//! before anything is called that changes anything, and the clients made from it.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::ProvideCredentials;

/// The commercial, China and GovCloud regions SageMaker serves; anything else is almost surely a typo.
const KNOWN_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "ca-west-1",
    "sa-east-1",
    "mx-central-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "af-south-1",
    "me-south-1",
    "me-central-1",
    "il-central-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "cn-north-1",
    "cn-northwest-1",
    "us-gov-west-1",
    "us-gov-east-1",
];

#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("no AWS region: pass --region, set AWS_REGION, or give your profile a region (aws configure)")]
    NoRegion,
    #[error("unknown AWS region `{0}`: check the spelling (e.g. us-east-1, eu-west-1)")]
    UnknownRegion(String),
    #[error(
        "no AWS credentials{profile}: {message}. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, use --profile, \
         or run `aws sso login` / `aws configure`"
    )]
    NoCredentials { profile: String, message: String },
    #[error("AWS call {call} failed: {message}")]
    Call { call: String, message: String },
}

/// The message AWS sent, or the SDK's explanation of what went wrong before it could.
pub fn explain<E: std::error::Error + 'static>(error: &E) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = inner.source();
    }
    parts.join(": ")
}

pub fn call_error<E: std::error::Error + 'static>(call: &str, error: E) -> AwsError {
    AwsError::Call {
        call: call.to_string(),
        message: explain(&error),
    }
}

/// Whether `AWS_ENDPOINT_URL` (or a service's own) points the SDK elsewhere, as for moto or LocalStack:
/// S3 is then addressed path-style.
pub fn endpoint_overridden() -> bool {
    std::env::vars().any(|(k, v)| {
        (k == "AWS_ENDPOINT_URL" || k.starts_with("AWS_ENDPOINT_URL_")) && !v.is_empty()
    })
}

/// `.env` values for AWS (beside the task file, then in the working directory) that the environment
/// lacks are put into it before the SDK reads it; returns every value found, for other settings, and
/// what could not be read.
pub fn apply_dotenv(task_file: &std::path::Path) -> (crate::config::dotenv::DotEnv, Vec<String>) {
    // A folder given as the task stands for the task.toml in it.
    let task_dir = if task_file.is_dir() {
        task_file.to_path_buf()
    } else {
        task_file
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default()
    };
    let (mut values, warnings) = crate::config::dotenv::load(&task_dir);
    let exported: Vec<(String, String)> = values
        .values()
        .filter(|(key, _)| key.starts_with("AWS_") && std::env::var_os(key).is_none())
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    for (key, value) in exported {
        // Before any AWS client exists; nothing else reads these concurrently.
        std::env::set_var(&key, value);
        values.exported(&key);
    }
    (values, warnings)
}

pub struct Aws {
    pub config: SdkConfig,
    pub region: String,
    pub account: String,
}

impl Aws {
    /// Loads the configuration and proves it: a region, credentials, and who they belong to (STS).
    pub async fn connect(profile: Option<&str>, region: Option<&str>) -> Result<Aws, AwsError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(profile) = profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = region {
            loader = loader.region(Region::new(region.to_string()));
        }
        let config = loader.load().await;
        let region = config
            .region()
            .map(|r| r.to_string())
            .ok_or(AwsError::NoRegion)?;
        if !KNOWN_REGIONS.contains(&region.as_str()) && !endpoint_overridden() {
            return Err(AwsError::UnknownRegion(region));
        }
        let profile_text = profile
            .map(|p| format!(" for profile `{p}`"))
            .unwrap_or_default();
        let provider = config
            .credentials_provider()
            .ok_or_else(|| AwsError::NoCredentials {
                profile: profile_text.clone(),
                message: "no credential provider is configured".into(),
            })?;
        provider
            .provide_credentials()
            .await
            .map_err(|e| AwsError::NoCredentials {
                profile: profile_text.clone(),
                message: explain(&e),
            })?;
        let sts = aws_sdk_sts::Client::new(&config);
        let identity = sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| call_error("sts:GetCallerIdentity", e))?;
        let account = identity.account().unwrap_or_default().to_string();
        Ok(Aws {
            config,
            region,
            account,
        })
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.config)
            .force_path_style(endpoint_overridden())
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    pub fn ecr(&self) -> aws_sdk_ecr::Client {
        aws_sdk_ecr::Client::new(&self.config)
    }

    pub fn sagemaker(&self) -> aws_sdk_sagemaker::Client {
        aws_sdk_sagemaker::Client::new(&self.config)
    }

    pub fn logs(&self) -> aws_sdk_cloudwatchlogs::Client {
        aws_sdk_cloudwatchlogs::Client::new(&self.config)
    }
}
