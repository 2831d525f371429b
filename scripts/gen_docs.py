#!/usr/bin/env python3
"""Generate man/ (roff pages), completions/ (bash, zsh, fish) and the manual's generated pages from the CLI.

    python scripts/gen_docs.py           write them
    python scripts/gen_docs.py --check   exit 1 if any is stale (the test suite runs this)

Our own generator: typer vendors its own Click, so click-man sees no options;
and static completion scripts cost nothing at each Tab (no Python start-up).
Output has no dates or versions that change between runs, so it is stable.
The manual's pages (docs/commands/, docs/reference/ exit statuses, error codes, environment) are made by
scripts/docs_pages.py from the same help text and lists.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from dcmtools.cli import app  # noqa: E402

EXIT_STATUS = [
    ("0", "every item succeeded"),
    ("1", "one or more items failed (the batch went on)"),
    ("2", "usage error (bad option or argument)"),
    ("3", "could not connect: host name not resolved, connection refused"),
    ("4", "association rejected by the peer"),
    ("5", "association aborted, or the connection dropped"),
    ("6", "timed out: connect, association or reply"),
    ("7", "the peer accepted none of the presentation contexts needed"),
    ("130", "interrupted (Ctrl-C)"),
]

# Every variable the code reads (tests/test_newcomer_cli.py checks the DCMTOOLS_* ones against src/).
ENVIRONMENT = [
    ("DCMTOOLS_AET", "our calling AE title for network commands (default DCMTOOLS)"),
    ("DCMTOOLS_PEERS", "the peers file naming the AE title, host and port of each peer"),
    (
        "XDG_CONFIG_HOME",
        "without DCMTOOLS_PEERS or --peers, the peers file is $XDG_CONFIG_HOME/dcmtools/peers.toml "
        "(~/.config/dcmtools/peers.toml) when it exists",
    ),
    ("DCMTOOLS_ANON_KEY", "the secret key of anonymize (as --key): the same key gives the same pseudonyms and UIDs"),
    ("DCMTOOLS_EDIT_KEY", "the secret key of edit --new-uids (as --key): the same key gives the same UIDs"),
    ("DCMTOOLS_TOKEN", "DICOMweb: the bearer token (as --token)"),
    ("DCMTOOLS_USER", "DICOMweb: the basic-auth user (as --user)"),
    ("DCMTOOLS_PASSWORD", "DICOMweb: the basic-auth password (never on the command line; or --password-file)"),
    ("DCMTOOLS_DEBUG", "when set, as --debug: tracebacks and debug logs on stderr"),
    ("SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT", "the default of --shard K/N in a Slurm job array"),
    ("JOB_COMPLETION_INDEX", "the default K of --shard K/N in a Kubernetes indexed job (N given)"),
    ("DASK_SCHEDULER_ADDRESS", "the default of --cluster: the Dask scheduler to send the work to"),
]


def click_root():
    import typer.main

    return typer.main.get_command(app)


def commands(root) -> list:
    return [root.commands[name] for name in sorted(root.commands) if not root.commands[name].hidden]


def roff(text: str) -> str:
    """Escape text for roff: backslashes, leading dots and quotes, hyphens."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + line) if line.startswith((".", "'")) else line for line in text.splitlines())


