//! `grounds completions SHELL` and `grounds man`: what a shell and `man` need, generated from the command
//! line itself (clap_complete, clap_mangen), so they never drift from it. Result ids complete from the
//! store: the scripts call the hidden `grounds complete-ids PREFIX`.

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
    let script = String::from_utf8_lossy(&script).into_owned();
    let script = match shell {
        Shell::Bash => format!("{script}\n{}", bash_ids()),
        Shell::Zsh => zsh_ids(&script),
        Shell::Fish => format!("{script}\n{}", fish_ids()),
        _ => script,
    };
    printer.raw(script.as_bytes());
    Ok(Exit::Success)
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

pub fn man(printer: &Printer) -> anyhow::Result<Exit> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    printer.raw(&page);
    Ok(Exit::Success)
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
