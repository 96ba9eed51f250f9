"""``bench target`` / ``python -m bench.target``: the reference target's command line."""

from __future__ import annotations

import inspect
import sys

import click

from bench.errors import InputError
from bench.secrets import read_secret


@click.command(context_settings={"max_content_width": 100})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to bind; 0 picks a free one.")
@click.option(
    "--flavor",
    type=click.Choice(["deployed", "documented", "ui-stream"]),
    default="deployed",
    show_default=True,
    help="Behave as the deployed route (text/plain AI SDK 4 data stream), as its public doc (text/event-stream), "
    "or as the app on AI SDK 5 (ui-stream: the UI message stream, with keep-alive comments).",
)
@click.option(
    "--content-type",
    type=click.Choice(["plain", "event-stream"]),
    default=None,
    help="Override the stream's content type (default follows --flavor).",
)
@click.option(
    "--framing",
    type=click.Choice(["aisdk", "sse"]),
    default="aisdk",
    show_default=True,
    help='aisdk: 0:"text" lines; sse: the same parts inside SSE data: events.',
)
@click.option("--finish-part", is_flag=True, help="End each stream with an AI SDK finish part carrying usage.")
@click.option(
    "--profiles",
    "profiles_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML file of model profiles laid over the bundled ones.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for replies, lengths, jitter and faults.")
@click.option(
    "--faults",
    default=None,
    help='Share of requests that get each fault, e.g. "500=0.02,429=0.01:3,stall=0.01:2" (drawn from --seed); a fraction "drop=1/3" is exact: every third request.',
)
@click.option("--no-auth", is_flag=True, help="Accept requests without credentials (quick local use).")
@click.option(
    "--jwt-secret-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="File holding the HS256 secret; else the BENCH_JWT_SECRET environment variable.",
)
@click.option(
    "--truth-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the server's per-request truth here (JSON lines) when it stops.",
)
@click.option(
    "--upstream",
    default=None,
    help="Serve the chat route in front of this OpenAI-compatible model server (another bench target, vLLM): "
    "the route streams what URL/v1/chat/completions streams, as the app calls Hugging Face.",
)
@click.option(
    "--upstream-protocol",
    type=click.Choice(["openai", "tgi"]),
    default="openai",
    show_default=True,
    help="With --upstream: openai (URL/v1/chat/completions) or tgi (Hugging Face's token stream, URL/models/{model}, "
    "re-parted as the app's handler does: R1's thinking as one block, answers at paragraphs). A bench target "
    "serves both.",
)
@click.option(
    "--app-overhead-ms",
    default=0.0,
    show_default=True,
    type=float,
    help="With --upstream: the app's own work before it calls the model (session, persistence, prompt building).",
)
@click.option("--max-body-bytes", default=4 * 1024 * 1024, show_default=True, type=int, help="Larger bodies get 413.")
@click.option(
    "--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None, help="Serve HTTPS: PEM certificate (chain)."
)
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None, help="Serve HTTPS: PEM private key.")
def target(
    host,
    port,
    flavor,
    content_type,
    framing,
    finish_part,
    profiles_path,
    seed,
    faults,
    no_auth,
    jwt_secret_file,
    truth_file,
    max_body_bytes,
    tls_cert,
    tls_key,
    upstream,
    upstream_protocol,
    app_overhead_ms,
) -> None:
    """Serve the reference target: the chat route, exactly, on a simulated inference engine.

    \b
    Routes:
      POST /api/ai/huggingface/{publisher}/{model}/chat?chat_id=N[&is_playground=true]
      POST /v1/chat/completions, GET /v1/models        (OpenAI-compatible, same engine)
      GET  /_bench/truth[?ids=a,b]                       (server-side stamps per X-Request-ID)
      GET  /_bench/health, GET /_bench/stats, DELETE /_bench/truth

    \b
    Per-request faults for tests: header X-Bench-Fault, e.g. "stall=0.5" or "500" or "ttft_ms=40,tokens=20".
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
        # the deployed app reads only its session cookie; the documented route took a bearer JWT
        auth = AuthConfig(mode="jwt", secret=secret, bearer=flavor == "documented")
    FaultShares.parse(faults)  # fail before binding
    load_profiles(profiles_path)
    cfg = TargetConfig(
        flavor=flavor,
        content_type=content_type,
        framing=framing,
        finish_part=finish_part,
        auth=auth,
        profiles_path=profiles_path,
        seed=seed,
        faults=faults,
        max_body_bytes=max_body_bytes,
        upstream=upstream,
        upstream_protocol=upstream_protocol,
        app_overhead_ms=app_overhead_ms,
    )
    if bool(tls_cert) != bool(tls_key):
        raise InputError("--tls-cert and --tls-key go together")
    try:
        serve(cfg, host=host, port=port, truth_file=truth_file, tls=(tls_cert, tls_key) if tls_cert else None)
    except OSError as exc:
        if exc.errno in (98, 48):  # EADDRINUSE (Linux, macOS)
            raise InputError(
                f"--port {port}: already in use on {host} (another target or server?); pick another or --port 0"
            ) from None
        if exc.errno == 13:
            raise InputError(f"--port {port}: permission denied on {host} (ports below 1024 need root)") from None
        raise


def _append_fault_help() -> None:
    from bench.target.faults import describe

    target.help = inspect.cleandoc(target.help or "") + "\n\n\b\nFault kinds:\n" + describe()


_append_fault_help()


def main() -> None:
    """``python -m bench.target``: the same as ``bench target``, one clear line for bad input."""
    try:
        target.main(sys.argv[1:], prog_name="bench target", standalone_mode=False)
    except InputError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
