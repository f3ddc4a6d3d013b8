//! Amazon's services as grounds uses them: the AWS settings and errors ([`aws`]), the data of SageMaker
//! runs in S3 ([`s3sync`]) and of `s3://` channels downloaded for local runs ([`s3cache`]), image registries
//! ([`registry`]), and SageMaker's rules, API and artifacts ([`sagemaker`]).

pub mod aws;
pub mod registry;
pub mod s3cache;
pub mod s3sync;
pub mod sagemaker;
