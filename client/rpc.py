"""A small synchronous JSON-RPC 2.0 client for pouwd (stdlib http.client, no event loop).

Authentication is HTTP Basic, with either configured credentials or the cookie
file the daemon writes at ``<datadir>/<network>/.cookie`` (``__cookie__:<hex>``),
the way bitcoin-cli finds bitcoind's.
"""
from __future__ import annotations

import base64
import http.client
import itertools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

COOKIE_NAME = ".cookie"
T = TypeVar("T")


class RpcClientError(Exception):
    """Base class: anything that stops a call from returning a result."""


class NodeUnreachable(RpcClientError):
    """No HTTP answer from the node (refused, reset, timed out, DNS)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"cannot reach the node at {url}: {reason} (is pouwd running?)")


class AuthFailed(RpcClientError):
    """The node answered 401/403: wrong user/password or stale cookie."""

    def __init__(self, url: str, status: int) -> None:
        self.url = url
        self.status = status
        super().__init__(f"authentication failed at {url} (HTTP {status}): "
                         "check --rpc-user/--rpc-password or the node's cookie file")


class BadResponse(RpcClientError):
    """The node answered, but not with a JSON-RPC reply."""


class RpcError(RpcClientError):
    """A JSON-RPC error object from the node: ``code`` is one of ``client.rpccodes.RpcCode``."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"error {code}: {message}")


class CookieError(RpcClientError):
    """No usable cookie file."""


def cookie_path(datadir: str | Path, network: str) -> Path:
    return Path(datadir) / network / COOKIE_NAME


def cookie_auth(datadir: str | Path, network: str) -> tuple[str, str]:
    """``(user, password)`` from the daemon's cookie file, like bitcoin-cli."""
    return read_cookie(cookie_path(datadir, network))


