"""Runs every Edgewave benchmark in turn (`make bench`) and repeats their result lines at the end.

Each benchmark measures its legs side by side in one run and prints ratios, because this
machine is shared and noisy; none of them asserts a wall-clock time. Extra arguments after
`--` go to every benchmark (e.g. `-- --help`); one benchmark can be run alone as a script.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Each script and the first words of the result lines it prints.
BENCHMARKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("compile_plan.py", ("compile_dedupe",)),
    ("push_throughput.py", ("push_throughput", "push_cpu_overhead")),
    ("reconcile_scale.py", ("reconcile_scale",)),
    ("fanout.py", ("fanout",)),
    ("link_goodput.py", ("link_goodput",)),  # needs root (network namespaces)
)


def main() -> int:
    results: list[str] = []
    failed: list[str] = []
    for script, prefixes in BENCHMARKS:
        print(f"== {script}", flush=True)
        run = subprocess.run(
            [sys.executable, str(HERE / script)],
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        print(run.stdout, end="", flush=True)
        results += [line for line in run.stdout.splitlines() if line.split(" ", 1)[0] in prefixes]
        if run.returncode != 0:
            failed.append(f"{script} (exit {run.returncode})")
    print("== results")
    print("\n".join(results))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
