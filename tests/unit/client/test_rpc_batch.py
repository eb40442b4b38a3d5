"""RpcClient.batch against a real HTTP server on loopback that answers what each test scripts:
results in request order whatever the answer's order, errors returned per call, and a clear
BadResponse for answers that are not a batch's."""
from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from client.rpc import BadResponse, RpcClient, RpcError

Answer = Callable[[list[dict[str, Any]]], Any]


@pytest.fixture
def server() -> Iterator[Callable[[Answer], RpcClient]]:
    """A client of a server whose answer to each request body is ``answer(request)``."""
    answers: list[Answer] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body = json.dumps(answers[0](request)).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()

    def client(answer: Answer) -> RpcClient:
        answers[:] = [answer]
        return RpcClient(f"http://127.0.0.1:{httpd.server_address[1]}/", "u", "p", timeout=10)

    yield client
    httpd.shutdown()
    httpd.server_close()


def echo_reversed(request: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each call answered with its method's name, the answers in reverse order; "fail" as an error."""
    return [{"jsonrpc": "2.0", "id": call["id"], "error": {"code": -8, "message": "no"}} if call["method"] == "fail"
            else {"jsonrpc": "2.0", "id": call["id"], "result": [call["method"], *call["params"]]}
            for call in reversed(request)]


def test_results_come_in_request_order_with_errors_returned(server) -> None:
    results = server(echo_reversed).batch([("a", 1), ("fail",), ("b",)])
    assert results[0] == ["a", 1] and results[2] == ["b"]
    assert isinstance(results[1], RpcError) and (results[1].code, results[1].message) == (-8, "no")


@pytest.mark.parametrize("answer, reason", [
    (lambda request: {"jsonrpc": "2.0", "id": None, "result": 1}, "not a list"),
    (lambda request: echo_reversed(request)[1:], "lacks some of its calls"),
    (lambda request: [7] * len(request), "not a list of JSON objects"),
    (lambda request: [{"jsonrpc": "2.0", "id": call["id"]} for call in request], "without a result"),
])
def test_malformed_answers_are_refused_clearly(server, answer, reason) -> None:
    with pytest.raises(BadResponse, match=reason):
        server(answer).batch([("a",), ("b",)])


def test_an_empty_batch_sends_nothing(server) -> None:
    assert server(lambda request: pytest.fail("sent")).batch([]) == []
