//! `grounds completions SHELL` and `grounds man`: what a shell and `man` need, generated from the command
//! line itself (clap_complete, clap_mangen), so they never drift from it. Result ids complete from the
//! store: the scripts call the hidden `grounds complete-ids PREFIX`.

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use super::Exit;
use crate::cli::Cli;
use crate::printer::Printer;
use crate::store::results::Store;

/// The subcommands of `results` whose arguments are result ids.
const ID_COMMANDS: &[&str] = &["show", "open", "fetch", "rm", "compare", "plot"];

pub fn completions(shell: Shell, printer: &Printer) -> anyhow::Result<Exit> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "grounds", &mut script);
    let script = without_hidden(&String::from_utf8_lossy(&script), shell, &hidden_commands());
    let script = match shell {
        Shell::Bash => format!("{script}\n{}", bash_ids()),
        Shell::Zsh => zsh_ids(&script),
        Shell::Fish => format!("{script}\n{}", fish_ids()),
        _ => script,
    };
    printer.raw(script.as_bytes());
    Ok(Exit::Success)
}

/// The names of the subcommands a user is not meant to type (`complete-ids`, which completion calls).
fn hidden_commands() -> Vec<String> {
    Cli::command()
        .get_subcommands()
        .filter(|c| c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect()
}

/// clap_complete's script without the hidden subcommands, which it offers like any other: out of bash's
/// word lists, and without the lines that offer them in the other shells.
fn without_hidden(script: &str, shell: Shell, hidden: &[String]) -> String {
    let offers = |line: &str, name: &str| {
        line.contains(&format!("'{name}'"))
            || line.contains(&format!("\"{name}\""))
            || line.contains(&format!("'{name}:"))
            || line.contains(&format!("cand {name} "))
    };
    let mut kept = String::with_capacity(script.len());
    for line in script.lines() {
        let line = match shell {
            Shell::Bash if line.trim_start().starts_with("opts=\"") => {
                let mut words: Vec<&str> = line.split(' ').collect();
                words.retain(|word| !hidden.iter().any(|name| word.trim_end_matches('"') == name));
                let mut joined = words.join(" ");
                if line.ends_with('"') && !joined.ends_with('"') {
                    joined.push('"');
                }
                joined
            }
            Shell::Bash => line.to_string(),
            _ if hidden.iter().any(|name| offers(line, name)) => continue,
            _ => line.to_string(),
        };
        kept.push_str(&line);
        kept.push('\n');
    }
    kept
}

/// Bash: ids for the id arguments of `results …` and `stop`; everything else as clap's `_grounds` does.
fn bash_ids() -> String {
    format!(
        r#"# Result ids from the store (grounds complete-ids), then clap's completion for everything else.
_grounds_ids() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    local wants_id=0
    if [[ "$cur" != -* && "$prev" != -* ]]; then
        if [[ "${{COMP_WORDS[1]}}" == results && " {commands} " == *" ${{COMP_WORDS[2]}} "* && $COMP_CWORD -ge 3 ]]; then
            wants_id=1
        elif [[ "${{COMP_WORDS[1]}}" == stop && $COMP_CWORD -eq 2 ]]; then
            wants_id=1
        fi
    fi
    if [[ $wants_id == 1 ]]; then
        COMPREPLY=( $(compgen -W "$(grounds complete-ids "$cur" 2>/dev/null)" -- "$cur") )
        return 0
    fi
    _grounds "$@"
}}
complete -F _grounds_ids -o bashdefault -o default grounds
"#,
        commands = ID_COMMANDS.join(" ")
    )
}