def read_cookie(path: Path) -> tuple[str, str]:
    """``(user, password)`` from a cookie file (``user:password``)."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise CookieError(f"no cookie file at {path}: is pouwd running with this --datadir and "
                          "--network? (or pass --rpc-user and --rpc-password)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CookieError(f"cannot read cookie file {path}: {exc}") from None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise CookieError(f"malformed cookie file {path}: expected 'user:password'")
    return user, password


class RpcClient:
    """``call(method, *params)`` returns the result or raises an ``RpcClientError``."""

    def __init__(self, url: str, user: str | None = None, password: str | None = None,
                 timeout: float = 900.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"RPC URL must be http(s)://host[:port]/..., got {url!r}")
        self.url = url
        self.timeout = timeout
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path or "/"
        self._headers = {"Content-Type": "application/json"}
        if user is not None and password is not None:
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        self._ids = itertools.count(1)

    def call(self, method: str, *params: Any) -> Any:
        request_id = next(self._ids)
        status, reply = self._exchange({"jsonrpc": "2.0", "id": request_id, "method": method,
                                        "params": list(params)})
        if not isinstance(reply, dict):
            raise BadResponse(f"HTTP {status} from {self.url}: reply is not a JSON object")
        result = self._result(status, reply)
        if isinstance(result, RpcError):
            raise result
        return result

    def batch(self, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Several calls ``(method, *params)`` in one JSON-RPC 2.0 batch (one request, one
        answer): each call's result in order, or the ``RpcError`` the node answered it with
        (returned, not raised, so that one failing call does not hide the others' results)."""
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        status, reply = self._exchange([{"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}
                                        for request_id, (method, *params) in zip(ids, calls)])
        if not isinstance(reply, list) or not all(isinstance(r, dict) for r in reply):
            raise BadResponse(f"HTTP {status} from {self.url}: reply to a batch is not a list of JSON objects")
        by_id = {r.get("id"): r for r in reply}
        if any(request_id not in by_id for request_id in ids):
            raise BadResponse(f"HTTP {status} from {self.url}: reply to a batch lacks some of its calls")
        return [self._result(status, by_id[request_id]) for request_id in ids]

    def _exchange(self, request: Any) -> tuple[int, Any]:
        """POST a JSON-RPC request (or batch); the HTTP status and the parsed JSON reply."""
        status, data = self._post(json.dumps(request).encode())
        if status in (401, 403):
            raise AuthFailed(self.url, status)
        try:
            return status, json.loads(data)
        except ValueError:
            raise BadResponse(f"HTTP {status} from {self.url} is not JSON-RPC: {data[:200]!r}") from None

    def _result(self, status: int, reply: dict[str, Any]) -> Any:
        """One reply object's result, or its error as an ``RpcError`` (returned)."""
        error = reply.get("error")
        if error is not None:
            if not isinstance(error, dict):
                raise BadResponse(f"malformed error object from {self.url}: {error!r}")
            return RpcError(int(error.get("code", 0)), str(error.get("message", "")))
        if status != 200 or "result" not in reply:
            raise BadResponse(f"HTTP {status} from {self.url} without a result")
        return reply["result"]

    def _post(self, body: bytes) -> tuple[int, bytes]:
        return self._request("POST", self._path, body, self._headers)

    def http(self, method: str, path: str, body: bytes | Sequence[bytes | memoryview] | None = None) -> bytes:
        """A plain authenticated HTTP request to another route of the node (``/matrix/…``), its
        body bytes or parts sent one after another; the body of a 200 answer, else
        ``BadResponse`` with the node's reason."""
        return self._plain(method, path, body)

    def download(self, path: str, read: Callable[[http.client.HTTPResponse], T]) -> T:
        """``GET path`` (a binary route such as ``/matrix/<key>.npy``) with ``read`` consuming
        the 200 answer's body from the socket, so a large body goes straight where ``read``
        puts it instead of being held as bytes first; a ``ValueError`` of ``read`` (a malformed
        body) becomes ``BadResponse``. Other answers raise as ``http`` does."""
        def answer(response: http.client.HTTPResponse) -> tuple[int, Any]:
            if response.status != 200:
                return response.status, response.read()
            try:
                return 200, read(response)
            except ValueError as exc:
                raise BadResponse(f"malformed body from GET {path}: {exc}") from None

        return self._plain("GET", path, None, answer)

    def _plain(self, method: str, path: str, body: bytes | Sequence[bytes | memoryview] | None,
               answer: Callable[[http.client.HTTPResponse], tuple[int, Any]] | None = None) -> Any:
        """``http`` and ``download``: the request with only the credentials of JSON-RPC, and the
        200 answer's body (as ``answer`` reads it); ``AuthFailed`` or ``BadResponse`` else."""
        headers = {k: v for k, v in self._headers.items() if k == "Authorization"}
        headers["Content-Type"] = "application/octet-stream"
        if body is not None and not isinstance(body, bytes):
            headers["Content-Length"] = str(sum(memoryview(part).nbytes for part in body))
        status, data = self._request(method, path, body, headers, answer)
        if status in (401, 403):
            raise AuthFailed(self.url, status)
        if status != 200:
            reason = data.decode("utf-8", "replace").strip()[:500]
            raise BadResponse(f"HTTP {status} from {method} {path}: {reason}")
        return data

    def _request(self, method: str, path: str, body: bytes | Sequence[bytes | memoryview] | None,
                 headers: dict[str, str],
                 answer: Callable[[http.client.HTTPResponse], tuple[int, Any]] | None = None) -> tuple[int, Any]:
        """The answer's status and body (``answer`` reads them from the response if given)."""
        cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=self.timeout)
        try:
            conn.request(method, path, body, headers)
            response = conn.getresponse()
            return answer(response) if answer is not None else (response.status, response.read())
        except TimeoutError:
            raise NodeUnreachable(self.url, f"no answer within {self.timeout:g} s") from None
        except (OSError, http.client.HTTPException) as exc:
            raise NodeUnreachable(self.url, str(exc) or type(exc).__name__) from None
        finally:
            conn.close()
