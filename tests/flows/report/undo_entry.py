"""Child-process entry of the terminal-confirmation test: the CLI with the test actions registered."""

from __future__ import annotations

import sys

from flows.actions import registry as registry_module
from flows.cli import main as cli_main
from tests.flows.report.records import registry


def main() -> None:
    registry_module._default = registry()  # the test actions are not built-ins
    sys.exit(cli_main(sys.argv[1:]))
