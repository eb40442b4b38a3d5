"""node.rpcserver: Dispatcher parameter binding and JSON-RPC envelopes, and Auth."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
from typing import Any

import pytest

from client.rpccodes import RpcCode
from node.rpcserver import COOKIE_USER, MAX_BATCH, Auth, Dispatcher, Param, RpcError


def run(coro) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def d() -> Dispatcher:
    disp = Dispatcher()

    def echo(a: int, b: str, c: bool) -> list:
        """echo a b ( c ): return the arguments."""
        return [a, b, c]

    async def slow(x: int | bool) -> Any:
        await asyncio.sleep(0)
        return x

    def boom() -> None:
        raise ZeroDivisionError

    def fail() -> None:
        raise RpcError(RpcCode.INVALID_ADDRESS_OR_KEY, "nope")

    def opt(x: Any) -> Any:
        return x

    disp.add("echo", echo, Param("a", int), Param("b", str, "dflt"), Param("c", bool, False))
    disp.add("slow", slow, Param("x", (int, bool)))
    disp.add("boom", boom)
    disp.add("fail", fail)
    disp.add("opt", opt, Param("x", int, None))
    disp.add("obj", opt, Param("x", dict))
    disp.add("lst", opt, Param("x", list, None))
    return disp


def call(d: Dispatcher, name: str, params: Any) -> Any:
    return run(d.call(name, params))


def code_of(d: Dispatcher, name: str, params: Any) -> int:
    with pytest.raises(RpcError) as info:
        call(d, name, params)
    return info.value.code


# --- binding -------------------------------------------------------------------------------

def test_positional_and_defaults(d) -> None:
    assert call(d, "echo", [1]) == [1, "dflt", False]
    assert call(d, "echo", [1, "x"]) == [1, "x", False]
    assert call(d, "echo", [1, "x", True]) == [1, "x", True]


def test_named(d) -> None:
    assert call(d, "echo", {"a": 2}) == [2, "dflt", False]
    assert call(d, "echo", {"c": True, "a": 3}) == [3, "dflt", True]
    assert call(d, "echo", {"a": 3, "b": "y"}) == [3, "y", False]


def test_missing_required(d) -> None:
    for params in ([], None, {}, {"b": "x"}):
        with pytest.raises(RpcError) as info:
            call(d, "echo", params)
        assert info.value.code == RpcCode.INVALID_PARAMS and "'a'" in info.value.message


def test_too_many_and_unknown(d) -> None:
    with pytest.raises(RpcError) as info:
        call(d, "echo", [1, "x", True, 4])
    assert info.value.code == RpcCode.INVALID_PARAMS and "at most 3" in info.value.message
    with pytest.raises(RpcError) as info:
        call(d, "echo", {"a": 1, "zz": 2})
    assert info.value.code == RpcCode.INVALID_PARAMS and "zz" in info.value.message
    assert code_of(d, "boom", [1]) == RpcCode.INVALID_PARAMS


def test_types(d) -> None:
    assert code_of(d, "echo", [True]) == RpcCode.INVALID_PARAMS  # bool is an int in Python, not here
    assert code_of(d, "echo", [False]) == RpcCode.INVALID_PARAMS
    assert code_of(d, "echo", [1.0]) == RpcCode.INVALID_PARAMS
    assert code_of(d, "echo", ["1"]) == RpcCode.INVALID_PARAMS
    assert code_of(d, "echo", [1, 2]) == RpcCode.INVALID_PARAMS
    assert code_of(d, "echo", [1, "x", 1]) == RpcCode.INVALID_PARAMS  # int is not a bool either
    assert code_of(d, "echo", [None]) == RpcCode.INVALID_PARAMS
    assert code_of(d, "obj", [[]]) == RpcCode.INVALID_PARAMS
    assert call(d, "obj", [{"k": 1}]) == {"k": 1}
    assert call(d, "lst", [[1]]) == [1]
    # a declared (int, bool) accepts both
    assert call(d, "slow", [True]) is True and call(d, "slow", [7]) == 7
    # an explicit null for an optional parameter whose default is None is the default
    assert call(d, "opt", [None]) is None and call(d, "opt", [5]) == 5
    assert code_of(d, "opt", ["5"]) == RpcCode.INVALID_PARAMS
    # a large integer that is not the cached default object is still type-checked as an int
    assert call(d, "echo", [10**30]) == [10**30, "dflt", False]


def test_params_must_be_array_or_object(d) -> None:
    for raw in (5, "x", True):
        assert code_of(d, "echo", raw) == RpcCode.INVALID_REQUEST


def test_unknown_method(d) -> None:
    assert code_of(d, "nope", []) == RpcCode.METHOD_NOT_FOUND


def test_codes_go_on_the_wire_as_bare_numbers(d) -> None:
    """``RpcCode`` is an IntEnum: the JSON a client reads has Bitcoin Core's number."""
    assert '"code": -32601,' in json.dumps(run(d.handle({"jsonrpc": "2.0", "id": 1, "method": "nope"})))
    assert '"code": -5,' in json.dumps(run(d.handle({"jsonrpc": "2.0", "id": 1, "method": "fail"})))


def test_help_line_is_the_docstring_first_line(d) -> None:
    assert d.methods["echo"].help == "echo a b ( c ): return the arguments."
    assert d.methods["boom"].help == ""
    assert [p.required for p in d.methods["echo"].params] == [True, False, False]


