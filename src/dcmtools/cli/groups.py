"""Option groups: options that several commands share, declared once, handed to a command as one object.

A group is a frozen dataclass whose fields are options (``OPTIONS`` maps each
field to its typer ``Annotated`` type, in the order --help shows them).  A
command takes the group as one parameter and ``option_groups`` puts the
options themselves in its signature, at that place, for typer:

    @app.command("dump")
    @option_groups
    def dump_command(inputs: InputsArg = None, ..., src: InputArgs = InputArgs(), std: StdArgs = StdArgs()):
        with std.run("dump") as run:
            for item in run.inputs(inputs, src): ...

Importing this module does not import typer, pydicom or pynetdicom.
"""

import functools
import inspect
from collections.abc import Callable
from dataclasses import fields
from typing import Any, ClassVar, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class OptionGroup:
    """The base of an option group (a frozen dataclass; see the module's docstring)."""

    OPTIONS: ClassVar[dict[str, Any]] = {}

    @classmethod
    def only(cls, *names: str) -> type["OptionGroup"]:
        """The same group with only the options ``names`` (the others keep their defaults)."""
        return type(cls.__name__, (cls,), {"OPTIONS": {n: cls.OPTIONS[n] for n in names}})


def _group_of(parameter: inspect.Parameter) -> type[OptionGroup] | None:
    annotation = parameter.annotation
    if isinstance(annotation, type) and issubclass(annotation, OptionGroup):
        return annotation
    return None


def option_groups(func: F) -> F:
    """Replace each parameter annotated with an ``OptionGroup`` by the group's options (for typer),
    and hand the command one group object built from their values."""
    try:  # string annotations (``from __future__ import annotations``) name their types
        signature = inspect.signature(func, eval_str=True)
    except NameError:
        signature = inspect.signature(func)
    groups: dict[str, type[OptionGroup]] = {}
    parameters: list[inspect.Parameter] = []
    annotations = {p.name: p.annotation for p in signature.parameters.values() if p.annotation is not p.empty}
    for parameter in signature.parameters.values():
        group = _group_of(parameter)
        if group is None:
            parameters.append(parameter)
            continue
        groups[parameter.name] = group
        annotations.pop(parameter.name, None)
        defaults = {f.name: f.default for f in fields(group)}  # type: ignore[arg-type]
        for name, annotation in group.OPTIONS.items():
            parameters.append(
                inspect.Parameter(
                    name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=defaults[name], annotation=annotation
                )
            )
            annotations[name] = annotation
    if not groups:
        return func

    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> Any:
        for name, group in groups.items():
            kwargs[name] = group(**{option: kwargs.pop(option) for option in group.OPTIONS})
        return func(*args, **kwargs)

    command.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    command.__annotations__ = annotations
    del command.__wrapped__  # typer must see the new signature, not the function's
    return command  # type: ignore[return-value]
