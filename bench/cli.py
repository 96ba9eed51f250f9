"""The ``bench`` command line: one subcommand per job, each with an example in its help."""

from __future__ import annotations

import sys

import click

from bench.errors import InputError
from bench.secrets import read_secret


class _Group(click.Group):
    def invoke(self, ctx: click.Context):  # one clear line for input errors, no traceback
        try:
            return super().invoke(ctx)
        except InputError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="neptun-bench")
def main() -> None:
    """Load-test and benchmark streaming LLM chat routes.

    \b
    Jobs:
      bench run                 a benchmark run (embedded reference target unless --host)
      bench report RUN_DIR      tables, charts and report.html from a run's records
      bench compare BASE CAND   latency regression gate for CI (exit 1 on regression)
      bench models RUN_DIR      rank the models of a multi-model run
      bench capacity            sweep load levels, find the highest load within the SLOs
      bench calibrate           how far this machine's measurements can be trusted
      bench target              the reference target on its own

    \b
    Example, a full run in one command:
      bench run --duration 30s --users 12
    """


@main.command(context_settings={"max_content_width": 100})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to bind; 0 picks a free one.")
@click.option("--flavor", type=click.Choice(["deployed", "documented"]), default="deployed", show_default=True,
              help="Behave as the deployed route (text/plain, cookie sessions) or as its public doc (text/event-stream).")
@click.option("--content-type", type=click.Choice(["plain", "event-stream"]), default=None,
              help="Override the stream's content type (default follows --flavor).")
@click.option("--framing", type=click.Choice(["aisdk", "sse"]), default="aisdk", show_default=True,
              help="aisdk: 0:\"text\" lines; sse: the same parts inside SSE data: events.")
@click.option("--finish-part", is_flag=True, help="End each stream with an AI SDK finish part carrying usage.")
@click.option("--profiles", "profiles_path", type=click.Path(dir_okay=False), default=None,
              help="YAML file of model profiles laid over the bundled ones.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for replies, lengths, jitter and faults.")
@click.option("--faults", default=None, help='Share of requests that get each fault, e.g. "500=0.02,429=0.01:3,stall=0.01:2".')
@click.option("--no-auth", is_flag=True, help="Accept requests without credentials (quick local use).")
@click.option("--jwt-secret-file", type=click.Path(dir_okay=False), default=None,
              help="File holding the HS256 secret; else the BENCH_JWT_SECRET environment variable.")
@click.option("--truth-file", type=click.Path(dir_okay=False), default=None,
              help="Write the server's per-request truth here (JSON lines) when it stops.")
@click.option("--max-body-bytes", default=4 * 1024 * 1024, show_default=True, type=int, help="Larger bodies get 413.")
def target(host, port, flavor, content_type, framing, finish_part, profiles_path, seed, faults, no_auth,
           jwt_secret_file, truth_file, max_body_bytes) -> None:
    """Serve the reference target: the chat route, exactly, on a simulated inference engine.

    \b
    Routes:
      POST /api/ai/huggingface/{publisher}/{model}/chat?chat_id=N[&is_playground=true]
      POST /v1/chat/completions, GET /v1/models        (OpenAI-compatible, same engine)
      GET  /_bench/truth[?ids=a,b]                       (server-side stamps per X-Request-ID)
      GET  /_bench/health, GET /_bench/stats, DELETE /_bench/truth

    \b
    Per-request faults for tests: header X-Bench-Fault, e.g. "stall=0.5" or "500" or "ttft_ms=40,tokens=20".
    Fault kinds:
    """
    from bench.target import AuthConfig, TargetConfig, serve
    from bench.target.faults import FaultShares
    from bench.target.profiles import load_profiles

    if no_auth:
        auth = AuthConfig(mode="none")
    else:
        secret = read_secret("BENCH_JWT_SECRET", jwt_secret_file, what="JWT secret")
        if not secret:
            raise InputError("no JWT secret: set BENCH_JWT_SECRET or pass --jwt-secret-file FILE (or use --no-auth)")
        auth = AuthConfig(mode="jwt", secret=secret)
    FaultShares.parse(faults)  # fail before binding
    load_profiles(profiles_path)
    cfg = TargetConfig(flavor=flavor, content_type=content_type, framing=framing, finish_part=finish_part, auth=auth,
                       profiles_path=profiles_path, seed=seed, faults=faults, max_body_bytes=max_body_bytes)
    serve(cfg, host=host, port=port, truth_file=truth_file)


def _append_fault_help() -> None:
    from bench.target.faults import describe

    target.help = (target.help or "") + "\n\b\n" + describe()


_append_fault_help()


def target_main() -> None:
    """``python -m bench.target``: the same as ``bench target``."""
    main(["target", *sys.argv[1:]], prog_name="bench target")
