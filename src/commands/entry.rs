//! `grounds entry` (hidden), and `train` when the binary is started under that name in a container.

use crate::cli::EntryArgs;
use crate::entry;

pub async fn run(args: EntryArgs) -> i32 {
    entry::run(entry::EntryArgs::resolve(args.root, args.package)).await
}
