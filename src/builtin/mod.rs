//! Builtin tasks: training that runs inside grounds itself, with no Python and no Docker.

use crate::contract::{JobConfig, Layout};
use crate::task::BuiltinSpec;

pub fn run(spec: &BuiltinSpec, layout: &Layout, config: &JobConfig) -> anyhow::Result<()> {
    let _ = (spec, layout, config);
    anyhow::bail!("builtin tasks are not available in this build yet")
}
