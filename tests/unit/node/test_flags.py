"""One spelling of every RPC flag across pouwd, pouw-miner and pouw-cli (bitcoin-cli's as
aliases), pouwd --help that explains itself, and p2p on loopback by default on dev/regtest."""
from __future__ import annotations

import pytest

from miner import cli as miner_cli
from client import cli
from node.config import build_parser, load_config

RPC_FLAGS = {"--rpc-port": "1234", "--rpc-user": "u", "--rpc-password": "p"}
ALIASES = {"--rpc-port": "--rpcport", "--rpc-user": "--rpcuser", "--rpc-password": "--rpcpassword"}


@pytest.mark.parametrize("spelling", ["canonical", "alias"])
def test_every_program_takes_both_spellings(tmp_path, spelling) -> None:
    flags = [x for flag, value in RPC_FLAGS.items()
             for x in ((flag if spelling == "canonical" else ALIASES[flag]), value)]
    cfg = load_config(["--datadir", str(tmp_path), *flags], {})
    assert (cfg.rpc_port, cfg.rpc_user, cfg.rpc_password) == (1234, "u", "p")
    miner = miner_cli.build_parser().parse_args([*flags, "--address", "x"])
    assert (miner.rpc_port, miner.rpc_user, miner.rpc_password) == (1234, "u", "p")
    opts = cli.build_parser().parse_args([*flags, "getblockcount"])
    assert (opts.rpcport, opts.rpcuser, opts.rpcpassword) == (1234, "u", "p")


def test_rpc_url_spellings() -> None:
    for flag in ("--rpc-url", "--rpcurl"):
        assert cli.build_parser().parse_args([flag, "http://h:1/", "getblockcount"]).rpcurl == "http://h:1/"
    for flag in ("--rpc-url", "--rpcurl", "--rpc"):
        assert miner_cli.build_parser().parse_args([flag, "http://h:1/", "--address", "x"]).rpc == "http://h:1/"


def test_pouwd_help_describes_every_flag() -> None:
    parser = build_parser()
    for action in parser._actions:
        assert action.help, f"{action.option_strings} has no description"
    text = " ".join(parser.format_help().split())
    for default in ("(default main)", "(default ~/.pouw)", "(default 127.0.0.1)", "(default 8)", "(default 64)",
                    "(default info)", "127.0.0.1 on dev and regtest"):
        assert default in text


@pytest.mark.parametrize("network,bind", [("main", "0.0.0.0"), ("test", "0.0.0.0"), ("dev", "127.0.0.1"),
                                          ("regtest", "127.0.0.1")])
def test_p2p_listens_on_loopback_on_dev_and_regtest(tmp_path, network, bind) -> None:
    assert load_config(["--datadir", str(tmp_path), "--network", network], {}).effective_bind == bind
    cfg = load_config(["--datadir", str(tmp_path), "--network", network, "--bind", "::1"], {})
    assert cfg.effective_bind == "::1"
