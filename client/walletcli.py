"""``pouw-cli wallet ...``: the keystore (``client.wallet``) driven over a node's RPC.

The wallet holds keys only; balances, history and fee rates come from the node
(``getaddressbalance``, ``getaddresshistory`` with ``pouwd --addressindex``,
``estimatefee``), so one wallet can follow any node it can reach.
A transfer is paid from one key (an account, PROTOCOL §3): ``send`` picks a key
that holds amount + fee, preferring keys without pending txs, then the smallest
sufficient balance, unless ``--from`` names one.
"""
from __future__ import annotations

import argparse
import getpass
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consensus.keys import PrivateKey, encode_address
from consensus.tx import Transfer, make_tx

from . import hdkeys, wallet
from .cliutil import CliError, format_amount, number_flag, parse_address, parse_amount
from client.rpc import RpcError
from client.rpccodes import RpcCode

if TYPE_CHECKING:
    from .cli import Cli

POLL_INTERVAL = 0.5
SCAN_GAP = 20  # restore --scan stops after this many unused keys in a row
_SIZE_KEY = PrivateKey(bytes(32))  # signs throwaway txs whose size sets the fee (a signature is 64 bytes)


def build_wallet_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pouw-cli wallet", description="The local keystore.")
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="make a wallet with a new seed, encrypted with a password")
    create.add_argument("--words", type=int, choices=sorted(hdkeys.WORD_COUNTS), default=12,
                        help="length of the backup phrase (default 12)")
    restore = sub.add_parser("restore", help="make a wallet from a backup phrase (read from stdin or a prompt)")
    restore.add_argument("--count", type=int, default=1, metavar="N", help="derive N keys (default 1)")
    restore.add_argument("--scan", action="store_true",
                         help=f"ask the node which keys were used; keep up to {SCAN_GAP} unused after the last")
    sub.add_parser("backup", help="show the backup phrase (password needed)")
    sub.add_parser("address", help="show the wallet's first address (no password needed)")
    new = sub.add_parser("new-address", help="derive the next key")
    new.add_argument("--label", default="", help="a label for it")
    label = sub.add_parser("label", help="set the label of one of the wallet's addresses")
    label.add_argument("address")
    label.add_argument("label")
    sub.add_parser("list", help="the wallet's addresses, labels and derivation paths (no password needed)")
    sub.add_parser("balance", help="spendable and immature coins per key and in total, from the node")
    history = sub.add_parser("history", help="the wallet's txs and mined blocks, newest first "
                                             "(needs pouwd --addressindex)")
    history.add_argument("--count", type=int, default=20, help="index entries to show (default 20)")
    history.add_argument("--skip", type=int, default=0, help="index entries to skip (default 0)")
    sub.add_parser("import-dev-faucet", help="add the public dev faucet key (dev/regtest only)")
    send = sub.add_parser("send", help="sign and submit a transfer from one of the wallet's keys")
    send.add_argument("address")
    send.add_argument("amount", help="coins, e.g. 1.5")
    send.add_argument("--fee", help="fee in coins (default: the node's estimatefee rate x the tx size)")
    send.add_argument("--from", dest="sender", metavar="ADDRESS", help="pay from this key")
    send.add_argument("--wait", type=number_flag(0), default=0, metavar="N", help="wait for N confirmations")
    send.add_argument("--timeout", type=number_flag(0, kind=float), default=300.0, metavar="SECONDS",
                      help="give up waiting after this long (default 300)")
    return parser