/// Zsh: the id arguments clap leaves to `_default` complete from the store instead.
fn zsh_ids(script: &str) -> String {
    let mut out = String::new();
    for line in script.lines() {
        let is_id = line.contains(":id -- ") || line.contains(":ids -- ");
        if is_id && line.contains(":_default'") {
            out.push_str(&line.replace(":_default'", ":_grounds_result_ids'"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out.push_str(
        r#"
(( $+functions[_grounds_result_ids] )) ||
_grounds_result_ids() {
    local -a ids
    ids=(${(f)"$(grounds complete-ids 2>/dev/null)"})
    _describe 'result id' ids
}
"#,
    );
    out
}

fn fish_ids() -> String {
    format!(
        "# Result ids from the store.\n\
         complete -c grounds -n \"__fish_seen_subcommand_from results; and __fish_seen_subcommand_from {}\" -f -a \"(grounds complete-ids (commandline -ct) 2>/dev/null)\"\n\
         complete -c grounds -n \"__fish_seen_subcommand_from stop\" -f -a \"(grounds complete-ids (commandline -ct) 2>/dev/null)\"\n",
        ID_COMMANDS.join(" ")
    )
}

/// `grounds man`: grounds(1) on standard output; with `dir`, grounds.1 and a page for every visible
/// subcommand (the pages grounds(1) names) written there.
pub fn man(dir: Option<&std::path::Path>, printer: &Printer) -> anyhow::Result<Exit> {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let Some(dir) = dir else {
        printer.raw(&main_page(&command)?);
        return Ok(Exit::Success);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    let mut write = |name: String, page: Vec<u8>| -> anyhow::Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
        written.push(path.display().to_string());
        Ok(())
    };
    write("grounds.1".into(), main_page(&command)?)?;
    let mut pending: Vec<clap::Command> = command
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .cloned()
        .collect();
    while let Some(sub) = pending.pop() {
        pending.extend(sub.get_subcommands().filter(|c| !c.is_hide_set()).cloned());
        let page = clap_mangen::Man::new(sub);
        let mut text = Vec::new();
        page.render(&mut text)?;
        write(page.get_filename(), text)?;
    }
    written.sort();
    printer.out(&format!(
        "wrote {} man pages to {}",
        written.len(),
        dir.display()
    ));
    Ok(Exit::Success)
}

/// The task file as the README documents it (the README's block is this file: a test checks it).
pub const TASK_FILE: &str = include_str!("task_file.toml");

/// grounds(1): clap's sections, then the task file, exit status, environment and files, and the pages
/// of the subcommands.
fn main_page(command: &clap::Command) -> anyhow::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(command.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    man.render_subcommands_section(&mut page)?;
    let mut extra = String::new();
    extra.push_str(".SH \"TASK FILE\"\n");
    extra.push_str(&paragraph(
        "A task is a TOML file; paths in it are relative to the file. Unknown keys are errors reported \
         with file, line and column, and everything is validated before anything runs. Every key:",
    ));
    extra.push_str(".PP\n.nf\n.RS 2\n");
    for line in TASK_FILE.lines() {
        extra.push_str(&roff_line(line));
        extra.push('\n');
    }
    extra.push_str(".RE\n.fi\n");
    extra.push_str(".SH \"EXIT STATUS\"\n");
    for (code, meaning) in [
        ("0", "Done; the job completed."),
        ("1", "The job ran and failed; its result is stored."),
        (
            "2",
            "Bad input or environment (a task-file error, an unknown id, ...): nothing ran.",
        ),
        (
            "130",
            "The job was stopped (Ctrl-C, SIGTERM or SIGHUP); its result is stored as Stopped.",
        ),
    ] {
        extra.push_str(&format!(".TP\n{code}\n{}", paragraph(meaning)));
    }
    extra.push_str(".SH ENVIRONMENT\n");
    for (name, meaning) in [
        (
            "GROUNDS_HOME",
            "The result store; default: the nearest .grounds folder in the working directory or above, else ./.grounds.",
        ),
        (
            "GROUNDS_ROLE, AWS_ROLE",
            "The SageMaker execution role when the task has no [remote] role.",
        ),
        (
            "GROUNDS_BUCKET",
            "The S3 bucket when the task has no [remote] bucket.",
        ),
        (
            "DOCKER_HOST",
            "The Docker engine for train local (unix://, tcp://, ssh://).",
        ),
        ("NO_COLOR", "No colour on standard error."),
    ] {
        extra.push_str(&format!(".TP\n{}\n{}", roff_line(name), paragraph(meaning)));
    }
    extra.push_str(".SH FILES\n");
    extra.push_str(&paragraph(
        "$GROUNDS_HOME/results/<id>.zip: one result per run (job.json, metrics.json, logs.txt, model/, \
         output/, the package). .env beside the task file or in the working directory: variables for the \
         run, after the environment's.",
    ));
    extra.push_str(".SH \"SEE ALSO\"\n");
    let pages: Vec<String> = command
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| format!("\\fBgrounds-{}\\fR(1)", c.get_name()))
        .collect();
    extra.push_str(&pages.join(", "));
    extra.push('\n');
    page.extend_from_slice(extra.as_bytes());
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// A line of roff text: backslashes escaped, and a line starting with `.` or `'` not taken as a request.
fn roff_line(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// A paragraph of roff text, filled by man.
fn paragraph(text: &str) -> String {
    format!("{}\n", roff_line(text))
}

/// The ids of stored results that start with `prefix`, newest last, one per line.
pub fn complete_ids(prefix: &str, printer: &Printer) -> anyhow::Result<Exit> {
    let ids = Store::from_env().ids()?;
    let mut text = String::new();
    for id in ids.iter().filter(|id| id.starts_with(prefix)) {
        text.push_str(id);
        text.push('\n');
    }
    printer.raw(text.as_bytes());
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_documents_the_task_file_the_man_page_shows() {
        let readme = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
        )
        .unwrap();
        assert!(
            readme.contains(&format!("```toml\n{TASK_FILE}```")),
            "README.md's task-file block and crates/grounds/src/commands/task_file.toml differ"
        );
    }

    #[test]
    fn roff_lines_are_never_requests() {
        assert_eq!(roff_line(".env"), "\\&.env");
        assert_eq!(roff_line("a\\d-b"), "a\\ed\\-b");
    }
}
