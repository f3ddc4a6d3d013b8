//! `grounds-builtin`: the entry of builtin tasks, `train` in their images and what attached runs of a
//! builtin task start. It is the entry of `grounds-job` with the builtin trainer in it.

fn main() -> std::process::ExitCode {
    grounds_job::entry::main(Some(grounds_builtin::run))
}
