"""What every ``python -m raysweep.<stage>`` command shares: argument splitting and the rule that
bad input ends in one line on stderr and a non-zero exit code, never a traceback."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, Mapping, Sequence

from raysweep.config import ConfigError


def split_args(argv: Sequence[str], options: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Split ``key=value`` arguments into schema overrides and this command's own options.

    ``options`` maps each option name (no dots, e.g. ``out``) to its default; the default's type
    converts the given string.
    """
    overrides: list[str] = []
    values = dict(options)
    for arg in argv:
        name, sep, text = arg.partition("=")
        if sep and name in options:
            values[name] = _convert(name, text, options[name])
        else:
            overrides.append(arg)
    return overrides, values


def _convert(name: str, text: str, default: Any) -> Any:
    kind = type(default)
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        return text if default is None else kind(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a valid {kind.__name__}") from None


def main_guard(fn: Callable[..., int | None]) -> Callable[..., int]:
    """Run a command's main: a ConfigError becomes ``error: <message>`` and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> int:
        try:
            return fn(*args, **kwargs) or 0
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapper


def arguments(argv: Sequence[str] | None, doc: str) -> list[str] | None:
    """A command's arguments (``sys.argv[1:]`` by default), or None after printing ``doc`` for ``-h``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(doc)
        return None
    return argv


def config_command(doc: str, run: Callable[[Any], Any]) -> Callable[[Sequence[str] | None], int]:
    """The ``main`` of a command that takes schema overrides only: ``-h`` prints ``doc``; otherwise
    the overrides become a validated Config, ``run(config)`` runs, its result is the last line."""

    @main_guard
    def main(argv: Sequence[str] | None = None) -> int:
        from raysweep.config import load_config

        if (args := arguments(argv, doc)) is not None:
            print(run(load_config(args)))
        return 0

    return main
