"""The ``cathtrack`` command: one verb per job, each in its own module of this package.

Each verb module defines ``HELP`` (one line), ``EXAMPLES`` (shown under ``--help``),
``add_arguments(parser)`` and ``run(args) -> int``. Verb modules are imported only when used,
so ``cathtrack --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from cathtrack import __version__

# verb -> module name inside cathtrack.cli; the one-line help lives in the module.
VERBS: dict[str, str] = {
    "bench": "bench",
    "data": "data",
    "demo": "demo",
    "eval": "eval",
    "export": "export",
    "negatives": "negatives",
    "predict": "predict",
    "synth": "synth",
}


class CliError(Exception):
    """A bad input the user can fix; printed as one line, exit code 2."""


def _load(verb: str):
    return importlib.import_module(f"cathtrack.cli.{VERBS[verb]}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cathtrack",
        description="Catheter electrode detection and catheter segmentation in X-ray fluoroscopy.",
        epilog="Run 'cathtrack VERB --help' for the options and examples of one verb.",
    )
    parser.add_argument("--version", action="version", version=f"cathtrack {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS:
        module = _load(verb)
        verb_parser = sub.add_parser(
            verb,
            help=module.HELP,
            description=module.HELP,
            epilog="examples:\n" + module.EXAMPLES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(verb_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 2
    try:
        return int(_load(args.verb).run(args) or 0)
    except CliError as error:
        print(f"cathtrack {args.verb}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cathtrack {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
