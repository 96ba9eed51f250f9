"""Capture what the Neptun app's real chat handler sends, as fixtures for tests/test_real_app_bytes.py.

The app's code is not in this repository: give a checkout of neptun-software/neptun.web (its
`server/`, `lib/`, `utils/` are enough). standin.mjs bundles the handler and its guard middleware on
the real packages and serves them; the reference target (`bench target`, TGI mode) is the model
server behind it, on loopback. Each case's status, headers and body bytes, with the time each read
arrived, go to tests/data/real-app/CASE.json.

    python tests/data/real-app/capture.py --app /path/to/neptun.web --work /tmp/standin

``--work`` is a folder for the Node packages; they are installed there once, at the versions below
(the app's package.json ranges at its 2025-06 commit).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
PACKAGES = [
    "h3@1.15.11",
    "@huggingface/inference@3.15.0",
    "zod@3.25.76",
    "esbuild@0.28.2",
    "drizzle-orm@0.39.3",
    "drizzle-zod@0.7.1",
    "remark-parse@11",
    "remark-stringify@11",
    "strip-markdown@6",
    "unified@11",
]
CHAT = "/api/ai/huggingface/{model}/chat"
HELLO = {"messages": [{"role": "user", "content": "How do I read a file in Python?"}]}
CASES = [
    # name, model, query, body, cookie, backend faults, seconds to wait for more bytes
    ("plain-200", "qwen/Qwen2.5-72B-Instruct", "chat_id=-1&is_playground=true", HELLO, True, "", 10),
    ("r1-200", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "chat_id=-1&is_playground=true", HELLO, True, "", 10),
    ("no-session-401", "qwen/Qwen2.5-72B-Instruct", "chat_id=-1&is_playground=true", HELLO, False, "", 5),
    ("no-is-playground-400", "qwen/Qwen2.5-72B-Instruct", "chat_id=-1", HELLO, True, "", 5),
    ("retired-model-400", "mistralai/Mistral-7B-Instruct-v0.2", "chat_id=-1&is_playground=true", HELLO, True, "", 5),
    ("empty-body-400", "qwen/Qwen2.5-72B-Instruct", "chat_id=-1&is_playground=true", {"messages": []}, True, "", 5),
    ("backend-fails-mid-stream", "qwen/Qwen2.5-72B-Instruct", "chat_id=-1&is_playground=true", HELLO, True, "drop=1.0:6", 4),
    ("backend-fails-first", "qwen/Qwen2.5-72B-Instruct", "chat_id=-1&is_playground=true", HELLO, True, "500=1.0", 5),
]


def install(work: Path) -> None:
    if (work / "node_modules" / "h3").is_dir():
        return
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(["npm", "init", "-y"], cwd=work, check=True, capture_output=True)
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", *PACKAGES], cwd=work, check=True)


def capture(client: httpx.Client, base: str, name: str, model: str, query: str, body: dict, cookie: str | None, wait: float):
    url = base + CHAT.format(model=model) + "?" + query
    headers = {"Content-Type": "application/json"} | ({"Cookie": cookie} if cookie else {})
    chunks: list[list] = []
    ended = True
    t0 = time.monotonic()
    with client.stream("POST", url, json=body, headers=headers, timeout=httpx.Timeout(wait, read=wait)) as resp:
        try:
            for data in resp.iter_raw():
                chunks.append([round((time.monotonic() - t0) * 1000, 1), base64.b64encode(data).decode()])
        except httpx.ReadTimeout:
            ended = False  # the response stayed open and silent for `wait` seconds
        keep = {k: v for k, v in resp.headers.items() if k.lower() in ("content-type", "transfer-encoding", "set-cookie")}
        if "set-cookie" in keep:
            keep["set-cookie"] = keep["set-cookie"].split("=", 1)[0] + "=<sealed session>"
        return {
            "case": name,
            "request": {"method": "POST", "path": CHAT.format(model=model) + "?" + query, "body": body, "cookie": bool(cookie)},
            "status": resp.status_code,
            "reason": resp.reason_phrase,
            "headers": keep,
            "chunks": chunks,
            "ended": ended,
            "silent_for_s": None if ended else wait,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--app", required=True, type=Path, help="a checkout of neptun-software/neptun.web")
    ap.add_argument("--work", required=True, type=Path, help="a folder for the Node packages")
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    install(args.work)
    shutil.copy(HERE / "standin.mjs", args.work / "standin.mjs")
    sys.path.insert(0, str(ROOT))
    from bench.target import TargetProcess

    with TargetProcess(["--no-auth", "--profiles", str(ROOT / "tests" / "fast-profiles.yaml"), "--seed", "3"]) as backend:
        env = dict(os.environ, STANDIN_SESSION_PASSWORD=secrets.token_hex(24), STANDIN_WORK=str(args.work))
        port = "18788"
        node = subprocess.Popen(
            ["node", "standin.mjs", str(args.app.resolve()), backend.url, port],
            cwd=args.work,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert node.stdout is not None
            line = node.stdout.readline()
            if "STANDIN READY" not in line:
                raise SystemExit(f"the stand-in did not start: {line!r}")
            base = line.split()[-1]
            with httpx.Client() as client:
                login = client.get(base + "/_standin/login")
                cookie = "neptun-session=" + login.cookies["neptun-session"]
                for name, model, query, body, with_cookie, faults, wait in CASES:
                    httpx.put(backend.url + "/_bench/faults", content=faults, timeout=5).raise_for_status()
                    fixture = capture(client, base, name, model, query, body, cookie if with_cookie else None, wait)
                    fixture["backend_faults"] = faults or None
                    (args.out / f"{name}.json").write_text(json.dumps(fixture, indent=1) + "\n")
                    print(
                        f"{name}: {fixture['status']} {fixture['reason']}, {len(fixture['chunks'])} reads, ended={fixture['ended']}"
                    )
        finally:
            node.terminate()
            node.wait(10)


if __name__ == "__main__":
    main()
