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

ENVIRONMENT = [
    ("DCMTOOLS_AET", "our calling AE title for network commands (default DCMTOOLS)"),
    ("DCMTOOLS_PEERS", "the peers file naming the AE title, host and port of each peer"),
    ("DCMTOOLS_DEBUG", "when set, as --debug: tracebacks and debug logs on stderr"),
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
def bash_completion(root) -> str:
    names = " ".join(c.name for c in commands(root))
    cases = []
    for command in commands(root):
        opts = " ".join(n for p in command.params if p.param_type_name == "option" for n in option_names(p))
        valued = "|".join(
            n for p in command.params if p.param_type_name == "option" and takes_value(p) for n in option_names(p)
        )
        case = f'        {command.name})\n            opts="{opts}"\n'
        if valued:
            case += f'            case "$prev" in {valued}) COMPREPLY=($(compgen -f -- "$cur")); return;; esac\n'
        cases.append(case + "            ;;")
    return (
        "# bash completion for dcmtools (generated by scripts/gen_docs.py)\n"
        "_dcmtools() {\n"
        "    local cur prev cmd opts\n"
        '    cur="${COMP_WORDS[COMP_CWORD]}"\n'
        '    prev="${COMP_WORDS[COMP_CWORD-1]}"\n'
        '    cmd="${COMP_WORDS[1]}"\n'
        '    if [ "$COMP_CWORD" -eq 1 ]; then\n'
        f'        COMPREPLY=($(compgen -W "{names} --version --help" -- "$cur"))\n'
        "        return\n"
        "    fi\n"
        '    case "$cmd" in\n' + "\n".join(cases) + "\n"
        '        *) opts="" ;;\n'
        "    esac\n"
        '    if [[ "$cur" == -* ]]; then\n'
        '        COMPREPLY=($(compgen -W "$opts" -- "$cur"))\n'
        "    else\n"
        '        COMPREPLY=($(compgen -f -- "$cur"))\n'
        "    fi\n"
        "}\n"
        "complete -o filenames -o bashdefault -F _dcmtools dcmtools\n"
    )


def zsh_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "'\\''").replace("[", "\\[").replace("]", "\\]").replace(":", "\\:")


def first_sentence(text: str) -> str:
    text = " ".join((text or "").split())
    return text.split(". ")[0].rstrip(".")[:80]


def zsh_completion(root) -> str:
    lines = [
        "#compdef dcmtools",
        "# zsh completion for dcmtools (generated by scripts/gen_docs.py)",
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
        specs = []
        for param in command.params:
            if param.param_type_name != "option" or param.hidden:
                continue
            help_text = zsh_escape(first_sentence(param.help or ""))
            value = ":value:_files" if takes_value(param) else ""
            for name in option_names(param):
                specs.append(f"'{name}[{help_text}]{value}'")
        specs.append("'*:file:_files'")
        lines.append(f"        {command.name})")
        lines.append("            _arguments -s \\")
        lines += [f"                {spec} \\" for spec in specs[:-1]]
        lines.append(f"                {specs[-1]}")
        lines.append("            ;;")
    lines += ["    esac", "}", '_dcmtools "$@"']
    return "\n".join(lines) + "\n"


def fish_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def fish_completion(root) -> str:
    lines = [
        "# fish completion for dcmtools (generated by scripts/gen_docs.py)",
        "complete -c dcmtools -f -n '__fish_use_subcommand' -l version -d 'Print the version and exit'",
    ]
    for command in commands(root):
        summary = fish_escape(first_sentence(command.short_help or command.help or ""))
        lines.append(f"complete -c dcmtools -f -n '__fish_use_subcommand' -a {command.name} -d '{summary}'")
    for command in commands(root):
        condition = f"__fish_seen_subcommand_from {command.name}"
        for param in command.params:
            if param.param_type_name != "option" or param.hidden:
                continue
            parts = [f"complete -c dcmtools -n '{condition}'"]
            for name in option_names(param):
                if name.startswith("--"):
                    parts.append(f"-l {name[2:]}")
                else:
                    parts.append(f"-s {name[1:]}")
            if takes_value(param):
                parts.append("-r")
            parts.append(f"-d '{fish_escape(first_sentence(param.help or ''))}'")
            lines.append(" ".join(parts))
        lines.append(f"complete -c dcmtools -n '{condition}' -F")
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
