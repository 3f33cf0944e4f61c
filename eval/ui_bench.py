"""Seconds from question to answer: in the chat app (real Chromium) with cached masks, and over MCP.

    python eval/ui_bench.py [--repeats 5] [--no-browser]

Scan: ../shared/data/totalsegmentator/example_ct_sm.nii.gz with its example_seg_fast/ segmentation
(the precomputed engine), so the figures measure Prosector's own overhead, not a model.
Figures printed: median and range over the repeats, after one warm-up request that fills the cache.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import anyio

REPO = Path(__file__).resolve().parents[1]
TOTALSEG = REPO.parent / "shared" / "data" / "totalsegmentator"
CT = TOTALSEG / "example_ct_sm.nii.gz"
SEG = TOTALSEG / "example_seg_fast"
QUESTIONS = ["how big is the liver?", "how big is the spleen?", "what is the volume of the left kidney?"]


def summary(name: str, seconds: list[float]) -> None:
    print(f"{name:55s} median {statistics.median(seconds):7.3f} s   "
          f"min {min(seconds):7.3f}  max {max(seconds):7.3f}  (n={len(seconds)})", flush=True)


def bench_chat_session(repeats: int) -> None:
    """The chat's own path (ChatSession.ask: agent + viewer update), no browser, masks cached."""
    from prosector.ui.chat_session import ChatSession
    from prosector.ui.paths import AllowedFolders

    chat = ChatSession(AllowedFolders([TOTALSEG]))
    started = time.perf_counter()
    chat.load(scan_path=str(CT), seg_path=str(SEG))
    print(f"{'chat: load scan + segmentation':55s} {time.perf_counter() - started:7.3f} s", flush=True)
    for q in QUESTIONS:   # warm-up: each structure segmented (imported) once
        chat.ask(q)
    times = []
    for n in range(repeats):
        started = time.perf_counter()
        reply = chat.ask(QUESTIONS[n % len(QUESTIONS)])
        chat.downloads()
        times.append(time.perf_counter() - started)
        assert reply.error is None, reply.error
    summary("chat logic: question -> answer + downloads (cached)", times)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_browser(repeats: int) -> None:
    """Enter pressed in headless Chromium -> the answer's text in the chat panel, masks cached."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen([sys.executable, "-m", "prosector", "chat", "--port", str(port), "--allow", str(TOTALSEG)],
                              cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        started = time.perf_counter()
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.perf_counter() - started > 180:
                    raise SystemExit("the chat app did not start")
                time.sleep(0.3)
        print(f"{'chat app: start until it serves':55s} {time.perf_counter() - started:7.3f} s", flush=True)
        with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
            context = p.chromium.launch_persistent_context(
                profile, executable_path="/usr/bin/chromium", headless=True,
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync"])
            page = context.new_page()
            page.goto(url)
            page.wait_for_selector("#question textarea")
            page.fill("#scan-path textarea", str(CT))
            page.fill("#seg-path textarea", str(SEG))
            page.click("#load-button")
            page.wait_for_function("document.querySelector('#load-status').innerText.includes('Loaded')",
                                   timeout=300_000)
            times = []
            for n in range(len(QUESTIONS) + repeats):
                before = page.locator("#chat").inner_text().count("mL")
                page.fill("#question textarea", QUESTIONS[n % len(QUESTIONS)])
                started = time.perf_counter()
                page.press("#question textarea", "Enter")
                page.wait_for_function(f"document.querySelector('#chat').innerText.split('mL').length - 1 > {before}",
                                       timeout=300_000)
                elapsed = time.perf_counter() - started
                if n >= len(QUESTIONS):          # the first round fills the mask cache
                    times.append(elapsed)
                page.wait_for_selector("#downloads a", timeout=60_000)
            context.close()
        summary("chat in Chromium: Enter -> answer shown (cached masks)", times)
    finally:
        server.terminate()
        server.wait(timeout=30)


def bench_mcp(repeats: int) -> None:
    """The official MCP client over stdio: round trips for a lookup, a segment and a question."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    async def run() -> None:
        params = StdioServerParameters(command=sys.executable, args=["-m", "prosector", "mcp", "--allow", str(TOTALSEG)],
                                       cwd=str(REPO), env={**os.environ, "PYTHONPATH": str(REPO)})
        started = time.perf_counter()
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                print(f"{'mcp: start + initialize':55s} {time.perf_counter() - started:7.3f} s", flush=True)
                args = {"image": str(CT), "segmentation": str(SEG)}
                for tool, extra in (("find_structures", None), ("segment", {"structures": "liver"}),
                                    ("ask", {"question": "how big is the liver?"})):
                    call = {"query": "L adrenal"} if extra is None else {**args, **extra}
                    first = time.perf_counter()
                    result = await session.call_tool(tool, call)
                    first = time.perf_counter() - first
                    assert not result.is_error, result.content
                    times = []
                    for _ in range(repeats):
                        t = time.perf_counter()
                        await session.call_tool(tool, call)
                        times.append(time.perf_counter() - t)
                    print(f"{'mcp ' + tool + ': first call':55s} {first:7.3f} s", flush=True)
                    summary(f"mcp {tool}: round trip (repeated)", times)

    anyio.run(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium measurement")
    args = parser.parse_args()
    os.environ.setdefault("PROSECTOR_HOME", tempfile.mkdtemp(prefix="prosector-bench-"))
    print(f"machine: {os.cpu_count()} CPU cores; PROSECTOR_HOME={os.environ['PROSECTOR_HOME']}", flush=True)
    bench_chat_session(args.repeats)
    if not args.no_browser:
        bench_browser(args.repeats)
    bench_mcp(args.repeats)


if __name__ == "__main__":
    main()
