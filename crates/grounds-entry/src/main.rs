//! `grounds-entry`: the entry of command tasks, `train` in their images and what attached runs of a
//! command task start. It reads the `/opt/ml` contract, unpacks the package and runs the program (see
//! `grounds_job::entry`); with no AWS SDK and no polars in it, it adds a few megabytes to an image.

fn main() -> std::process::ExitCode {
    grounds_job::entry::main(None)
}
