"""Option groups: options that several commands share, declared once, handed to a command as one object.

A group is a frozen dataclass whose fields are declared as a command's
parameters are (``json: JsonOpt = None``: a typer ``Annotated`` type and the
default), in the order --help shows them.  A command takes the group as one
parameter and ``option_groups`` puts the options themselves in its signature,
at that place, for typer:

    @app.command("dump")
    @option_groups
    def dump_command(tag: TagOpt = None, ..., files: FileArgs = FileArgs(), std: StdArgs = StdArgs()):
        with std.run("dump") as run:
            for item in run.inputs(files): ...

Importing this module does not import typer, pydicom or pynetdicom.
"""

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any, ClassVar, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class OptionGroup:
    """The base of an option group (a frozen dataclass; see the module's docstring)."""

    ONLY: ClassVar[tuple[str, ...] | None] = None  # the options a command takes (None: all)

    @classmethod
    def option_types(cls) -> dict[str, Any]:
        """Each option's field name and its typer ``Annotated`` type, in order."""
        hints = typing.get_type_hints(cls, include_extras=True)
        return {f.name: hints[f.name] for f in fields(cls) if cls.ONLY is None or f.name in cls.ONLY}  # type: ignore[arg-type]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {f.name: None if f.default is MISSING else f.default for f in fields(cls)}  # type: ignore[arg-type]

    @classmethod
    def only(cls, *names: str) -> type["OptionGroup"]:
        """The same group with only the options ``names`` (the others keep their defaults)."""
        return type(cls.__name__, (cls,), {"ONLY": names})

    @classmethod
    def without(cls, *names: str) -> type["OptionGroup"]:
        """The same group without the options ``names`` (they keep their defaults)."""
        return cls.only(*(name for name in cls.option_types() if name not in names))


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
        defaults = group.defaults()
        for name, annotation in group.option_types().items():
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
            kwargs[name] = group(**{option: kwargs.pop(option) for option in group.option_types()})
        return func(*args, **kwargs)

    command.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    command.__annotations__ = annotations
    del command.__wrapped__  # typer must see the new signature, not the function's
    return command  # type: ignore[return-value]
