"""Command line: ``python -m unsloth_vlm_grpo doctor``."""

from __future__ import annotations

import argparse
import sys

from ._doctor import run_doctor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="unsloth-vlm-grpo", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("doctor", help="show installed vs verified versions and which patches would apply")
    options = parser.parse_args(argv)
    if options.command == "doctor":
        return run_doctor(sys.stdout)
    return 2


if __name__ == "__main__":
    sys.exit(main())
