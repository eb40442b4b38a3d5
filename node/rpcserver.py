"""JSON-RPC 2.0 dispatch with typed parameters, and HTTP Basic auth (cookie or user/password).

Errors carry a ``client.rpccodes.RpcCode``: Bitcoin Core's codes where one exists,
so that familiar tooling reads them.
"""
from __future__ import annotations

import base64
import hmac
import inspect
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from client.rpccodes import RpcCode
from consensus.errors import AddressError
from consensus.keys import decode_address

from .store import StoreError

log = logging.getLogger("pouw.rpc")

MAX_BATCH = 1000
COOKIE_USER = "__cookie__"


class RpcError(Exception):
    def __init__(self, code: RpcCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_address(text: str, hrp: str) -> bytes:
    """The 20 bytes of a bech32m address with the network's ``hrp``, or -5."""
    try:
        return decode_address(text, hrp)
    except AddressError as exc:
        raise RpcError(RpcCode.INVALID_ADDRESS_OR_KEY, f"Invalid address: {exc}") from None


def parse_hash(text: str, what: str = "hash") -> bytes:
    """32 bytes given as 64 hex characters (a block hash, txid, job id, matrix key), or -8."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise RpcError(RpcCode.INVALID_PARAMETER, f"{what} must be 64 hex characters")
    return raw


@dataclass(frozen=True)
class Param:
    """One declared parameter: name, accepted Python type(s), and a default (``REQUIRED`` if none)."""

    name: str
    kind: type | tuple[type, ...]
    default: Any = ...

    @property
    def required(self) -> bool:
        return self.default is ...


Handler = Callable[..., Awaitable[Any] | Any]


@dataclass(frozen=True)
class Method:
    name: str
    handler: Handler
    params: tuple[Param, ...]
    help: str


class Dispatcher:
    """A table of methods; ``handle(payload)`` answers one request or a batch."""

    def __init__(self) -> None:
        self.methods: dict[str, Method] = {}

    def add(self, name: str, handler: Handler, *params: Param) -> None:
        doc = inspect.getdoc(handler) or ""
        self.methods[name] = Method(name, handler, params, doc.split("\n")[0])

    def _bind(self, method: Method, raw: Any) -> list[Any]:
        if raw is None:
            raw = []
        if isinstance(raw, dict):
            unknown = set(raw) - {p.name for p in method.params}
            if unknown:
                raise RpcError(RpcCode.INVALID_PARAMS, f"unknown parameter(s) {', '.join(sorted(unknown))}")
            values = [raw.get(p.name, p.default) for p in method.params]
        elif isinstance(raw, list):
            if len(raw) > len(method.params):
                raise RpcError(RpcCode.INVALID_PARAMS, f"{method.name} takes at most {len(method.params)} parameter(s)")
            values = raw + [p.default for p in method.params[len(raw):]]
        else:
            raise RpcError(RpcCode.INVALID_REQUEST, "params must be an array or an object")
        for p, v in zip(method.params, values):
            if v is ...:
                raise RpcError(RpcCode.INVALID_PARAMS, f"missing required parameter '{p.name}'")
            if v is p.default:
                continue
            kinds = p.kind if isinstance(p.kind, tuple) else (p.kind,)
            if isinstance(v, bool) and bool not in kinds:
                raise RpcError(RpcCode.INVALID_PARAMS, f"parameter '{p.name}' must be {_kind_name(kinds)}")
            if not isinstance(v, kinds):
                raise RpcError(RpcCode.INVALID_PARAMS, f"parameter '{p.name}' must be {_kind_name(kinds)}")
        return values

    async def call(self, name: str, raw_params: Any) -> Any:
        method = self.methods.get(name)
        if method is None:
            raise RpcError(RpcCode.METHOD_NOT_FOUND, f"method not found: {name}")
        result = method.handler(*self._bind(method, raw_params))
        if inspect.isawaitable(result):
            result = await result
        return result

    async def handle_one(self, request: Any) -> dict[str, Any] | None:
        req_id = request.get("id") if isinstance(request, dict) else None
        try:
            if not isinstance(request, dict) or not isinstance(request.get("method"), str):
                raise RpcError(RpcCode.INVALID_REQUEST, "invalid request: expected an object with a string 'method'")
            result = await self.call(request["method"], request.get("params"))
            response: dict[str, Any] = {"jsonrpc": "2.0", "result": result, "id": req_id}
        except RpcError as exc:
            response = {"jsonrpc": "2.0", "error": {"code": exc.code, "message": exc.message}, "id": req_id}
        except StoreError as exc:  # e.g. a full disk: the node keeps serving reads
            log.error("%s", exc)
            response = {"jsonrpc": "2.0", "error": {"code": RpcCode.DATABASE_ERROR, "message": str(exc)},
                        "id": req_id}
        except Exception:  # a bug must not take the server down; log it and answer
            log.exception("internal error in RPC %r", request.get("method") if isinstance(request, dict) else None)
            response = {"jsonrpc": "2.0", "error": {"code": RpcCode.INTERNAL_ERROR, "message": "internal error"},
                        "id": req_id}
        if isinstance(request, dict) and "id" not in request and request.get("jsonrpc") == "2.0":
            return None  # a JSON-RPC 2.0 notification gets no answer
        return response

    async def handle(self, payload: Any) -> Any:
        """The answer to a request or batch; None when nothing is to be sent (notifications only)."""
        if isinstance(payload, list):
            if not payload:
                return {"jsonrpc": "2.0", "error": {"code": RpcCode.INVALID_REQUEST, "message": "empty batch"},
                        "id": None}
            if len(payload) > MAX_BATCH:
                return {"jsonrpc": "2.0", "error": {"code": RpcCode.INVALID_REQUEST,
                                                    "message": f"batch larger than {MAX_BATCH}"}, "id": None}
            answers = [a for a in [await self.handle_one(r) for r in payload] if a is not None]
            return answers or None  # JSON-RPC 2.0 §6: a batch of notifications gets no answer at all
        return await self.handle_one(payload)


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {int: "an integer", str: "a string", bool: "a boolean", list: "an array", dict: "an object",
             float: "a number"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


class Auth:
    """HTTP Basic credentials: the cookie (``__cookie__:<hex>``) and optionally a configured user."""

    def __init__(self, cookie_path: Path, user: str = "", password: str = "") -> None:
        self.cookie_path = cookie_path
        self.cookie_secret = secrets.token_hex(32)
        self.user, self.password = user, password

    def write_cookie(self) -> None:
        """Write the cookie file readable by its owner only (like bitcoind's .cookie)."""
        tmp = self.cookie_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{COOKIE_USER}:{self.cookie_secret}")
        os.replace(tmp, self.cookie_path)

    def remove_cookie(self) -> None:
        try:
            if self.cookie_path.read_text() == f"{COOKIE_USER}:{self.cookie_secret}":
                self.cookie_path.unlink()
        except OSError:
            pass

    def check(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        # compare as bytes: hmac.compare_digest raises TypeError on non-ASCII str
        if user == COOKIE_USER:
            return hmac.compare_digest(password.encode(), self.cookie_secret.encode())
        return (bool(self.user) and hmac.compare_digest(user.encode(), self.user.encode())
                and hmac.compare_digest(password.encode(), self.password.encode()))
