"""The build worker: one build per process, so a build can be killed and cannot hang the caller.

`python -m edgewave_compiler.worker` reads one JSON request on stdin (`key`, `model_path`,
`out_dir`), runs `building.build_engine` and writes one JSON line on stdout: the output, or
the typed error. Toolchains that log from native code write to stderr, which the caller
captures into the build log. Killing the process group cancels the build. The worker runs in
an empty private working directory (`workdirs`), so no relative path resolves to a file.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

from edgewave_api.errors import EdgewaveError
from edgewave_compiler import building, errors, keys, workdirs

RESULT_PREFIX = "EDGEWAVE-BUILD-RESULT "


def run(request: dict[str, object]) -> dict[str, object]:
    key = keys.BuildKey.model_validate(request["key"])
    try:
        output = building.build_engine(
            key=key,
            model_path=Path(str(request["model_path"])),
            out_dir=Path(str(request["out_dir"])),
        )
    except EdgewaveError as error:
        return {"ok": False, "error": errors.to_wire(error)}
    except Exception as error:  # a bug or a toolchain failure we do not classify yet
        traceback.print_exc(file=sys.stderr)
        failure = errors.BuildFailed(
            f"the {key.backend.value} build failed unexpectedly ({type(error).__name__}: {error});"
            " the build log has the traceback"
        )
        return {"ok": False, "error": errors.to_wire(failure)}
    return {
        "ok": True,
        "artifact": str(output.artifact),
        "digest": output.digest,
        "size_bytes": output.size_bytes,
        "build_seconds": output.build_seconds,
        "log": output.log,
        "toolchain": dict(output.toolchain),
    }


def main() -> None:
    request = json.loads(sys.stdin.read())
    # The caller starts this process in an empty private directory already; moving into a
    # fresh one here keeps a worker started by hand (or by an older caller) just as safe.
    with workdirs.inside_private_dir():
        result = run(request)
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
