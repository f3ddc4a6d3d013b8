//! The job's side of grounds, shared by the orchestrator (`grounds`) and the entries that run inside a
//! job (`grounds-entry`, `grounds-builtin`): the `/opt/ml` contract and the toolkit's environment, the
//! task as it travels with a job, a package's manifest, archives read and written defensively, and the
//! supervision of a job's processes. Nothing here knows about engines, clouds or the result store.

// Nothing a user or a job controls may panic: outside tests, no unwrap, expect or panic.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod archive;
pub mod confined;
pub mod contract;
pub mod entry;
pub mod lines;
pub mod manifest;
pub mod metric_line;
pub mod owner;
pub mod proctree;
pub mod pyjson;
pub mod signals;
pub mod spec;
