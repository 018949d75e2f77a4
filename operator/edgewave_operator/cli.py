"""The `edgewave` command line (also installed as the kubectl plugin `kubectl edgewave`).

The root app only assembles command modules; each lives in `edgewave_operator.commands`
and imports its heavy dependencies lazily so `edgewave --help` stays fast. Errors a person
can act on are printed as one line with exit code 1, never as a traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer

from edgewave_api.errors import EdgewaveError

# Each module defines `register(app: typer.Typer) -> None`.
COMMAND_MODULES: tuple[str, ...] = (
    "edgewave_operator.commands.devcluster",
    "edgewave_operator.commands.operator",
    "edgewave_operator.commands.demo",
    "edgewave_operator.commands.compile",
    "edgewave_operator.commands.residency",
    "edgewave_operator.commands.plan",
    "edgewave_operator.commands.status",
    "edgewave_operator.commands.agents",
    "edgewave_operator.commands.gateway",
    "edgewave_operator.commands.webhookcert",
    "edgewave_operator.commands.dashboard",
)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="edgewave",
        help="Roll ML models out to edge GPUs, in waves, by region.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(app)
    return app


def main() -> None:
    try:
        build_app()(standalone_mode=True)
    except EdgewaveError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
