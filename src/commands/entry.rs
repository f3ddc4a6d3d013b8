//! `grounds entry` (hidden), and `train` when the binary is started under that name in a container.

use super::Exit;
use crate::cli::EntryArgs;
use crate::entry;
use crate::printer::Printer;

/// The entry speaks for itself on standard error (marked, so it is not taken for the job's output): the
/// printer of the host side has nothing to say here.
pub fn run(args: EntryArgs, _: &Printer) -> anyhow::Result<Exit> {
    let paths = entry::Paths::resolve(args.root, args.package);
    Ok(Exit::Job(super::block_on(entry::run(paths))?))
}
