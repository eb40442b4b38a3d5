"""``pouw-cli``: call any pouwd RPC method, and a wallet (``client.walletcli``).

    pouw-cli [--network N] [--datadir D] [--rpc-url URL | --rpc-port P]
             [--cookie PATH | --rpc-user U --rpc-password P] [--json] <method> [args...]
    pouw-cli ... wallet <command> [args...]     (pouw-cli wallet --help lists them)
    pouw-cli ... job <command> [args...]        (post, status, list, result, watch: pouw-cli job --help)

Method arguments are parsed as JSON where they parse (numbers, true/false,
null, objects) and passed as strings otherwise, as bitcoin-cli does; quote a
string that looks like JSON (``'"123"'``). Amounts on the wallet commands are
decimal coins (``1.5``), converted to base units exactly.

The RPC flags are spelled as pouwd's and pouw-miner's (``--rpc-port``); bitcoin-cli's
spellings (``--rpcport``, ``--rpcuser``, ...) are accepted too.

Environment: ``POUW_DATADIR`` (default ``~/.pouw``), ``POUW_WALLET_PASSWORD``
(else the password is prompted for). Without ``--rpc-user`` the node's cookie is
read from ``--cookie`` (the file, or the node's datadir), else from
``<datadir>/<network>/.cookie``, else from the default datadir's: a wallet kept in
its own datadir finds a node running in the default one.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from consensus.params import NETWORKS

from . import wallet
from .cliutil import CliError, number_flag
from .market import MarketClientError
from client.rpc import COOKIE_NAME, RpcClient, RpcClientError, cookie_path, read_cookie


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pouw-cli", description="Talk to a pouwd node; manage a wallet.")
    parser.add_argument("--network", choices=sorted(NETWORKS), default="main")
    parser.add_argument("--datadir", type=Path, default=None,
                        help="data directory (default $POUW_DATADIR or ~/.pouw)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--rpc-url", "--rpcurl", "--rpc", dest="rpcurl", metavar="URL",
                       help="node URL (default http://127.0.0.1:<network rpc port>/)")
    where.add_argument("--rpc-port", "--rpcport", dest="rpcport", type=number_flag(1, 65535), metavar="PORT",
                       help="node RPC port on 127.0.0.1")
    parser.add_argument("--cookie", type=Path, metavar="PATH",
                        help="the node's cookie file, or the node's datadir (default: see below)")
    parser.add_argument("--rpc-user", "--rpcuser", dest="rpcuser", metavar="USER",
                        help="RPC user (default: the node's cookie file)")
    parser.add_argument("--rpc-password", "--rpcpassword", dest="rpcpassword", metavar="PASSWORD",
                        help="RPC password")
    parser.add_argument("--rpc-client-timeout", "--rpcclienttimeout", dest="rpcclienttimeout",
                        type=number_flag(1, kind=float),
                        default=900.0, metavar="SECONDS", help="give up on a call after this long (default 900)")
    parser.add_argument("--json", action="store_true", help="always print JSON")
    parser.add_argument("command", nargs="?", help="an RPC method name ('help' lists them), 'wallet' or 'job'")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="method arguments")
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
            user, password = self.credentials()
            try:
                self._client = RpcClient(url, user, password, o.rpcclienttimeout)
            except ValueError as exc:
                raise CliError(str(exc)) from None
        return self._client

    def credentials(self) -> tuple[str, str]:
        """``--rpcuser``/``--rpcpassword``, else the cookie (``--cookie``, else the datadirs)."""
        o = self.opts
        if (o.rpcuser is None) != (o.rpcpassword is None):
            raise CliError("--rpc-user and --rpc-password go together")
        if o.rpcuser is not None:
            if o.cookie is not None:
                raise CliError("--cookie or --rpcuser/--rpcpassword, not both")
            return o.rpcuser, o.rpcpassword
        network = self.network.name
        if o.cookie is not None:
            path = o.cookie.expanduser()
            if path.is_dir():
                path = cookie_path(path, network) if cookie_path(path, network).exists() else path / COOKIE_NAME
            return read_cookie(path)
        tried = list(dict.fromkeys([cookie_path(self.datadir, network), cookie_path(default_datadir(), network)]))
        for path in tried:
            if path.exists():
                return read_cookie(path)
        raise CliError(f"no cookie file at {' or '.join(map(str, tried))}: is pouwd running with this --datadir "
                       f"and --network? (or pass --cookie PATH, or --rpc-user and --rpc-password)")

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
            from .walletcli import WalletCommands  # walletcli builds on this module's helpers
            WalletCommands(self).run(self.opts.args)
        elif self.opts.command == "job":
            from .jobcli import JobCommands
            JobCommands(self).run(self.opts.args)
        else:
            self.show(self.client.call(self.opts.command, *map(parse_param, self.opts.args)))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    opts = parser.parse_args(argv)
    if opts.command is None:
        parser.print_usage(sys.stderr)
        print("pouw-cli: give an RPC method ('pouw-cli help' lists them), 'wallet' ('pouw-cli wallet --help') "
              "or 'job' ('pouw-cli job --help')", file=sys.stderr)
        return 2
    try:
        Cli(opts).run()
    except (CliError, RpcClientError, wallet.WalletError, MarketClientError) as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
