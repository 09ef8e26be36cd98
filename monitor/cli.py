"""The ``marginwatch`` command line: a thin dispatcher over :mod:`monitor.commands`.

Usage and config errors print one line naming the field (and file) and exit with status 2;
nothing here prints a traceback for bad input.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from monitor.errors import UsageError

# subcommand -> (module, one-line help). Modules are imported lazily so `marginwatch calc`
# does not pay for asyncio, websockets or Kafka imports.
COMMANDS: dict[str, tuple[str, str]] = {
    "calc": ("monitor.commands.calc", "compute an account snapshot's margin offline"),
    "run": ("monitor.commands.run", "run the monitor daemon from a TOML config"),
    "demo": ("monitor.demo.command", "run the daemon against a simulated venue with a crash"),
    "decode": ("monitor.commands.decode", "decode raw venue frames into domain events"),
}


class Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...
    def run(self, args: argparse.Namespace) -> int: ...


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse's default prints usage and exits 2; keep the status, make it one line.
        raise UsageError(f"{self.prog}: {message}")


def build_parser(argv: Sequence[str]) -> tuple[argparse.ArgumentParser, Command | None]:
    parser = _Parser(prog="marginwatch", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    chosen: Command | None = None
    wanted = argv[0] if argv else None
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        if name == wanted:
            chosen = cast(Command, importlib.import_module(module_name))
            chosen.add_arguments(p)
    return parser, chosen


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    try:
        parser, command = build_parser(args_in)
        args = parser.parse_args(args_in)
        if command is None:
            parser.print_help()
            return 2
        return command.run(args)
    except UsageError as exc:
        print(f"marginwatch: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
