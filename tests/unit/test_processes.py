"""The worker harness asks the worker it started, on the port that worker serves."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import orjson
import pytest

from streams.settings import Settings
from streams.tools.processes import WorkerProcess, free_port, free_ports


class _Sql(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        query = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))["query"]
        body = orjson.dumps(
            {"columns": ["port", "query"], "rows": [[self.server.server_port, query]]}
        )
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def sql_server() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Sql)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    server.server_close()


def test_a_worker_started_on_another_port_is_queried_there(sql_server: int, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, web_port=free_port())  # nothing listens there
    worker = WorkerProcess(settings, overrides={"POKAZY_WEB_PORT": str(sql_server)})
    assert worker.web_port == sql_server
    assert worker.query("SELECT 1") == [[sql_server, "SELECT 1"]]


def test_free_ports_are_all_different() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20
