"""``pouw-cli``: call any pouwd RPC method, and a small wallet.

    pouw-cli [--network N] [--datadir D] [--rpc-url URL | --rpc-port P]
             [--rpc-user U --rpc-password P] [--json] <method> [args...]
    pouw-cli ... wallet create | address | balance | import-dev-faucet
    pouw-cli ... wallet send <address> <amount> [--fee F] [--wait N] [--timeout S]

Method arguments are parsed as JSON where they parse (numbers, true/false,
null, objects) and passed as strings otherwise, as bitcoin-cli does; quote a
string that looks like JSON (``'"123"'``). Amounts on the wallet commands are
decimal coins (``1.5``), converted to base units exactly.

The RPC flags are spelled as pouwd's and pouw-miner's (``--rpc-port``); bitcoin-cli's
spellings (``--rpcport``, ``--rpcuser``, ...) are accepted too.

Environment: ``POUW_DATADIR`` (default ``~/.pouw``), ``POUW_WALLET_PASSWORD``
(else the password is prompted for). Without ``--rpc-user`` the node's cookie
``<datadir>/<network>/.cookie`` is used.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

from consensus.errors import AddressError
from consensus.keys import PrivateKey, decode_address
from consensus.params import COIN, NETWORKS, Network
from consensus.tx import Transfer, make_tx

from . import wallet
from miner.rpcclient import RpcClient, RpcClientError, RpcError, cookie_auth

U64_MAX = 2**64 - 1
DEFAULT_FEE = "0.0001"
POLL_INTERVAL = 0.5
NOT_FOUND = -5
_AMOUNT = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 1."""


def default_datadir() -> Path:
    return Path(os.environ.get("POUW_DATADIR") or "~/.pouw").expanduser()


def parse_param(text: str) -> Any:
    """A method argument: its JSON value if it is JSON, else the string itself."""
    def reject(constant: str) -> Any:
        raise ValueError(constant)
    try:
        return json.loads(text, parse_constant=reject)
    except ValueError:
        return text


def parse_amount(text: str, what: str = "amount") -> int:
    """Decimal coins → base units, exactly; at most 8 decimals, never negative."""
    if not _AMOUNT.fullmatch(text):
        raise CliError(f"invalid {what} {text!r}: use a decimal number of coins like 1.5")
    with localcontext() as ctx:
        ctx.prec = len(text) + 10  # room for every digit: the product is exact
        units = Decimal(text) * COIN
    if units != units.to_integral_value():
        raise CliError(f"invalid {what} {text!r}: at most 8 decimal places")
    if units > U64_MAX:
        raise CliError(f"invalid {what} {text!r}: too large")
    return int(units)


def format_amount(units: int) -> str:
    """Base units → coins with 8 decimals."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), COIN)
    return f"{sign}{whole}.{frac:08d}"


def parse_address(text: str, network: Network) -> bytes:
    """A recipient address for ``network``, naming the right network when it is another's."""
    try:
        return decode_address(text, network.hrp)
    except AddressError as exc:
        hrp = text.lower().rpartition("1")[0]
        other = next((n.name for n in NETWORKS.values() if n.hrp == hrp and n is not network), None)
        if other:
            raise CliError(f"{text} is a {other} address; this is {network.name} "
                           f"(addresses here start with '{network.hrp}1')") from None
        raise CliError(f"invalid address {text!r}: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pouw-cli", description="Talk to a pouwd node; manage a wallet.")
    parser.add_argument("--network", choices=sorted(NETWORKS), default="main")
    parser.add_argument("--datadir", type=Path, default=None,
                        help="data directory (default $POUW_DATADIR or ~/.pouw)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--rpc-url", "--rpcurl", dest="rpcurl", metavar="URL",
                       help="node URL (default http://127.0.0.1:<network rpc port>/)")
    where.add_argument("--rpc-port", "--rpcport", dest="rpcport", type=int, metavar="PORT",
                       help="node RPC port on 127.0.0.1")
    parser.add_argument("--rpc-user", "--rpcuser", dest="rpcuser", metavar="USER",
                        help="RPC user (default: the node's cookie file)")
    parser.add_argument("--rpc-password", "--rpcpassword", dest="rpcpassword", metavar="PASSWORD",
                        help="RPC password")
    parser.add_argument("--rpc-client-timeout", "--rpcclienttimeout", dest="rpcclienttimeout", type=float,
                        default=900.0, metavar="SECONDS", help="give up on a call after this long (default 900)")
    parser.add_argument("--json", action="store_true", help="always print JSON")
    parser.add_argument("command", nargs="?", help="an RPC method name ('help' lists them), or 'wallet'")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="method arguments")
    return parser


def build_wallet_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pouw-cli wallet", description="The local keystore.")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("create", help="make a new key, encrypted with a password")
    sub.add_parser("address", help="show the wallet address (no password needed)")
    sub.add_parser("balance", help="balance, immature rewards and nonce from the node")
    sub.add_parser("import-dev-faucet", help="store the public dev faucet key (dev/regtest only)")
    send = sub.add_parser("send", help="sign and submit a transfer")
    send.add_argument("address")
    send.add_argument("amount", help="coins, e.g. 1.5")
    send.add_argument("--fee", default=DEFAULT_FEE, help=f"fee in coins (default {DEFAULT_FEE})")
    send.add_argument("--wait", type=int, default=0, metavar="N", help="wait for N confirmations")
    send.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                      help="give up waiting after this long (default 300)")
    return parser


