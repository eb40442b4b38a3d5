"""pouw-cli: argument handling in-process, and ``python -m client.cli`` as a subprocess
against a small real aiohttp JSON-RPC server that checks the signed txs it gets."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from consensus.errors import DecodeError
from consensus.genesis import dev_faucet_key
from consensus.keys import PrivateKey, decode_address, encode_address
from consensus.params import COIN, DEV_FAUCET_ALLOC, MAIN, REGTEST
from consensus.tx import TRANSFER, Transfer, Tx, make_tx
from client import cli, cliutil, hdkeys, jobcli, wallet, walletcli
from client.rpc import CookieError, RpcClient, cookie_auth
from client.wallet import ScryptParams

ROOT = Path(__file__).resolve().parents[3]
USER, PASSWORD = "alice", "s3cret"
MIN_FEE = 1000
PASSWORD_ENV = {wallet.PASSWORD_ENV: "pw"}
FAST = ScryptParams(n=2**4)  # cheap scrypt for wallets the tests make; files record their cost


# --- in-process: parsing and conversion -----------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("5", 5), ("-3", -3), ("1.5", 1.5), ("true", True), ("false", False), ("null", None),
    ('{"a": [1, 2]}', {"a": [1, 2]}), ("[1]", [1]), ('"123"', "123"),
    ("abc", "abc"), ("00ff", "00ff"), ("rpw1xyz", "rpw1xyz"), ("NaN", "NaN"), ("", ""),
])
def test_parse_param(text, value):
    assert cli.parse_param(text) == value and type(cli.parse_param(text)) is type(value)


@pytest.mark.parametrize("text, units", [
    ("1.5", 150_000_000), ("0.00000001", 1), ("10", 10 * COIN), (".5", COIN // 2), ("5.", 5 * COIN),
    ("0", 0), ("1.500000000", 150_000_000), ("0.1", 10_000_000),
    ("184467440737.09551615", 2**64 - 1),
])
def test_parse_amount_exact(text, units):
    assert cliutil.parse_amount(text) == units


@pytest.mark.parametrize("text, why", [
    ("0.000000001", "8 decimal"), ("1.000000000000000000000000000001", "8 decimal"),
    ("-1", "decimal number"), ("1e3", "decimal number"), ("NaN", "decimal number"),
    ("", "decimal number"), (".", "decimal number"), ("1.2.3", "decimal number"), (" 1", "decimal number"),
    ("١", "decimal number"), ("184467440737.09551616", "too large"),
])
def test_parse_amount_rejects(text, why):
    with pytest.raises(cliutil.CliError, match=why):
        cliutil.parse_amount(text)


def test_format_amount():
    assert cliutil.format_amount(150_000_000) == "1.50000000"
    assert cliutil.format_amount(1) == "0.00000001"
    assert cliutil.format_amount(0) == "0.00000000"


def test_parse_address_names_the_other_network():
    raw = bytes(range(20))
    assert cliutil.parse_address(encode_address(REGTEST.hrp, raw), REGTEST) == raw
    with pytest.raises(cliutil.CliError, match="is a main address; this is regtest"):
        cliutil.parse_address(encode_address(MAIN.hrp, raw), REGTEST)
    with pytest.raises(cliutil.CliError, match="invalid address"):
        cliutil.parse_address("rpw1notanaddress", REGTEST)


def test_argument_parsing():
    opts = cli.build_parser().parse_args(
        ["--network", "dev", "--rpcport", "1234", "--json", "getblock", "abcd", "1", "--verbose"])
    assert (opts.network, opts.rpcport, opts.json, opts.command) == ("dev", 1234, True, "getblock")
    assert opts.args == ["abcd", "1", "--verbose"]  # everything after the method is its arguments
    opts = cli.build_parser().parse_args(["--rpc", "http://h:1/", "--cookie", "/n/.cookie", "getblockcount"])
    assert (opts.rpcurl, opts.cookie) == ("http://h:1/", Path("/n/.cookie"))
    w = walletcli.build_wallet_parser().parse_args(["send", "rpw1x", "1.5", "--fee", "0.01", "--wait", "2"])
    assert (w.action, w.address, w.amount, w.fee, w.wait, w.timeout) == ("send", "rpw1x", "1.5", "0.01", 2, 300.0)
    w = walletcli.build_wallet_parser().parse_args(["send", "rpw1x", "1", "--from", "rpw1y"])
    assert (w.fee, w.sender) == (None, "rpw1y")
    w = walletcli.build_wallet_parser().parse_args(["new-address", "--label", "rent"])
    assert (w.action, w.label) == ("new-address", "rent")
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--rpcurl", "http://x/", "--rpcport", "1", "getblockcount"])


@pytest.mark.parametrize("parser, args, flag, why", [
    (cli.build_parser, ["--rpc-port", "0", "getblockcount"], "--rpc-port/--rpcport", "0 is not in 1..65535"),
    (cli.build_parser, ["--rpc-port", "70000", "getblockcount"], "--rpc-port/--rpcport", "70000 is not in 1..65535"),
    (cli.build_parser, ["--rpc-client-timeout", "0", "getblockcount"], "--rpc-client-timeout/--rpcclienttimeout",
     "0 is not at least 1"),
    (walletcli.build_wallet_parser, ["send", "rpw1x", "1", "--wait", "-1"], "--wait", "-1 is not at least 0"),
    (walletcli.build_wallet_parser, ["send", "rpw1x", "1", "--timeout", "inf"], "--timeout", "inf is not at least 0"),
    (jobcli.build_job_parser, ["post", "a", "b", "--reward", "1", "--expiry", str(2**32 + 1)], "--expiry",
     f"{2**32 + 1} is not in 1..{2**32}"),
    (jobcli.build_job_parser, ["post", "a", "b", "--reward", "1", "--expiry", "1.5"], "--expiry",
     "'1.5' is not an integer"),
    (jobcli.build_job_parser, ["result", "j", "-o", "c", "--timeout", "-1"], "--timeout", "-1 is not at least 0"),
    (jobcli.build_job_parser, ["watch", "--interval", "0"], "--interval", "0 is not at least 0.1"),
    (jobcli.build_job_parser, ["matmul", "a", "b", "--reward", "1", "-o", "c", "--reposts", "x"], "--reposts",
     "'x' is not an integer"),
])
def test_a_bad_number_is_refused_with_its_flag(parser, args, flag, why, capsys):
    """Before: a negative --interval ended ``job watch`` in a traceback, a nan --timeout waited
    forever, and --expiry beyond a u64 height failed while encoding the post."""
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(args)
    assert exit_.value.code == 2 and f"argument {flag}: {why}" in capsys.readouterr().err


def test_good_numbers_parse():
    j = jobcli.build_job_parser().parse_args(["watch", "--interval", "0.5"])
    assert j.interval == 0.5
    j = jobcli.build_job_parser().parse_args(["post", "a", "b", "--reward", "1", "--expiry", str(2**32)])
    assert j.expiry == 2**32
    assert cli.build_parser().parse_args(["--rpc-port", "65535", "getblockcount"]).rpcport == 65535


def test_transfer_fee_counts_its_own_bytes():
    to = bytes(20)
    fee = walletcli.transfer_fee(300, 5, to, COIN, REGTEST.chain_id)
    tx = make_tx(PrivateKey.generate(), REGTEST.chain_id, 5, fee, Transfer(to, COIN))
    assert fee == 300 * len(tx.encode())
    assert walletcli.transfer_fee(0, 5, to, COIN, REGTEST.chain_id) == 0


def test_default_datadir(monkeypatch, tmp_path):
    monkeypatch.setenv("POUW_DATADIR", str(tmp_path))
    assert cli.default_datadir() == tmp_path
    monkeypatch.delenv("POUW_DATADIR")
    assert cli.default_datadir() == Path.home() / ".pouw"


def test_cookie_auth(tmp_path):
    with pytest.raises(CookieError, match="no cookie file"):
        cookie_auth(tmp_path, "dev")
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / ".cookie").write_text("__cookie__:00ff11\n")
    assert cookie_auth(tmp_path, "dev") == ("__cookie__", "00ff11")
    (tmp_path / "dev" / ".cookie").write_text("garbage")
    with pytest.raises(CookieError, match="malformed"):
        cookie_auth(tmp_path, "dev")


def test_rpcclient_rejects_bad_url():
    with pytest.raises(ValueError):
        RpcClient("ftp://example")


# --- a real HTTP JSON-RPC server ------------------------------------------------------

class RpcFault(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class FakeNode:
    """Just enough of pouwd's RPC for the wallet, checking txs with the consensus code."""

    port: int = 0
    mining: bool = True
    feerate: int = 10
    address_index: bool = True
    accounts: dict[bytes, list[int]] = field(default_factory=dict)  # address → [balance, nonce]
    immature: dict[bytes, list[dict[str, int]]] = field(default_factory=dict)
    txs: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, list[Any]]] = field(default_factory=list)

    def account(self, address: bytes) -> list[int]:
        return self.accounts.setdefault(address, [0, 0])

    def rpc_echo(self, *params: Any) -> Any:
        return list(params)

    def rpc_getblockcount(self) -> int:
        return 7

    def rpc_getbestblockhash(self) -> str:
        return "ab" * 32

    def rpc_getaccount(self, address: str) -> dict[str, Any]:
        try:
            raw = decode_address(address, REGTEST.hrp)
        except ValueError as exc:
            raise RpcFault(-5, f"invalid address: {exc}") from None
        balance, nonce = self.account(raw)
        immature = self.immature.get(raw, [])
        return {"address": address, "balance": balance, "nonce": nonce, "pending_nonce": nonce,
                "immature": immature, "immature_total": sum(i["amount"] for i in immature)}

    def rpc_getaddressbalance(self, addresses: list[str]) -> dict[str, Any]:
        accounts = [self.rpc_getaccount(a) for a in addresses]
        return {"balance": sum(a["balance"] for a in accounts), "immature": sum(a["immature_total"] for a in accounts),
                "height": 7, "addresses": accounts}

    def rpc_estimatefee(self) -> dict[str, Any]:
        return {"feerate": self.feerate, "min_relay_feerate": 1, "blocks": 6, "txs": 0}

    def rpc_getaddresshistory(self, addresses: list[str], count: int, skip: int) -> list[dict[str, Any]]:
        if not self.address_index:
            raise RpcFault(-1, "address history needs the address index: restart pouwd with --addressindex")
        rows = [{"address": a, "category": "receive", "amount": 5, "txid": "ef" * 32, "confirmations": 2,
                 "blockheight": 6, "blockhash": "cd" * 32} for a in addresses if self.account(
                     decode_address(a, REGTEST.hrp))[0]]
        return rows[skip:skip + count]

    def rpc_sendrawtransaction(self, hex_tx: str) -> str:
        try:
            tx = Tx.decode(bytes.fromhex(hex_tx))
        except (ValueError, DecodeError) as exc:
            raise RpcFault(-22, f"TX decode failed: {exc}") from None
        sender = self.account(tx.sender_address)
        if tx.chain_id != REGTEST.chain_id:
            raise RpcFault(-26, "wrong-chain")
        if not tx.signature_valid():
            raise RpcFault(-26, "bad-signature")
        if tx.kind != TRANSFER:
            raise RpcFault(-26, "unexpected kind")
        if tx.nonce != sender[1]:
            raise RpcFault(-26, "bad-nonce")
        if tx.fee < MIN_FEE:
            raise RpcFault(-26, "min-relay-fee-not-met")
        if sender[0] < tx.fee + tx.payload.amount:
            raise RpcFault(-26, "insufficient-funds")
        sender[0] -= tx.fee + tx.payload.amount
        sender[1] += 1
        self.account(tx.payload.to)[0] += tx.payload.amount
        self.txs[tx.txid.hex()] = {"tx": tx, "confirmations": 0}
        return tx.txid.hex()

    def rpc_gettransaction(self, txid: str) -> dict[str, Any]:
        if txid not in self.txs:
            raise RpcFault(-5, "No such mempool or blockchain transaction")
        entry = self.txs[txid]
        if self.mining:
            entry["confirmations"] += 1  # one block per poll
        confirmed = entry["confirmations"] > 0
        return {"txid": txid, "hex": entry["tx"].encode().hex(), "confirmations": entry["confirmations"],
                "blockhash": "cd" * 32 if confirmed else None}

    async def handle(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="jsonrpc"'})
        body = await request.json()
        method, params = body["method"], body["params"]
        self.calls.append((method, params))
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": body["id"]}
        handler = getattr(self, f"rpc_{method}", None)
        try:
            if handler is None:
                raise RpcFault(-32601, "Method not found")
            reply["result"] = handler(*params)
        except RpcFault as fault:
            reply["error"] = {"code": fault.code, "message": fault.message}
        except TypeError as exc:
            reply["error"] = {"code": -32602, "message": str(exc)}
        return web.json_response(reply)


@pytest.fixture
def node():
    """A FakeNode served over HTTP on 127.0.0.1 from a background thread's event loop."""
    fake = FakeNode()
    fake.account(dev_faucet_key().address)[0] = DEV_FAUCET_ALLOC
    fake.immature[dev_faucet_key().address] = [{"height": 3, "amount": 50 * COIN}, {"height": 4, "amount": 25 * COIN}]
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/", fake.handle)
    runner = web.AppRunner(app)

    async def start() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner.addresses[0][1]

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    fake.port = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    yield fake
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


@dataclass
class Result:
    code: int
    out: str
    err: str


def pouw_cli(datadir: Path, *args: str, port: int | None = None, auth: bool = True,
             env: dict[str, str] | None = None, network: str = "regtest", stdin: str | None = None) -> Result:
    """Run ``python -m client.cli --network N --datadir D [--rpcport P --rpcuser U --rpcpassword P] ARGS``."""
    argv = [sys.executable, "-m", "client.cli", "--network", network, "--datadir", str(datadir)]
    if port is not None:
        argv += ["--rpcport", str(port)]
    if auth:
        argv += ["--rpcuser", USER, "--rpcpassword", PASSWORD]
    base = {k: v for k, v in os.environ.items() if k not in (wallet.PASSWORD_ENV, "POUW_DATADIR")}
    proc = subprocess.run(argv + list(args), capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**base, "PYTHONPATH": str(ROOT), **(env or {})}, input=stdin or "")
    return Result(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.code == 1, result
    assert result.out == ""
    assert "Traceback" not in result.err and result.err.count("\n") == 1, result.err
    for fragment in fragments:
        assert fragment in result.err


def faucet_wallet(datadir: Path) -> str:
    """The dev faucet key in a cheap-scrypt wallet (password "pw") under ``datadir``."""
    path = wallet.wallet_path(datadir, REGTEST)
    return wallet.create(path, wallet.imported_keystore(REGTEST, "pw", dev_faucet_key(), "", FAST)).address


def test_rpc_method_with_typed_args(node, tmp_path):
    r = pouw_cli(tmp_path, "echo", "5", "true", '{"a":1}', "abc", "null", port=node.port)
    assert r.code == 0, r.err
    assert json.loads(r.out) == [5, True, {"a": 1}, "abc", None]
    assert node.calls[-1] == ("echo", [5, True, {"a": 1}, "abc", None])


def test_output_strings_plain_else_json(node, tmp_path):
    r = pouw_cli(tmp_path, "getbestblockhash", port=node.port)
    assert (r.code, r.out) == (0, "ab" * 32 + "\n")
    r = pouw_cli(tmp_path, "--json", "getbestblockhash", port=node.port)
    assert (r.code, json.loads(r.out)) == (0, "ab" * 32)
    r = pouw_cli(tmp_path, "getblockcount", port=node.port)
    assert (r.code, r.out) == (0, "7\n")


def test_rpc_error_is_one_line(node, tmp_path):
    assert_one_line_error(pouw_cli(tmp_path, "nosuchmethod", port=node.port), "error -32601: Method not found")


def test_wrong_credentials(node, tmp_path):
    r = pouw_cli(tmp_path, "--rpcuser", USER, "--rpcpassword", "wrong", "getblockcount",
                 port=node.port, auth=False)
    assert_one_line_error(r, "authentication failed", "HTTP 401")


def test_cookie_auth_against_server(node, tmp_path):
    r = pouw_cli(tmp_path, "getblockcount", port=node.port, auth=False)
    assert_one_line_error(r, "no cookie file at", str(tmp_path / "regtest" / ".cookie"), "is pouwd running")
    (tmp_path / "regtest").mkdir()
    (tmp_path / "regtest" / ".cookie").write_text(f"{USER}:{PASSWORD}")
    r = pouw_cli(tmp_path, "getblockcount", port=node.port, auth=False)
    assert (r.code, r.out) == (0, "7\n"), r.err


def test_unreachable_node(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = pouw_cli(tmp_path, "getblockcount", port=port)
    assert_one_line_error(r, f"cannot reach the node at http://127.0.0.1:{port}/", "is pouwd running?")


def test_wallet_create_address_and_no_overwrite(tmp_path):
    r = pouw_cli(tmp_path, "wallet", "create", env=PASSWORD_ENV)  # real (default) scrypt cost
    assert r.code == 0, r.err
    address = r.out.strip()
    decode_address(address, REGTEST.hrp)
    path = tmp_path / "regtest" / "wallet.json"
    assert str(path) in r.err
    assert wallet.load(path, REGTEST).unlock("pw").signing_key(address).address == decode_address(address, REGTEST.hrp)
    r = pouw_cli(tmp_path, "wallet", "address")  # no password needed
    assert (r.code, r.out.strip()) == (0, address)
    assert_one_line_error(pouw_cli(tmp_path, "wallet", "create", env=PASSWORD_ENV), "already exists")


def test_wallet_missing(tmp_path):
    assert_one_line_error(pouw_cli(tmp_path, "wallet", "address"), "no wallet at", "wallet create")


def test_import_dev_faucet(tmp_path):
    r = pouw_cli(tmp_path, "wallet", "import-dev-faucet", env=PASSWORD_ENV)
    assert r.code == 0, r.err
    assert r.out.strip() == encode_address(REGTEST.hrp, dev_faucet_key().address)
    r = pouw_cli(tmp_path, "wallet", "import-dev-faucet", env=PASSWORD_ENV, network="main")
    assert_one_line_error(r, "only on dev and regtest, not on main")
    assert not (tmp_path / "main").exists()


def test_wallet_balance(node, tmp_path):
    address = faucet_wallet(tmp_path)
    r = pouw_cli(tmp_path, "wallet", "balance", port=node.port)
    assert r.code == 0, r.err
    assert f"balance   10000000.00000000 coins ({DEV_FAUCET_ALLOC} units)" in r.out
    assert "immature  75.00000000 coins (7500000000 units) in 2 reward(s)" in r.out
    line = next(line for line in r.out.splitlines() if address in line)
    assert line.split() == [address, "10000000.00000000", "immature", "75.00000000", "nonce", "0"]


def test_send_end_to_end(node, tmp_path):
    faucet_wallet(tmp_path)
    to_key = PrivateKey.generate()
    to = encode_address(REGTEST.hrp, to_key.address)
    r = pouw_cli(tmp_path, "wallet", "send", to, "1.5", "--fee", "0.00001", port=node.port, env=PASSWORD_ENV)
    assert r.code == 0, r.err
    txid = r.out.strip()
    tx = node.txs[txid]["tx"]
    assert tx.signature_valid() and tx.sender == dev_faucet_key().pubkey
    assert (tx.chain_id, tx.nonce, tx.fee) == (REGTEST.chain_id, 0, 1000)
    assert (tx.payload.to, tx.payload.amount) == (to_key.address, 150_000_000)
    assert node.account(to_key.address)[0] == 150_000_000
    # the second send takes the next nonce from the node; --json reports it, --wait polls; without --fee the
    # fee is the node's estimatefee rate times the tx's size
    r = pouw_cli(tmp_path, "--json", "wallet", "send", to, "2", "--wait", "2", port=node.port, env=PASSWORD_ENV)
    assert r.code == 0, r.err
    report = json.loads(r.out)
    sent = node.txs[report["txid"]]["tx"]
    assert report["nonce"] == 1 and report["amount"] == 2 * COIN and report["fee"] == sent.fee
    assert sent.fee == node.feerate * len(sent.encode())
    assert report["confirmations"] == 2 and report["blockhash"] == "cd" * 32
    assert node.account(to_key.address)[0] == 350_000_000
    assert [m for m, _ in node.calls].count("gettransaction") == 2


def test_send_wait_times_out(node, tmp_path):
    faucet_wallet(tmp_path)
    node.mining = False
    to = encode_address(REGTEST.hrp, bytes(20))
    r = pouw_cli(tmp_path, "wallet", "send", to, "1", "--wait", "1", "--timeout", "0.6",
                 port=node.port, env=PASSWORD_ENV)
    assert r.code == 1 and len(r.out.strip()) == 64  # the txid was printed before waiting
    assert "timed out after 0.6 s waiting for 1 confirmation(s)" in r.err and "Traceback" not in r.err


def test_send_insufficient_funds_checked_first(node, tmp_path):
    faucet_wallet(tmp_path)
    node.account(dev_faucet_key().address)[0] = 5 * COIN
    to = encode_address(REGTEST.hrp, bytes(20))
    r = pouw_cli(tmp_path, "wallet", "send", to, "5", "--fee", "0.0001", port=node.port, env=PASSWORD_ENV)
    assert_one_line_error(r, "insufficient funds: have 5.00000000, need 5.00010000")
    assert "sendrawtransaction" not in [m for m, _ in node.calls]


def test_send_rejected_by_node(node, tmp_path):
    faucet_wallet(tmp_path)
    to = encode_address(REGTEST.hrp, bytes(20))
    r = pouw_cli(tmp_path, "wallet", "send", to, "1", "--fee", "0", port=node.port, env=PASSWORD_ENV)
    assert_one_line_error(r, "error -26: min-relay-fee-not-met")


def test_send_to_other_networks_address(node, tmp_path):
    faucet_wallet(tmp_path)
    r = pouw_cli(tmp_path, "wallet", "send", encode_address(MAIN.hrp, bytes(20)), "1",
                 port=node.port, env=PASSWORD_ENV)
    assert_one_line_error(r, "is a main address; this is regtest")
    assert node.calls == []


def test_send_wrong_password(node, tmp_path):
    faucet_wallet(tmp_path)
    r = pouw_cli(tmp_path, "wallet", "send", encode_address(REGTEST.hrp, bytes(20)), "1",
                 port=node.port, env={wallet.PASSWORD_ENV: "nope"})
    assert_one_line_error(r, "wrong wallet password")
    assert "sendrawtransaction" not in [m for m, _ in node.calls]


@pytest.mark.parametrize("amount, why", [("1.000000001", "8 decimal places"), ("-1", "decimal number"),
                                         ("0", "at least 0.00000001")])
def test_send_bad_amount(node, tmp_path, amount, why):
    faucet_wallet(tmp_path)
    r = pouw_cli(tmp_path, "wallet", "send", encode_address(REGTEST.hrp, bytes(20)), amount,
                 port=node.port, env=PASSWORD_ENV)
    assert_one_line_error(r, why)
    assert node.calls == []


# --- several keys ---------------------------------------------------------------------

PHRASE = hdkeys.phrase_of(bytes(range(16)))


def restored_wallet(datadir: Path, count: int) -> list[str]:
    """A cheap-scrypt wallet of ``count`` keys from PHRASE, plus the dev faucet key; its addresses."""
    keystore = wallet.new_keystore(REGTEST, "pw", bytes(range(16)), count, FAST)
    keystore = keystore.unlock("pw").with_import(dev_faucet_key(), "faucet")
    wallet.create(wallet.wallet_path(datadir, REGTEST), keystore)
    return [k.address for k in keystore.keys]


def test_new_address_label_list(tmp_path):
    first = pouw_cli(tmp_path, "wallet", "create", env=PASSWORD_ENV).out.strip()
    r = pouw_cli(tmp_path, "wallet", "new-address", "--label", "rent", env=PASSWORD_ENV)
    assert r.code == 0, r.err
    second = r.out.strip()
    r = pouw_cli(tmp_path, "--json", "wallet", "new-address", env=PASSWORD_ENV)
    third = json.loads(r.out)
    assert third["index"] == 2 and third["path"] == "m/44'/8733'/0'/0'/2'"
    assert pouw_cli(tmp_path, "wallet", "label", first, "savings", env=PASSWORD_ENV).code == 0
    listed = json.loads(pouw_cli(tmp_path, "--json", "wallet", "list").out)  # no password needed
    assert [(k["address"], k["index"], k["label"]) for k in listed] == \
        [(first, 0, "savings"), (second, 1, "rent"), (third["address"], 2, "")]
    text = pouw_cli(tmp_path, "wallet", "list").out.splitlines()
    assert text[1].split() == [second, "m/44'/8733'/0'/0'/1'", "rent"]
    assert_one_line_error(pouw_cli(tmp_path, "wallet", "label", encode_address(REGTEST.hrp, bytes(20)), "x",
                                   env=PASSWORD_ENV), "not an address of this wallet")
    assert_one_line_error(pouw_cli(tmp_path, "wallet", "new-address", env={wallet.PASSWORD_ENV: "no"}),
                          "wrong wallet password")
    assert len(json.loads(pouw_cli(tmp_path, "--json", "wallet", "list").out)) == 3


def test_backup_and_restore(tmp_path, node):
    made = pouw_cli(tmp_path / "a", "wallet", "create", env=PASSWORD_ENV).out.strip()
    pouw_cli(tmp_path / "a", "wallet", "new-address", env=PASSWORD_ENV)
    r = pouw_cli(tmp_path / "a", "wallet", "backup", env=PASSWORD_ENV)
    phrase = r.out.strip()
    assert r.code == 0 and len(phrase.split()) == 12
    assert_one_line_error(pouw_cli(tmp_path / "a", "wallet", "backup", env={wallet.PASSWORD_ENV: "no"}),
                          "wrong wallet password")
    r = pouw_cli(tmp_path / "b", "wallet", "restore", "--count", "2", env=PASSWORD_ENV, stdin=phrase + "\n")
    assert (r.code, r.out.strip()) == (0, made), r.err
    assert [k["address"] for k in json.loads(pouw_cli(tmp_path / "b", "--json", "wallet", "list").out)] == \
        [k["address"] for k in json.loads(pouw_cli(tmp_path / "a", "--json", "wallet", "list").out)]
    assert_one_line_error(pouw_cli(tmp_path / "c", "wallet", "restore", env=PASSWORD_ENV,
                                   stdin="abandon " * 12), "not a valid backup phrase")
    assert not (tmp_path / "c" / "regtest" / "wallet.json").exists()
    # --scan asks the node: key 4 got coins, so keys 0..4 come back
    seed = hdkeys.seed_of(bytes(range(16)))
    node.account(hdkeys.wallet_key(seed, 4).address)[0] = 7
    r = pouw_cli(tmp_path / "d", "--json", "wallet", "restore", "--scan", port=node.port, env=PASSWORD_ENV,
                 stdin=PHRASE)
    assert r.code == 0, r.err
    listed = json.loads(pouw_cli(tmp_path / "d", "--json", "wallet", "list").out)
    assert [k["index"] for k in listed] == [0, 1, 2, 3, 4]
    assert [m for m, _ in node.calls] == ["getaddressbalance"] * 2  # keys 0-19 (key 4 used), then 20-39


def test_send_picks_a_key_that_can_pay(node, tmp_path):
    addresses = restored_wallet(tmp_path, 3)
    small = decode_address(addresses[1], REGTEST.hrp)
    node.account(small)[0] = 3 * COIN
    to = encode_address(REGTEST.hrp, bytes(20))
    r = pouw_cli(tmp_path, "--json", "wallet", "send", to, "2", port=node.port, env=PASSWORD_ENV)
    assert r.code == 0, r.err
    assert json.loads(r.out)["from"] == addresses[1]  # the smallest balance that covers it, not the faucet
    assert node.txs[json.loads(r.out)["txid"]]["tx"].sender_address == small
    r = pouw_cli(tmp_path, "--json", "wallet", "send", to, "2", port=node.port, env=PASSWORD_ENV)
    assert json.loads(r.out)["from"] == addresses[3]  # key 1 has < 2 coins left: the faucet pays
    r = pouw_cli(tmp_path, "wallet", "send", to, "1", "--from", addresses[0], port=node.port, env=PASSWORD_ENV)
    assert_one_line_error(r, "insufficient funds: have 0.00000000", "one key")
    r = pouw_cli(tmp_path, "wallet", "send", to, "20000000", port=node.port, env=PASSWORD_ENV)
    assert_one_line_error(r, "insufficient funds: have 9999997.9999", "need 20000000.0000")


def test_balance_across_keys(node, tmp_path):
    addresses = restored_wallet(tmp_path, 2)
    node.account(decode_address(addresses[0], REGTEST.hrp))[0] = COIN
    found = json.loads(pouw_cli(tmp_path, "--json", "wallet", "balance", port=node.port).out)
    assert found["balance"] == DEV_FAUCET_ALLOC + COIN and found["immature"] == 75 * COIN
    assert [(a["address"], a["label"]) for a in found["addresses"]] == \
        [(addresses[0], ""), (addresses[1], ""), (addresses[2], "faucet")]
    assert node.calls[-1] == ("getaddressbalance", [addresses])


def test_history(node, tmp_path):
    addresses = restored_wallet(tmp_path, 2)
    r = pouw_cli(tmp_path, "--json", "wallet", "history", "--count", "5", port=node.port)
    assert r.code == 0, r.err
    rows = json.loads(r.out)
    assert [(row["address"], row["label"]) for row in rows] == [(addresses[2], "faucet")]
    assert node.calls[-1] == ("getaddresshistory", [addresses, 5, 0])
    text = pouw_cli(tmp_path, "wallet", "history", port=node.port).out
    assert text.split() == ["6", "receive", "0.00000005", addresses[2], "ef" * 32, "faucet"]
    node.address_index = False
    assert_one_line_error(pouw_cli(tmp_path, "wallet", "history", port=node.port), "--addressindex")


def test_cookie_option_and_discovery(node, tmp_path):
    node_dir = tmp_path / "node"
    (node_dir / "regtest").mkdir(parents=True)
    (node_dir / "regtest" / ".cookie").write_text(f"{USER}:{PASSWORD}")
    wallet_dir = tmp_path / "wallet"
    for cookie in (node_dir / "regtest" / ".cookie", node_dir):  # the file, or the node's datadir
        r = pouw_cli(wallet_dir, "--cookie", str(cookie), "getblockcount", port=node.port, auth=False)
        assert (r.code, r.out) == (0, "7\n"), r.err
    r = pouw_cli(wallet_dir, "--rpc", f"http://127.0.0.1:{node.port}/", "getblockcount", auth=False,
                 env={"POUW_DATADIR": str(node_dir)})  # found in the default datadir
    assert (r.code, r.out) == (0, "7\n"), r.err
    r = pouw_cli(wallet_dir, "--cookie", str(tmp_path / "nothing"), "getblockcount", port=node.port, auth=False)
    assert_one_line_error(r, "no cookie file at", str(tmp_path / "nothing"))
    r = pouw_cli(wallet_dir, "--cookie", str(node_dir), "getblockcount", port=node.port)
    assert_one_line_error(r, "--cookie or --rpcuser/--rpcpassword, not both")
