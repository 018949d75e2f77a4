"""Runs every generator of committed artifacts; `--check` fails on drift.

Each generator is a function returning {repo-relative path: content}. The same function
writes the files (`make generate`) and verifies them (`make verify`, run by `make test`),
so a generated file can never silently differ from its source.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

Generator = Callable[[], Mapping[str, str | bytes]]

# "module:function" of each generator, in the order they run.
GENERATORS: tuple[str, ...] = (
    "tools.protogen:generate",
    "edgewave_api.crdgen:generate",
    "edgewave_api.docgen:generate",
    "tools.gitopsgen:generate",
    "tools.metricsdoc:generate",
    "tools.rbacgen:generate",
)


def _load(spec: str) -> Generator:
    module_name, function_name = spec.split(":")
    function: Generator = getattr(importlib.import_module(module_name), function_name)
    return function


def _as_bytes(content: str | bytes) -> bytes:
    return content.encode() if isinstance(content, str) else content


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if any output would change")
    args = parser.parse_args(argv)
    drift: list[str] = []
    for spec in GENERATORS:
        try:
            outputs = _load(spec)()
        except ModuleNotFoundError as error:
            # A generator whose module is not written yet is skipped loudly, never silently.
            print(f"generate: {spec} unavailable ({error})", file=sys.stderr)
            return 1
        for relative, content in sorted(outputs.items()):
            path = REPO / relative
            wanted = _as_bytes(content)
            current = path.read_bytes() if path.exists() else None
            if current == wanted:
                continue
            if args.check:
                drift.append(relative)
                old = (current or b"").decode(errors="replace").splitlines()
                new = wanted.decode(errors="replace").splitlines()
                diff = difflib.unified_diff(old, new, relative, relative, lineterm="", n=1)
                print("\n".join(list(diff)[:40]), file=sys.stderr)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(wanted)
                print(f"wrote {relative}")
    if drift:
        print(
            f"generated files are stale: {', '.join(drift)}; run `make generate` and commit",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