class Cli:
    """One invocation: resolved options, a lazily made RPC client, output."""

    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.network = NETWORKS[opts.network]
        self.datadir: Path = opts.datadir.expanduser() if opts.datadir else default_datadir()
        self._client: RpcClient | None = None

    @property
    def client(self) -> RpcClient:
        if self._client is None:
            o = self.opts
            url = o.rpcurl or f"http://127.0.0.1:{o.rpcport or self.network.rpc_port}/"
            if (o.rpcuser is None) != (o.rpcpassword is None):
                raise CliError("--rpc-user and --rpc-password go together")
            user, password = ((o.rpcuser, o.rpcpassword) if o.rpcuser is not None
                              else cookie_auth(self.datadir, self.network.name))
            try:
                self._client = RpcClient(url, user, password, o.rpcclienttimeout)
            except ValueError as exc:
                raise CliError(str(exc)) from None
        return self._client

    def show(self, value: Any) -> None:
        if isinstance(value, str) and not self.opts.json:
            print(value)
        elif value is not None or self.opts.json:
            print(json.dumps(value, indent=2))

    def note(self, text: str) -> None:
        """Human progress on stderr, kept out of the result on stdout."""
        print(text, file=sys.stderr, flush=True)

    def run(self) -> None:
        if self.opts.command == "wallet":
            self.wallet(build_wallet_parser().parse_args(self.opts.args))
        else:
            self.show(self.client.call(self.opts.command, *map(parse_param, self.opts.args)))

    # wallet commands

    @property
    def wallet_path(self) -> Path:
        return wallet.wallet_path(self.datadir, self.network)

    def wallet(self, w: argparse.Namespace) -> None:
        if w.action == "create":
            self.store_key(PrivateKey.generate())
        elif w.action == "import-dev-faucet":
            self.store_key(wallet.faucet_key(self.network))
        elif w.action == "address":
            self.show(wallet.load(self.wallet_path, self.network).address)
        elif w.action == "balance":
            self.balance()
        else:
            self.send(w.address, w.amount, w.fee, w.wait, w.timeout)

    def store_key(self, key: PrivateKey) -> None:
        path = self.wallet_path
        if path.exists():
            raise CliError(f"a wallet already exists at {path}; refusing to overwrite it")
        keystore = wallet.create(path, key, self.network, wallet.read_password(confirm=True))
        if self.opts.json:
            self.show({"address": keystore.address, "path": str(path)})
        else:
            self.note(f"wallet saved to {path}")
            self.show(keystore.address)

    def balance(self) -> None:
        address = wallet.load(self.wallet_path, self.network).address
        account = self.client.call("getaccount", address)
        if self.opts.json:
            self.show(account)
            return
        immature = sum(int(entry["amount"]) for entry in account.get("immature", []))
        print(f"address   {account['address']}\n"
              f"balance   {format_amount(account['balance'])} coins ({account['balance']} units)\n"
              f"immature  {format_amount(immature)} coins ({immature} units) "
              f"in {len(account.get('immature', []))} reward(s)\n"
              f"nonce     {account['nonce']} (next {account['pending_nonce']})")

    def send(self, to_text: str, amount_text: str, fee_text: str, wait: int, timeout: float) -> None:
        keystore = wallet.load(self.wallet_path, self.network)
        to = parse_address(to_text, self.network)
        amount, fee = parse_amount(amount_text), parse_amount(fee_text, "fee")
        if amount < 1:
            raise CliError("amount must be at least 0.00000001")
        if wait < 0:
            raise CliError("--wait must be 0 or more")
        account = self.client.call("getaccount", keystore.address)
        need = amount + fee
        if account["balance"] < need:
            raise CliError(f"insufficient funds: have {format_amount(account['balance'])}, "
                           f"need {format_amount(need)} (amount + fee)")
        key = keystore.unlock(wallet.read_password())
        tx = make_tx(key, self.network.chain_id, account["pending_nonce"], fee, Transfer(to, amount))
        txid = self.client.call("sendrawtransaction", tx.encode().hex())
        if txid != tx.txid.hex():
            raise CliError(f"node returned txid {txid}, expected {tx.txid.hex()}")
        result = {"txid": txid, "from": keystore.address, "to": to_text, "amount": amount,
                  "fee": fee, "nonce": tx.nonce}
        if not self.opts.json:
            print(txid, flush=True)
        if wait:
            self.note(f"waiting for {wait} confirmation(s)...")
            info = self.wait_for(txid, wait, timeout)
            result.update(confirmations=info["confirmations"], blockhash=info["blockhash"])
            self.note(f"confirmed: {info['confirmations']} confirmation(s), block {info['blockhash']}")
        if self.opts.json:
            self.show(result)

    def wait_for(self, txid: str, confirmations: int, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                info = self.client.call("gettransaction", txid)
            except RpcError as exc:
                if exc.code == NOT_FOUND:
                    raise CliError(f"transaction {txid} is no longer known to the node") from None
                raise
            if info["confirmations"] >= confirmations:
                return info
            if time.monotonic() >= deadline:
                raise CliError(f"timed out after {timeout:g} s waiting for {confirmations} "
                               f"confirmation(s) of {txid} (have {info['confirmations']})")
            time.sleep(POLL_INTERVAL)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    opts = parser.parse_args(argv)
    if opts.command is None:
        parser.print_usage(sys.stderr)
        print("pouw-cli: give an RPC method ('pouw-cli help' lists them) or 'wallet' "
              "('pouw-cli wallet --help')", file=sys.stderr)
        return 2
    try:
        Cli(opts).run()
    except (CliError, RpcClientError, wallet.WalletError) as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
