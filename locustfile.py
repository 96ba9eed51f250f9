"""Run with plain Locust:  locust -f locustfile.py --host http://127.0.0.1:8000 --headless -u 10 -r 5 -t 30s

The users, options (see ``locust -f locustfile.py --help``, group "bench") and record collection
live in ``bench/load/locustfile.py``; ``bench run`` uses the same module. This file also wires in
the stage after the load: when a plain Locust run ends, its spool becomes ``requests.parquet`` and
``run.json`` (``bench/load/`` itself never imports ``bench/analysis/``).
"""

from pathlib import Path

import locust  # noqa: F401  (first: Locust monkey-patches the standard library when imported)

from bench.load.collect import Collector
from bench.load.locustfile import *  # noqa: F401,F403


def _finalize(run_dir: Path) -> None:
    from bench.analysis.results import ensure_records  # imported at the end only: pyarrow stays out of the load

    ensure_records(run_dir)


Collector.finalize = _finalize
