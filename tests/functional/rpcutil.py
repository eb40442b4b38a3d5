"""Raw HTTP helpers for functional tests that need to see what a JSON-RPC client hides:
status codes, batches, notifications, malformed bodies, REST and metrics."""
from __future__ import annotations

import base64
import http.client
import json
from pathlib import Path
from typing import Any

from consensus.genesis import dev_faucet_key
from consensus.keys import PrivateKey, encode_address
from consensus.params import REGTEST
from consensus.tx import Transfer, Tx, make_tx

FAUCET = dev_faucet_key()
FAUCET_ADDRESS = encode_address(REGTEST.hrp, FAUCET.address)
FEE = 1000  # comfortably above the 1 unit/byte relay minimum for a transfer


def cookie(node) -> tuple[str, str]:
    user, _, password = (Path(node.datadir) / node.network / ".cookie").read_text().strip().partition(":")
    return user, password


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def request(node, method: str, path: str, body: bytes | None = None, auth: tuple[str, str] | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, bytes, http.client.HTTPResponse]:
    """One HTTP request to the node's RPC port; returns (status, body, response)."""
    conn = http.client.HTTPConnection("127.0.0.1", node.rpc_port, timeout=60)
    try:
        hdrs = dict(headers or {})
        if auth is not None:
            hdrs["Authorization"] = basic(*auth)
        if body is not None:
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body, hdrs)
        response = conn.getresponse()
        return response.status, response.read(), response
    finally:
        conn.close()


def post(node, payload: Any, auth: tuple[str, str] | None | str = "cookie") -> tuple[int, Any]:
    """POST a JSON-RPC payload (any JSON value, or raw bytes) with the cookie unless told otherwise."""
    creds = cookie(node) if auth == "cookie" else auth
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    status, data, _ = request(node, "POST", "/", body, creds)  # type: ignore[arg-type]
    try:
        return status, json.loads(data) if data else None
    except ValueError:
        return status, data


def rpc_error(node, method: str, *params: Any) -> dict[str, Any]:
    """Call a method that must fail; returns the JSON-RPC error object."""
    status, reply = post(node, {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    assert status == 200, (status, reply)
    assert reply.get("error") is not None, f"{method}{params} unexpectedly returned {reply.get('result')!r}"
    return reply["error"]


def get(node, path: str) -> tuple[int, bytes, http.client.HTTPResponse]:
    return request(node, "GET", path)


def transfer(key: PrivateKey, nonce: int, to: bytes, amount: int, fee: int = FEE) -> Tx:
    return make_tx(key, REGTEST.chain_id, nonce, fee, Transfer(to, amount))


def key(i: int) -> PrivateKey:
    return PrivateKey(i.to_bytes(32, "big"))


def address(k: PrivateKey) -> str:
    return encode_address(REGTEST.hrp, k.address)
