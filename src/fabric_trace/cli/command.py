"""Command classes for the ``fabric`` CLI: help written in plain words, errors in plain words.

* Usage lines and the ``Arguments`` section name arguments as plain words
  (``PATH...``, ``SQL``, ``TRACE_ID``), never as Python types or ``{braces}``;
  an option without an explicit metavar gets one from its type (``N``,
  ``NUMBER``, ``TEXT``).
* A bad option value is reported without the validation library's wording
  (``Value error, ...``, ``Input should be ...``).
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

__all__ = ["FabricCommand", "FabricGroup", "plain_error"]

_TYPE_METAVARS = {"int": "N", "float": "NUMBER", "str": "TEXT", "bool": "BOOL"}


def plain_error(message: str) -> str:
    """A parameter error message without pydantic's phrasing.

    ``Value error, 'xx' is not one of ...`` -> ``'xx' is not one of ...``;
    ``Input should be greater than or equal to 1`` -> ``must be at least 1``;
    ``Input should be a valid integer, unable to parse ...`` -> ``must be a whole number``.
    """
    text = re.sub(r"^(Value|Assertion) error, ", "", message.strip())
    text = re.sub(r"^Input should be a valid integer.*$", "must be a whole number", text)
    text = re.sub(r"^Input should be a valid number.*$", "must be a number", text)
    text = re.sub(r"^Input should be a valid boolean.*$", "must be true or false", text)
    text = re.sub(r"^Input should be greater than or equal to (.*)$", r"must be at least \1", text)
    text = re.sub(r"^Input should be less than or equal to (.*)$", r"must be at most \1", text)
    text = re.sub(r"^Input should be greater than (.*)$", r"must be more than \1", text)
    text = re.sub(r"^Input should be less than (.*)$", r"must be less than \1", text)
    text = re.sub(r"^Input should be (.*)$", r"must be \1", text)
    return text


def _argument_word(param: Any) -> str:
    """``PATH...`` for a repeatable argument, ``SQL`` for a single one."""
    word = param.metavar or param.name.upper()
    return word + "..." if param.nargs != 1 and not word.endswith("...") else word


def _usage_word(param: Any) -> str:
    """An argument in the usage line: ``PATH...``, or ``[TRACE]`` when it may be left out."""
    word = _argument_word(param)
    return word if param.required or word.startswith("[") else f"[{word}]"


def _default_metavar(param: Any) -> str:
    """``N``, ``NUMBER`` or ``TEXT`` from the option's type (click's ``type`` or typer's annotation)."""
    choices = getattr(getattr(param, "type", None), "choices", None)
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if choices is None and isinstance(annotation, type) and issubclass(annotation, Enum):
        choices = [member.value for member in annotation]
    if choices:
        return "|".join(str(c) for c in choices)
    type_name = getattr(getattr(param, "type", None), "name", "") or ""
    if not type_name:
        type_name = getattr(annotation, "__name__", "") or str(annotation or "")
    for key, word in _TYPE_METAVARS.items():
        if key in type_name.lower():
            return word
    return "VALUE"


def _plain_errors(make: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return make(*args, **kwargs)
    except typer.BadParameter as exc:
        exc.message = plain_error(exc.message)
        raise


class FabricCommand(TyperCommand):
    """A typer command whose help and errors read as plain words."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.param_type_name == "option" and not getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = _default_metavar(param)

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        return _plain_errors(super().make_context, *args, **kwargs)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                pieces.append(_usage_word(param))
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        args, opts = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                args.append((_argument_word(param), record[1]))
            elif param.param_type_name == "option":
                opts.append(record)
        if args:
            with formatter.section("Arguments"):
                formatter.write_dl(args)
        if opts:
            with formatter.section("Options"):
                formatter.write_dl(opts)


class FabricGroup(TyperGroup):
    """A typer group (``fabric``, ``fabric trace``, ``fabric report``) with plain-word errors."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        return _plain_errors(super().make_context, *args, **kwargs)
