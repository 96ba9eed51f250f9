"""Run with plain Locust:  locust -f locustfile.py --host http://127.0.0.1:8000 --headless -u 10 -r 5 -t 30s

The users, options (see ``locust -f locustfile.py --help``, group "bench") and record collection
live in ``bench/load/locustfile.py``; ``bench run`` uses the same module.
"""

from bench.load.locustfile import *  # noqa: F401,F403
