//! `grounds entry` (hidden), and `train` when the binary is started under that name in a container.

use super::Exit;
use crate::cli::EntryArgs;
use crate::entry;

pub async fn run(args: EntryArgs) -> i32 {
    let _ = Exit::Success;
    entry::run(entry::EntryArgs::resolve(args.root, args.package)).await
}