def read_phrase() -> str:
    """The backup phrase: a hidden prompt on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        return getpass.getpass("backup phrase: ")
    return sys.stdin.readline()


def transfer_fee(feerate: int, nonce: int, to: bytes, amount: int, chain_id: int) -> int:
    """``feerate`` × the encoded size of the transfer paying that fee (the fee's own bytes count)."""
    fee = 0
    for _ in range(4):  # the size grows with the fee's encoding at most a few times
        size = len(make_tx(_SIZE_KEY, chain_id, nonce, fee, Transfer(to, amount)).encode())
        if fee == feerate * size:
            break
        fee = feerate * size
    return fee


class WalletCommands:
    """One ``wallet`` invocation, on the options and RPC client of a ``Cli``."""

    def __init__(self, cli: "Cli") -> None:
        self.cli = cli
        self.network = cli.network
        self.path: Path = wallet.wallet_path(cli.datadir, cli.network)

    @property
    def json(self) -> bool:
        return bool(self.cli.opts.json)

    def run(self, args: list[str]) -> None:
        w = build_wallet_parser().parse_args(args)
        action = w.action.replace("-", "_")
        getattr(self, f"do_{action}")(w)

    def load(self) -> wallet.Keystore:
        return wallet.load(self.path, self.network)

    def unlock(self, keystore: wallet.Keystore) -> wallet.Unlocked:
        return keystore.unlock(wallet.read_password())

    def call(self, method: str, *params: Any) -> Any:
        return self.cli.client.call(method, *params)

    # --- making and restoring ---------------------------------------------------------
    def do_create(self, w: argparse.Namespace) -> None:
        self._refuse_existing()
        keystore = wallet.new_keystore(self.network, wallet.read_password(confirm=True), hdkeys.new_entropy(w.words))
        self._created(keystore, "back up its phrase with 'pouw-cli wallet backup'")

    def do_restore(self, w: argparse.Namespace) -> None:
        self._refuse_existing()
        if not 1 <= w.count <= wallet.MAX_KEYS:
            raise CliError(f"--count must be 1 to {wallet.MAX_KEYS}")
        try:
            entropy = hdkeys.entropy_of(read_phrase())
        except hdkeys.PhraseError as exc:
            raise CliError(str(exc)) from None
        count = max(w.count, self._used_keys(entropy)) if w.scan else w.count
        keystore = wallet.new_keystore(self.network, wallet.read_password(confirm=True), entropy, count)
        self._created(keystore, f"restored {len(keystore.keys)} key(s)")

    def _used_keys(self, entropy: bytes) -> int:
        """1 + the index of the last key the node has seen used (nonce, balance or rewards)."""
        seed, used, start = hdkeys.seed_of(entropy), 0, 0
        while start < used + SCAN_GAP and start < wallet.MAX_KEYS:
            batch = [hdkeys.wallet_key(seed, i).address for i in range(start, start + SCAN_GAP)]
            found = self.call("getaddressbalance", [encode_address(self.network.hrp, a) for a in batch])
            for i, account in enumerate(found["addresses"], start):
                if account["nonce"] or account["balance"] or account["immature_total"]:
                    used = i + 1
            start += SCAN_GAP
        return used

    def do_import_dev_faucet(self, w: argparse.Namespace) -> None:
        key = wallet.faucet_key(self.network)
        if not self.path.exists():
            keystore = wallet.imported_keystore(self.network, wallet.read_password(confirm=True), key, "dev faucet")
            return self._created(keystore, "dev faucet key imported")
        with wallet.locked(self.path):
            keystore = self.unlock(self.load()).with_import(key, "dev faucet")
            wallet.save(self.path, keystore, overwrite=True)
        self.cli.show(keystore.keys[-1].address if not self.json else keystore.keys[-1].to_json())

    def _refuse_existing(self) -> None:
        if self.path.exists():
            raise CliError(f"a wallet already exists at {self.path}; refusing to overwrite it")

    def _created(self, keystore: wallet.Keystore, note: str) -> None:
        wallet.create(self.path, keystore)
        if self.json:
            self.cli.show({"address": keystore.address, "path": str(self.path)})
        else:
            self.cli.note(f"wallet saved to {self.path}; {note}")
            self.cli.show(keystore.address)

    def do_backup(self, w: argparse.Namespace) -> None:
        unlocked = self.unlock(self.load())
        if unlocked.secrets.entropy is None:
            raise CliError("this wallet has no seed yet (imported keys only): 'wallet new-address' makes one")
        imported = len(unlocked.secrets.imported)
        if imported:
            self.cli.note(f"the phrase does not cover the {imported} imported key(s): keep a copy of {self.path}")
        phrase = hdkeys.phrase_of(unlocked.secrets.entropy)
        self.cli.show({"phrase": phrase, "imported_keys": imported} if self.json else phrase)

    # --- keys and labels --------------------------------------------------------------
    def do_address(self, w: argparse.Namespace) -> None:
        self.cli.show(self.load().address)

    def do_new_address(self, w: argparse.Namespace) -> None:
        with wallet.locked(self.path):
            keystore, (info,), made_seed = self.unlock(self.load()).with_new_keys(1, w.label)
            wallet.save(self.path, keystore, overwrite=True)
        if made_seed:
            self.cli.note("this wallet had no seed: made one; back up its phrase with 'pouw-cli wallet backup'")
        self.cli.show({**info.to_json(), "path": info.path} if self.json else info.address)

    def do_label(self, w: argparse.Namespace) -> None:
        with wallet.locked(self.path):
            keystore = self.unlock(self.load()).with_label(w.address, w.label)
            wallet.save(self.path, keystore, overwrite=True)

    def do_list(self, w: argparse.Namespace) -> None:
        keys = self.load().keys
        if self.json:
            return self.cli.show([{**k.to_json(), "path": k.path} for k in keys])
        for k in keys:
            print(f"{k.address}  {k.path or 'imported':<24}  {k.label}".rstrip())

    # --- the node's view --------------------------------------------------------------
    def balances(self, keystore: wallet.Keystore) -> dict[str, Any]:
        found = self.call("getaddressbalance", [k.address for k in keystore.keys])
        for info, account in zip(keystore.keys, found["addresses"]):
            account["label"] = info.label
        return found

    def do_balance(self, w: argparse.Namespace) -> None:
        found = self.balances(self.load())
        if self.json:
            return self.cli.show(found)
        rewards = sum(len(a["immature"]) for a in found["addresses"])
        print(f"balance   {format_amount(found['balance'])} coins ({found['balance']} units)\n"
              f"immature  {format_amount(found['immature'])} coins ({found['immature']} units) "
              f"in {rewards} reward(s)\n"
              f"height    {found['height']}")
        for a in found["addresses"]:
            print(f"  {a['address']}  {format_amount(a['balance']):>20}  immature {format_amount(a['immature_total'])}"
                  f"  nonce {a['nonce']}  {a['label']}".rstrip())

    def do_history(self, w: argparse.Namespace) -> None:
        keystore = self.load()
        rows = self.call("getaddresshistory", [k.address for k in keystore.keys], w.count, w.skip)
        labels = {k.address: k.label for k in keystore.keys}
        for row in rows:
            row["label"] = labels.get(row["address"], "")
        if self.json:
            return self.cli.show(rows)
        for row in rows:
            where = row.get("blockheight") if row["confirmations"] else "mempool"
            print(f"{where!s:>8}  {row['category']:<9}{format_amount(row['amount']):>22}  {row['address']}  "
                  f"{row.get('txid') or row['blockhash']}  {row['label']}".rstrip())

    # --- sending ----------------------------------------------------------------------
    def do_send(self, w: argparse.Namespace) -> None:
        keystore = self.load()
        to = parse_address(w.address, self.network)
        amount = parse_amount(w.amount)
        if amount < 1:
            raise CliError("amount must be at least 0.00000001")
        fixed_fee = None if w.fee is None else parse_amount(w.fee, "fee")
        keys = (keystore.find(w.sender),) if w.sender else keystore.keys
        accounts = self.call("getaddressbalance", [k.address for k in keys])["addresses"]
        feerate = self.call("estimatefee")["feerate"] if fixed_fee is None else 0
        chain_id = self.network.chain_id

        def fee_of(account: dict[str, Any]) -> int:
            return fixed_fee if fixed_fee is not None else transfer_fee(feerate, account["pending_nonce"], to,
                                                                        amount, chain_id)
        able = [a for a in accounts if a["balance"] >= amount + fee_of(a)]
        if not able:
            richest = max(accounts, key=lambda a: a["balance"])
            raise CliError(f"insufficient funds: have {format_amount(richest['balance'])}, need "
                           f"{format_amount(amount + fee_of(richest))} (amount + fee) in one key: "
                           f"a transfer is paid from a single key")
        payer = min(able, key=lambda a: (a["pending_nonce"] != a["nonce"], a["balance"]))
        fee = fee_of(payer)
        key = self.unlock(keystore).signing_key(payer["address"])
        tx = make_tx(key, chain_id, payer["pending_nonce"], fee, Transfer(to, amount))
        txid = self.call("sendrawtransaction", tx.encode().hex())
        if txid != tx.txid.hex():
            raise CliError(f"node returned txid {txid}, expected {tx.txid.hex()}")
        result = {"txid": txid, "from": payer["address"], "to": w.address, "amount": amount,
                  "fee": fee, "nonce": tx.nonce}
        if not self.json:
            print(txid, flush=True)
        if w.wait:
            self.cli.note(f"waiting for {w.wait} confirmation(s)...")
            info = self.wait_for(txid, w.wait, w.timeout)
            result.update(confirmations=info["confirmations"], blockhash=info["blockhash"])
            self.cli.note(f"confirmed: {info['confirmations']} confirmation(s), block {info['blockhash']}")
        if self.json:
            self.cli.show(result)

    def wait_for(self, txid: str, confirmations: int, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                info = self.call("gettransaction", txid)
            except RpcError as exc:
                if exc.code == RpcCode.INVALID_ADDRESS_OR_KEY:  # no such tx
                    raise CliError(f"transaction {txid} is no longer known to the node") from None
                raise
            if info["confirmations"] >= confirmations:
                return info
            if time.monotonic() >= deadline:
                raise CliError(f"timed out after {timeout:g} s waiting for {confirmations} "
                               f"confirmation(s) of {txid} (have {info['confirmations']})")
            time.sleep(POLL_INTERVAL)