# --- envelopes -------------------------------------------------------------------------------

def test_handle_one(d) -> None:
    assert run(d.handle({"jsonrpc": "2.0", "id": 9, "method": "echo", "params": [1]})) == \
        {"jsonrpc": "2.0", "result": [1, "dflt", False], "id": 9}
    assert run(d.handle({"jsonrpc": "2.0", "id": "s", "method": "slow", "params": {"x": 4}}))["result"] == 4
    err = run(d.handle({"jsonrpc": "2.0", "id": 1, "method": "fail"}))
    assert err == {"jsonrpc": "2.0", "error": {"code": -5, "message": "nope"}, "id": 1}
    err = run(d.handle({"jsonrpc": "2.0", "id": 2, "method": "boom"}))
    assert err["error"] == {"code": RpcCode.INTERNAL_ERROR, "message": "internal error"} and err["id"] == 2
    for bad in (5, None, "x", {"id": 1}, {"id": 1, "method": None}, {"id": 1, "method": ["echo"]}):
        assert run(d.handle(bad))["error"]["code"] == RpcCode.INVALID_REQUEST, bad


def test_notifications(d) -> None:
    assert run(d.handle({"jsonrpc": "2.0", "method": "echo", "params": [1]})) is None
    assert run(d.handle({"jsonrpc": "2.0", "method": "nope"})) is None  # errors are not reported either
    # without "jsonrpc": "2.0" a request without id is a JSON-RPC 1.0 call and gets an answer
    assert run(d.handle({"method": "echo", "params": [1]}))["result"] == [1, "dflt", False]
    # "id": null is a request, not a notification
    assert run(d.handle({"jsonrpc": "2.0", "id": None, "method": "echo", "params": [1]}))["id"] is None


def test_batches(d) -> None:
    reply = run(d.handle([
        {"jsonrpc": "2.0", "id": 1, "method": "echo", "params": [1]},
        {"jsonrpc": "2.0", "method": "echo", "params": [2]},
        {"jsonrpc": "2.0", "id": 3, "method": "nope"},
        42,
    ]))
    assert [r["id"] for r in reply] == [1, 3, None]
    assert reply[0]["result"] == [1, "dflt", False] and reply[1]["error"]["code"] == RpcCode.METHOD_NOT_FOUND
    assert reply[2]["error"]["code"] == RpcCode.INVALID_REQUEST
    assert run(d.handle([]))["error"]["code"] == RpcCode.INVALID_REQUEST
    assert run(d.handle([{"jsonrpc": "2.0", "method": "echo", "params": [1]}])) is None
    big = [{"jsonrpc": "2.0", "id": i, "method": "echo", "params": [i]} for i in range(MAX_BATCH)]
    assert len(run(d.handle(big))) == MAX_BATCH
    assert run(d.handle(big + big[:1]))["error"]["code"] == RpcCode.INVALID_REQUEST


# --- auth ------------------------------------------------------------------------------------

def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_cookie_auth(tmp_path) -> None:
    auth = Auth(tmp_path / ".cookie")
    auth.write_cookie()
    text = (tmp_path / ".cookie").read_text()
    user, _, secret = text.partition(":")
    assert user == COOKIE_USER and len(secret) == 64 and secret == auth.cookie_secret
    assert stat.S_IMODE(os.stat(tmp_path / ".cookie").st_mode) == 0o600
    assert auth.check(header(user, secret))
    assert not auth.check(header(user, secret[:-1] + ("0" if secret[-1] != "0" else "1")))
    assert not auth.check(header(user, ""))
    assert not auth.check(None) and not auth.check("") and not auth.check("Basic") and not auth.check("Basic !!")
    assert not auth.check("Bearer " + secret)
    assert not auth.check("basic " + header(user, secret)[6:])
    # no configured user: any other user name fails, even with the cookie's secret or empty
    assert not auth.check(header("", "")) and not auth.check(header("alice", secret))
    assert not Auth(tmp_path / ".other").check(header(user, secret))  # another node's cookie


def test_user_password_auth(tmp_path) -> None:
    auth = Auth(tmp_path / ".cookie", "alice", "pa:ss")
    assert auth.check(header("alice", "pa:ss"))  # the password may contain colons
    assert not auth.check(header("alice", "pa"))
    assert not auth.check(header("Alice", "pa:ss"))
    assert not auth.check(header("alice", "pa:ss "))
    assert auth.check(header(COOKIE_USER, auth.cookie_secret))
    assert not auth.check(header(COOKIE_USER, "pa:ss"))
    # non-UTF-8 and non-ASCII credentials are refused, not an exception
    assert not auth.check("Basic " + base64.b64encode(b"alice:\xff").decode())
    assert not auth.check(header("älice", "pa:ss")) and not auth.check(header("alice", "pä:ss"))
    assert not auth.check(header(COOKIE_USER, "é" * 64))
    assert Auth(tmp_path / ".c", "jürgen", "pässwort").check(header("jürgen", "pässwort"))


def test_remove_cookie_only_removes_its_own(tmp_path) -> None:
    first, second = Auth(tmp_path / ".cookie"), Auth(tmp_path / ".cookie")
    first.write_cookie()
    second.write_cookie()  # e.g. a newer node took over the datadir
    first.remove_cookie()
    assert (tmp_path / ".cookie").exists()
    second.remove_cookie()
    assert not (tmp_path / ".cookie").exists()
    second.remove_cookie()  # already gone: no error
