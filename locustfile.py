"""Run with plain Locust:  locust -f locustfile.py --host http://127.0.0.1:8000 --headless -u 10 -r 5 -t 30s

The users, options (see ``locust -f locustfile.py --help``, group "bench") and record collection
live in ``bench/load/locustfile.py``; ``bench run`` uses the same module. This file also wires in
the stage after the load: when a plain Locust run ends, its spool becomes ``requests.parquet`` and
``run.json`` (``bench/load/`` itself never imports ``bench/analysis/``).
"""

import os
import sys
from pathlib import Path

import locust  # noqa: F401  (first: Locust monkey-patches the standard library when imported)

# Locust puts the working directory first on the import path: run from a folder holding another `bench/`
# (the user's scripts, a second checkout), that one would replace this harness. The harness is imported first without it.
_cwd = os.path.realpath(os.getcwd())
if _cwd != os.path.realpath(os.path.dirname(os.path.abspath(__file__))) and "bench" not in sys.modules:
    _path = list(sys.path)
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != _cwd]
    import bench  # noqa: F401  (the harness itself binds the name; its submodules follow its own __path__)

    sys.path[:] = _path  # the user's own modules in that folder still import

from bench.load.collect import Collector
from bench.load.locustfile import *  # noqa: F401,F403


def _finalize(run_dir: Path) -> None:
    from bench.analysis.results import ensure_records  # imported at the end only: pyarrow stays out of the load

    ensure_records(run_dir)


Collector.finalize = _finalize
