"""`prosector mcp --http`: the same tools over streamable HTTP, bound to loopback."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import anyio
import pytest

from conftest import REPO, TOTALSEG

from helpers import assert_clean_failure, cli


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def http_server(isolated_home):
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "prosector", "mcp", "--http", "--port", str(port),
                             "--allow", str(TOTALSEG)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 90
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError("MCP HTTP server did not start: " + proc.stdout.read().decode()[-2000:])
            time.sleep(0.3)
    yield f"http://127.0.0.1:{port}/mcp"
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_tools_over_streamable_http(http_server):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def script():
        async with streamable_http_client(http_server) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                init = await session.initialize()
                tools = [t.name for t in (await session.list_tools()).tools]
                found = await session.call_tool("find_structures", {"query": "right kidney"})
                refused = await session.call_tool("measure", {"image": "/etc/hostname", "mask": "/etc/hostname"})
                return init, tools, found, refused

    init, tools, found, refused = anyio.run(script)
    assert "find_structures" in (init.instructions or "") and "never invent" in init.instructions
    assert {"segment", "ask", "draft_report"} <= set(tools)
    assert [c["id"] for c in found.structured_content["concepts"]] == ["kidney_right"]
    assert refused.is_error and "outside the allowed folders" in refused.content[0].text


def test_bad_command_line_is_one_line():
    assert_clean_failure(cli("mcp", "--allow", "/no/such/folder"), "--allow needs an existing folder")
    assert_clean_failure(cli("chat", "--port", "0"), "not a TCP port")