def help_paragraphs(help_text: str) -> list[tuple[bool, str]]:
    """(verbatim, text) paragraphs; Click's \\b marks a verbatim one."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", textwrap.dedent(help_text or "").strip()):
        lines = block.splitlines()
        if lines and lines[0].strip() == "\b":
            paragraphs.append((True, textwrap.dedent("\n".join(lines[1:]))))
        else:
            paragraphs.append((False, " ".join(line.strip() for line in lines)))
    return paragraphs


def render_paragraphs(help_text: str) -> list[str]:
    out = []
    for verbatim, text in help_paragraphs(help_text):
        if verbatim:
            out += [".PP", ".nf", ".RS 2", roff(text), ".RE", ".fi"]
        else:
            out += [".PP", roff(text)]
    return out


def option_names(param) -> list[str]:
    names = list(param.opts)
    if getattr(param, "secondary_opts", None):
        names += param.secondary_opts
    return names


def takes_value(param) -> bool:
    return not getattr(param, "is_flag", False) and not getattr(param, "count", False)


def option_line(param) -> str:
    names = ", ".join(f"\\fB{roff(n)}\\fR" for n in option_names(param))
    if takes_value(param):
        metavar = param.metavar or param.type.name.upper()
        names += f" \\fI{roff(metavar)}\\fR"
    return names


def default_text(param) -> str:
    if param.default in (None, False, (), []) or not getattr(param, "show_default", True):
        return ""
    if isinstance(param.default, bool):
        return ""
    return f" (default: {param.default})"


def man_page(name: str, command, root) -> str:
    title = f"dcmtools-{name}".upper()
    summary = (command.short_help or (command.help or "").strip().splitlines()[0]).rstrip(".")
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    options = [p for p in command.params if p.param_type_name == "option"]
    usage = " ".join(f"[{a.name.upper()}]..." if a.nargs == -1 else a.name.upper() for a in arguments)
    lines = [
        f'.TH {title} 1 "" "dcmtools" "dcmtools manual"',
        ".SH NAME",
        f"dcmtools\\-{roff(name)} \\- {roff(summary)}",
        ".SH SYNOPSIS",
        f".B dcmtools {roff(name)}",
        f"[OPTIONS] {roff(usage)}".rstrip(),
        ".SH DESCRIPTION",
        *render_paragraphs(command.help or ""),
    ]
    if arguments:
        lines.append(".SH ARGUMENTS")
        for argument in arguments:
            lines += [".TP", f"\\fI{roff(argument.name.upper())}\\fR", roff(getattr(argument, "help", "") or "")]
    lines.append(".SH OPTIONS")
    for option in options:
        if option.hidden:
            continue
        lines += [".TP", option_line(option), roff((option.help or "") + default_text(option))]
    if getattr(command, "epilog", None):  # what --help prints after the options
        lines += [".SH NOTES", *render_paragraphs(command.epilog)]
    lines += exit_status_section() + [".SH SEE ALSO", "\\fBdcmtools\\fR(1)"]
    return "\n".join(lines) + "\n"


def exit_status_section() -> list[str]:
    lines = [".SH EXIT STATUS"]
    for code, meaning in EXIT_STATUS:
        lines += [".TP", f"\\fB{code}\\fR", roff(meaning)]
    return lines


def main_page(root) -> str:
    lines = [
        '.TH DCMTOOLS 1 "" "dcmtools" "dcmtools manual"',
        ".SH NAME",
        "dcmtools \\- composable DICOM tools that stream JSON Lines",
        ".SH SYNOPSIS",
        ".B dcmtools",
        "[\\-\\-version] COMMAND [OPTIONS] ARGS",
        ".SH DESCRIPTION",
        *render_paragraphs(root.help or ""),
        ".SH COMMANDS",
    ]
    for command in commands(root):
        summary = (command.short_help or (command.help or "").strip().splitlines()[0]).rstrip(".")
        lines += [".TP", f"\\fBdcmtools {roff(command.name)}\\fR(1)", roff(summary)]
    lines += [
        ".SH INPUTS",
        *render_paragraphs(
            "Files, folders (walked recursively in path order, hidden entries skipped) and globs "
            "expanded by the tool ('**/*.dcm', quoted). '-' reads stdin: one path per line, or one "
            "JSON record per line from another command (its 'out' when present, else its 'path'); "
            "--files-from FILE reads a file the same way; -0/--null reads NUL-separated paths. With no "
            'INPUTS and a piped stdin, stdin is read. A piped record with "ok": false is never '
            "processed; it becomes an upstream_failed record."
        ),
        ".SH OUTPUT",
        *render_paragraphs(
            "stdout carries results only: one JSON object per line when piped or with --json, a "
            "readable form on a terminal. Every item record has 'type', what it is about and 'ok'; a "
            'failure carries error: {code, message, hint}. The last record is the summary: {"type": '
            '"summary", "total", "ok", "failed", "errors", "seconds", "exit_status"}. Logs, '
            "warnings and progress bars go to stderr."
        ),
        *exit_status_section(),
        ".SH ENVIRONMENT",
    ]
    for name, meaning in ENVIRONMENT:
        lines += [".TP", f"\\fB{name}\\fR", roff(meaning)]
    lines += [".SH SEE ALSO", ", ".join(f"\\fBdcmtools\\-{roff(c.name)}\\fR(1)" for c in commands(root))]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- completions
# What completes after each option and argument comes from dcmtools.cli.completion: choices, peer
# names, files, folders, or nothing (an AE title, a number).  Peer names are the table names of the
# peers file, read with awk at each Tab (no Python start-up): the file of --peers FILE on the command
# line, else $DCMTOOLS_PEERS, else $XDG_CONFIG_HOME/dcmtools/peers.toml (~/.config/...).  Limits: a
# name holding a dot or a space, and sub-tables ([a.b]), are not offered.
PEER_AWK = r"""awk '/^[ \t]*\[[^][]+\][ \t]*(#.*)?$/ { sub(/^[ \t]*\[[ \t]*/, ""); sub(/[ \t]*\].*$/, ""); gsub(/"/, ""); if ($0 !~ /[. ]/) print }'"""


def completion_spec(command, table) -> tuple[list[tuple[list[str], str, str, tuple[str, ...] | None]], list[str], str]:
    """(options as (names, help, kind, values), the kinds of the fixed arguments, the kind of the rest)."""
    from dcmtools.cli.completion import option_values, peer_arguments

    options = []
    for param in command.params:
        if param.param_type_name != "option" or param.hidden:
            continue
        kind, values = option_values(command.name, param, table) if takes_value(param) else ("flag", None)
        options.append((option_names(param), param.help or "", kind, values))
    args, rest = [], ""
    for param in command.params:
        if param.param_type_name == "argument":
            kind = "peers" if param.name in peer_arguments else "files"
            if param.nargs == -1:
                rest = kind
            else:
                args.append(kind)
    return options, args, rest


def completion_table():
    from dcmtools.cli.completion import named_values

    return named_values()


def bash_words(values) -> str:
    """Newline-separated words as one $'...' string."""
    return "$'" + "\\n".join(v.replace("\\", "\\\\").replace("'", "\\'") for v in values) + "'"


BASH_HELPERS = f"""_dcmtools_peer_names() {{
    local file="" i
    for ((i = 2; i < COMP_CWORD; i++)); do
        if [[ ${{COMP_WORDS[i]}} == --peers ]]; then
            file=${{COMP_WORDS[i+1]}}
            [[ $file == = ]] && file=${{COMP_WORDS[i+2]}}
        fi
    done
    [[ -n $file ]] || file=${{DCMTOOLS_PEERS:-${{XDG_CONFIG_HOME:-$HOME/.config}}/dcmtools/peers.toml}}
    [[ $file == "~/"* ]] && file=$HOME/${{file#"~/"}}
    [[ -r $file ]] && {PEER_AWK} "$file"
}}
# COMPREPLY: the words of $1 (one a line) that start with $cur, quoted for the shell; never expanded.
_dcmtools_reply() {{
    local word quoted
    COMPREPLY=()
    compopt +o filenames 2>/dev/null
    while IFS= read -r word; do
        [[ -n $word && $word == "$cur"* ]] || continue
        printf -v quoted '%q' "$word"
        COMPREPLY+=("$quoted")
    done <<< "$1"
}}
_dcmtools_files() {{
    local IFS=$'\\n'
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -f -- "$cur"))
}}
_dcmtools_dirs() {{
    local IFS=$'\\n'
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -d -- "$cur"))
}}
"""


def bash_action(kind: str, values) -> str:
    return {
        "choices": lambda: f"_dcmtools_reply {bash_words(values)}",
        "peers": lambda: '_dcmtools_reply "$(_dcmtools_peer_names)"',
        "files": lambda: "_dcmtools_files",
        "dirs": lambda: "_dcmtools_dirs",
        "none": lambda: ":",
    }[kind]()


def bash_completion(root) -> str:
    table = completion_table()
    names = [c.name for c in commands(root)] + ["--version", "--help"]
    cases = []
    for command in commands(root):
        options, args, rest = completion_spec(command, table)
        opts = [n for names_, _, _, _ in options for n in names_] + ["--help", "-h"]
        valued = [n for names_, _, kind, _ in options if kind != "flag" for n in names_]
        lines = [
            f"        {command.name})",
            f"            opts={bash_words(opts)}",
            f'            valued=" {" ".join(valued)} "',
            f"            args=({' '.join(args)}) rest={rest}",
        ]
        value_lines = [
            f"                {'|'.join(names_)}) {bash_action(kind, values)}; return ;;"
            for names_, _, kind, values in options
            if kind != "flag"
        ]
        if value_lines:
            lines += ["            case $prev in", *value_lines, "            esac"]
        cases.append("\n".join(lines) + "\n            ;;")
    return (
        "# bash completion for dcmtools (generated by scripts/gen_docs.py)\n"
        "# Commands, options, option choices, peer names (the peers file's table names, read with awk), files.\n"
        + BASH_HELPERS
        + "_dcmtools() {\n"
        "    local cur prev cmd opts valued args rest kind word i n=0\n"
        "    COMPREPLY=()\n"
        "    cur=${COMP_WORDS[COMP_CWORD]}\n"
        "    prev=${COMP_WORDS[COMP_CWORD-1]}\n"
        "    if [[ $cur == = ]]; then  # --option=<Tab>\n"
        '        cur=""\n'
        "    elif [[ $prev == = ]]; then  # --option=va<Tab>\n"
        "        prev=${COMP_WORDS[COMP_CWORD-2]}\n"
        "    fi\n"
        "    if ((COMP_CWORD == 1)); then\n"
        f"        _dcmtools_reply {bash_words(names)}\n"
        "        return\n"
        "    fi\n"
        "    cmd=${COMP_WORDS[1]}\n"
        "    case $cmd in\n" + "\n".join(cases) + "\n"
        "        *) return ;;\n"
        "    esac\n"
        "    if [[ $cur == -* ]]; then\n"
        '        _dcmtools_reply "$opts"\n'
        "        return\n"
        "    fi\n"
        "    # Which argument is this: count the words before it, less options and their values.\n"
        "    for ((i = 2; i < COMP_CWORD; i++)); do\n"
        "        word=${COMP_WORDS[i]}\n"
        "        if [[ $word == -?* ]]; then\n"
        '            if [[ $valued == *" $word "* ]]; then\n'
        "                ((i++))\n"
        "                [[ ${COMP_WORDS[i]} == = ]] && ((i++))\n"
        "            fi\n"
        "        elif [[ $word != = ]]; then\n"
        "            ((n++))\n"
        "        fi\n"
        "    done\n"
        "    kind=${args[n]:-$rest}\n"
        "    case $kind in\n"
        '        peers) _dcmtools_reply "$(_dcmtools_peer_names)" ;;\n'
        "        files) _dcmtools_files ;;\n"
        "    esac\n"
        "}\n"
        "complete -F _dcmtools dcmtools\n"
    )


def zsh_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "'\\''").replace("[", "\\[").replace("]", "\\]").replace(":", "\\:")


def first_sentence(text: str) -> str:
    text = " ".join((text or "").split())
    return text.split(". ")[0].rstrip(".")[:80]


def zsh_action(param_metavar: str, kind: str, values) -> str:
    label = (param_metavar or "value").lower().replace(":", "")
    if kind == "choices":
        words = " ".join(zsh_escape(v).replace(" ", "\\ ").replace("(", "\\(").replace(")", "\\)") for v in values)
        return f":{label}:({words})"
    return {
        "peers": ":peer:_dcmtools_peers",
        "files": f":{label}:_files",
        "dirs": f":{label}:_files -/",
        "none": f":{label}: ",
    }[kind]


ZSH_HELPERS = f"""# Peer names: the table names of the peers file (--peers FILE, $DCMTOOLS_PEERS, or the default).
_dcmtools_peers() {{
    local file i
    local -a names
    i=${{words[(I)--peers]}}
    (( i )) && file=${{words[i+1]}}
    [[ -n $file ]] || file=${{DCMTOOLS_PEERS:-${{XDG_CONFIG_HOME:-$HOME/.config}}/dcmtools/peers.toml}}
    file=${{file/#\\~/$HOME}}
    [[ -r $file ]] || return 1
    names=(${{(f)"$({PEER_AWK} $file)"}})
    compadd -a names
}}"""


def zsh_completion(root) -> str:
    table = completion_table()
    lines = [
        "#compdef dcmtools",
        "# zsh completion for dcmtools (generated by scripts/gen_docs.py)",
        ZSH_HELPERS,
        "_dcmtools() {",
        "    local -a commands",
        "    commands=(",
    ]
    for command in commands(root):
        summary = first_sentence(command.short_help or command.help or "")
        lines.append(f"        '{command.name}:{zsh_escape(summary)}'")
    lines += [
        "    )",
        "    if (( CURRENT == 2 )); then",
        "        _describe 'command' commands",
        "        return",
        "    fi",
        "    local cmd=${words[2]}",
        "    shift words; (( CURRENT-- ))",
        "    case $cmd in",
    ]
    for command in commands(root):
        options, args, rest = completion_spec(command, table)
        metavars = {n: p.metavar for p in command.params if p.param_type_name == "option" for n in option_names(p)}
        specs = []
        for names_, help_, kind, values in options:
            help_text = zsh_escape(first_sentence(help_))
            action = "" if kind == "flag" else zsh_action(metavars.get(names_[0]) or "", kind, values)
            for name in names_:
                specs.append(f"'{name}[{help_text}]{action}'")
        specs += ["'--help[Show the help and exit]'", "'-h[Show the help and exit]'"]
        for position, kind in enumerate(args, 1):
            specs.append(f"'{position}:peer:_dcmtools_peers'" if kind == "peers" else f"'{position}:file:_files'")
        if rest:
            specs.append("'*:peer:_dcmtools_peers'" if rest == "peers" else "'*:file:_files'")
        lines.append(f"        {command.name})")
        lines.append("            _arguments -s \\")
        lines += [f"                {spec} \\" for spec in specs[:-1]]
        lines.append(f"                {specs[-1]}")
        lines.append("            ;;")
    lines += ["    esac", "}", '_dcmtools "$@"']
    return "\n".join(lines) + "\n"


def fish_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


FISH_HELPERS = f"""function __dcmtools_peer_names --description 'The table names of the dcmtools peers file'
    set -l tokens (commandline -opc)
    set -l file
    set -l i (contains -i -- --peers $tokens)
    if test -n "$i"; and test $i -lt (count $tokens)
        set file $tokens[(math $i + 1)]
    else if test -n "$DCMTOOLS_PEERS"
        set file $DCMTOOLS_PEERS
    else if test -n "$XDG_CONFIG_HOME"
        set file $XDG_CONFIG_HOME/dcmtools/peers.toml
    else
        set file $HOME/.config/dcmtools/peers.toml
    end
    set file (string replace -r '^~/' "$HOME/" -- $file)
    test -r "$file"; and {PEER_AWK} $file
end

# True when the word being completed is argument N (from 0; N+ for N or more) of dcmtools COMMAND;
# the rest of the arguments name the options that take a value.
function __dcmtools_position
    set -l want $argv[2]
    set -l valued $argv[3..-1]
    set -l tokens (commandline -opc)
    set -l n 0
    set -l skip 0
    for token in $tokens[3..-1]
        if test $skip = 1
            set skip 0
        else if string match -q -- '-?*' $token
            contains -- $token $valued; and set skip 1
        else
            set n (math $n + 1)
        end
    end
    if string match -q -- '*+' $want
        test $n -ge (string trim -r -c + -- $want)
    else
        test $n -eq $want
    end
end"""


def fish_words(values) -> str:
    return " ".join(fish_escape(v).replace(" ", "\\\\ ") for v in values)


def fish_completion(root) -> str:
    table = completion_table()
    lines = [
        "# fish completion for dcmtools (generated by scripts/gen_docs.py)",
        FISH_HELPERS,
        "complete -c dcmtools -f -n '__fish_use_subcommand' -l version -d 'Print the version and exit'",
    ]
    for command in commands(root):
        summary = fish_escape(first_sentence(command.short_help or command.help or ""))
        lines.append(f"complete -c dcmtools -f -n '__fish_use_subcommand' -a {command.name} -d '{summary}'")
    for command in commands(root):
        condition = f"__fish_seen_subcommand_from {command.name}"
        options, args, rest = completion_spec(command, table)
        for names_, help_, kind, values in options:
            parts = [f"complete -c dcmtools -n '{condition}'"]
            for name in names_:
                parts.append(f"-l {name[2:]}" if name.startswith("--") else f"-s {name[1:]}")
            parts.append(
                {
                    "flag": "",
                    "choices": f"-x -a '{fish_words(values or ())}'",
                    "peers": "-x -a '(__dcmtools_peer_names)'",
                    "files": "-r -F",
                    "dirs": "-x -a '(__fish_complete_directories (commandline -ct))'",
                    "none": "-x",
                }[kind]
            )
            parts.append(f"-d '{fish_escape(first_sentence(help_))}'")
            lines.append(" ".join(p for p in parts if p))
        lines.append(f"complete -c dcmtools -n '{condition}' -l help -s h -d 'Show the help and exit'")
        valued = " ".join(n for names_, _, kind, _ in options if kind != "flag" for n in names_)
        for position, kind in enumerate([*args, *([rest] if rest else [])]):
            at = f"{position}+" if position == len(args) else str(position)
            where = f"'{condition}; and __dcmtools_position {command.name} {at} {valued}'"
            if kind == "peers":
                lines.append(f"complete -c dcmtools -n {where} -f -a '(__dcmtools_peer_names)'")
            else:
                lines.append(f"complete -c dcmtools -n {where} -F")
        if not rest:  # no more arguments: no file names either
            where = f"'{condition}; and __dcmtools_position {command.name} {len(args)}+ {valued}'"
            lines.append(f"complete -c dcmtools -n {where} -f")
    return "\n".join(lines) + "\n"


def outputs() -> dict[Path, str]:
    root = click_root()
    files = {REPO / "man" / "dcmtools.1": main_page(root)}
    for command in commands(root):
        files[REPO / "man" / f"dcmtools-{command.name}.1"] = man_page(command.name, command, root)
    files[REPO / "completions" / "dcmtools.bash"] = bash_completion(root)
    files[REPO / "completions" / "_dcmtools"] = zsh_completion(root)
    files[REPO / "completions" / "dcmtools.fish"] = fish_completion(root)
    import docs_pages  # beside this script

    files.update(docs_pages.pages(commands(root), EXIT_STATUS, ENVIRONMENT))
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is stale")
    args = parser.parse_args()
    files = outputs()
    stale = []
    for folder in ("man", "completions", "docs/commands"):  # wholly generated folders
        for existing in (REPO / folder).glob("*"):
            if existing.is_file() and existing not in files and existing.name != ".gitkeep":
                stale.append(existing)
                if not args.check:
                    existing.unlink()
    for path, text in files.items():
        if not path.exists() or path.read_text() != text:
            stale.append(path)
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    if args.check and stale:
        print("stale: " + ", ".join(str(p.relative_to(REPO)) for p in stale), file=sys.stderr)
        print("run: python scripts/gen_docs.py", file=sys.stderr)
        return 1
    if not args.check:
        print(f"wrote {len(files)} files" + (f" ({len(stale)} changed)" if stale else " (none changed)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
