"""The typer application that every command module registers itself on."""

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from .. import __version__
from .spelling import spell


class _SpellingGroup(TyperGroup):
    """The root command: a usage error whose message names an option by its library keyword
    (`tls_ca`) shows the command line's spelling (--tls-ca), whichever command raised it."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except typer.BadParameter as exc:  # typer's own click (vendored): not the click package's class
            exc.message = spell(exc.message)
            raise


app = typer.Typer(
    cls=_SpellingGroup,
    name="dcmtools",
    help=(
        "Composable DICOM tools that stream JSON Lines.\n\n"
        "Results go to stdout: a readable form on a terminal, one JSON object per line "
        "when piped or with --json. Logs and progress go to stderr. "
        "Run 'dcmtools COMMAND --help' for a command's options and examples."
    ),
    no_args_is_help=True,
    add_completion=False,
    # rich makes --help three times slower to start; plain Click help suffices.
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dcmtools {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Composable DICOM tools that stream JSON Lines."""
