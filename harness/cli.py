"""`python -m harness <command>`: each module in harness/commands adds one subcommand.

Command modules import only argparse-level code at the top, so `--help` stays fast; the work
(and torch, transformers, ...) is imported inside each command's `main`.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from protocol.errors import HarnessError


class Parser(argparse.ArgumentParser):
    """argparse with the harness's one-line errors: "error: ..." and where the usage is, exit 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message}; see `{self.prog} --help`.\n")


def build_parser() -> argparse.ArgumentParser:
    import harness.commands as commands

    parser = Parser(
        prog="python -m harness",
        description="Benchmark harness for multimodal recommendation (SDA, arXiv 2512.06883).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = [importlib.import_module(f"harness.commands.{m.name}")
               for m in pkgutil.iter_modules(commands.__path__)]
    for module in sorted(modules, key=lambda m: getattr(m, "ORDER", 50)):
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except HarnessError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume.", file=sys.stderr)
        return 130
