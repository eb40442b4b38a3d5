"""Checker for protocol test-vector files: ``python -m consensus.vectors PATH.json``.

Prints ``ok``/``FAIL`` per case, then ``N passed, M failed``; exits 1 on any
failure and 2 on a malformed file (format: the shared vectors README).
"""
from __future__ import annotations

import json
import sys
from typing import Any, Callable

import numpy as np

from . import work
from .block import Block, Header, Ticket, WorkSpec, tx_root
from .difficulty import asert_target
from .errors import ConsensusError
from .genesis import dev_faucet_key
from .hashing import merkle_root, tagged
from .keys import PrivateKey, encode_address
from .params import BY_CHAIN_ID, NETWORKS
from .tx import Tx
from .validation import check_block

Mismatches = list[str]


def _hex_int(text: str) -> int:
    return int(text, 16)


def _cmp(out: Mismatches, name: str, got: Any, want: Any) -> None:
    if got != want:
        out.append(f"{name}: got {got!r}, expected {want!r}")


def check_tagged(case: dict) -> Mismatches:
    out: Mismatches = []
    _cmp(out, "tagged", tagged(case["tag"], bytes.fromhex(case["data"])).hex(), case["expect"])
    return out


def check_merkle(case: dict) -> Mismatches:
    out: Mismatches = []
    _cmp(out, "root", merkle_root([bytes.fromhex(x) for x in case["leaves"]]).hex(), case["root"])
    return out


def check_asert(case: dict) -> Mismatches:
    got = asert_target(_hex_int(case["anchor_target"]), case["genesis_time"], case["parent_time"],
                       case["parent_height"], case["T"], case["halflife"], _hex_int(case["pow_limit"]))
    out: Mismatches = []
    _cmp(out, "target", got, _hex_int(case["expect"]))
    return out


def check_tx(case: dict) -> Mismatches:
    out: Mismatches = []
    raw = bytes.fromhex(case["tx_hex"])
    tx = Tx.decode(raw)
    key = PrivateKey(bytes.fromhex(case["ed25519_seed"]))
    network = BY_CHAIN_ID[tx.chain_id]
    _cmp(out, "pubkey", key.pubkey.hex(), case["pubkey"])
    _cmp(out, "sender", tx.sender.hex(), case["pubkey"])
    _cmp(out, "address", encode_address(network.hrp, key.address), case["address"])
    _cmp(out, "sighash", tx.sighash.hex(), case["sighash"])
    _cmp(out, "signature", key.sign(tx.sighash).hex(), case["signature"])
    _cmp(out, "signature valid", tx.signature_valid(), True)
    _cmp(out, "txid", tx.txid.hex(), case["txid"])
    _cmp(out, "re-encoding", tx.encode().hex(), case["tx_hex"])
    return out


def _header_from_fields(f: dict) -> Header:
    w = f["work"]
    spec = WorkSpec(w["m"], w["n"], w["k"], w["r"], bytes.fromhex(w["H_A"]), bytes.fromhex(w["H_B"]),
                    bytes.fromhex(w["job_id"]))
    return Header(f["version"], f["chain_id"], f["height"], bytes.fromhex(f["prev_hash"]), f["timestamp"],
                  _hex_int(f["target"]), bytes.fromhex(f["tx_root"]), bytes.fromhex(f["miner"]), f["nonce"],
                  spec, Ticket(0, 0, bytes(32)))


def check_work(case: dict) -> Mismatches:
    out: Mismatches = []
    header = _header_from_fields(case["header_fields"])
    w, e = header.work, case["expect"]
    a = np.frombuffer(bytes.fromhex(case["A_hex"]), dtype=np.int8).reshape(w.m, w.k)
    b = np.frombuffer(bytes.fromhex(case["B_hex"]), dtype=np.int8).reshape(w.k, w.n)
    _cmp(out, "H_A", work.commit_a(a).hex(), e["H_A"])
    _cmp(out, "H_B", work.commit_b(b).hex(), e["H_B"])
    s = work.seeds(header)
    _cmp(out, "sigma", s.sigma.hex(), e["sigma"])
    _cmp(out, "s_B", s.s_b.hex(), e["s_B"])
    _cmp(out, "s_A", s.s_a.hex(), e["s_A"])
    _cmp(out, "E_L_row0", work.el_tile_rows(s.s_a, 0, w.r)[0].tolist(), e["E_L_row0"])
    _cmp(out, "F_R_col0", work.fr_tile_cols(s.s_b, 0, w.r)[:, 0].tolist(), e["F_R_col0"])
    for name, (p, q) in (("E_R_pairs_first8", work.er_pairs(s, w.k, w.r)),
                         ("F_L_pairs_first8", work.fl_pairs(s, w.k, w.r))):
        _cmp(out, name, [[int(x), int(y)] for x, y in zip(p[:8], q[:8])], e[name])
    a_noisy, b_noisy = work.noisy_operands(a, b, s, w.r)
    tiles = work.all_tiles(a_noisy, b_noisy, s, header)
    _cmp(out, "tile count", len(tiles), len(e["tiles"]))
    for tile, want in zip(tiles, e["tiles"]):
        where = f"tile ({want['a']},{want['b']})"
        _cmp(out, f"{where} position", (tile.a, tile.b), (want["a"], want["b"]))
        _cmp(out, f"{where} M", tile.lanes, want["M"])
        _cmp(out, f"{where} digest", tile.digest.hex(), want["digest"])
        _cmp(out, f"{where} wins", tile.wins, want["wins"])
    product = work.recover_product(a, b_noisy, work.noisy_product(a_noisy, b_noisy), s, w.r)
    _cmp(out, "recovered A·B", bool((product == a.astype(np.int64) @ b.astype(np.int64)).all()), True)
    _cmp(out, "H_C", work.commit_result(product).hex(), e["H_C"])
    winner = next((t for t in tiles if t.wins), None)
    if winner is None:
        _cmp(out, "winning block", None, e.get("winning_block_hex"))
        return out
    expected_hex = e.get("winning_block_hex")
    block = work.assemble_block(header.replace(tx_root=tx_root(())), a, b, winner)
    _cmp(out, "winning_block_hex", block.encode().hex(), expected_hex)
    _cmp(out, "winning_block_hash", block.hash.hex(), e.get("winning_block_hash"))
    if expected_hex:
        given = Block.decode(bytes.fromhex(expected_hex))
        try:
            check_block(given, BY_CHAIN_ID[given.header.chain_id])
        except ConsensusError as exc:
            out.append(f"given winning block rejected: {exc}")
    return out


def check_dev_faucet(case: dict) -> Mismatches:
    out: Mismatches = []
    key = dev_faucet_key()
    _cmp(out, "seed", key.seed.hex(), case["ed25519_seed"])
    _cmp(out, "pubkey", key.pubkey.hex(), case["pubkey"])
    _cmp(out, "address_dev", encode_address(NETWORKS["dev"].hrp, key.address), case["address_dev"])
    _cmp(out, "address_regtest", encode_address(NETWORKS["regtest"].hrp, key.address), case["address_regtest"])
    return out


CHECKERS: dict[str, Callable[[dict], Mismatches]] = {
    "tagged": check_tagged, "merkle": check_merkle, "asert": check_asert, "tx": check_tx,
    "work": check_work, "dev_faucet": check_dev_faucet,
}


def run(doc: Any, write: Callable[[str], None]) -> tuple[int, int]:
    """Check every case of a parsed vectors document; returns (passed, failed)."""
    if not isinstance(doc, dict):
        raise ValueError("top level must be an object")
    if doc.get("protocol", 1) != 1:
        raise ValueError(f"unsupported protocol {doc.get('protocol')!r}")
    passed = failed = 0
    for section, cases in doc.items():
        if section == "protocol":
            continue
        checker = CHECKERS.get(section)
        if checker is None:
            raise ValueError(f"unknown section {section!r}")
        for index, case in enumerate(cases if isinstance(cases, list) else [cases]):
            try:
                problems = checker(case)
            except (KeyError, TypeError, ValueError, ConsensusError) as exc:
                problems = [f"case unreadable or rejected: {type(exc).__name__}: {exc}"]
            if problems:
                failed += 1
                write(f"FAIL {section}[{index}]: " + "; ".join(problems))
            else:
                passed += 1
                write(f"ok   {section}[{index}]")
    return passed, failed


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m consensus.vectors PATH.json", file=sys.stderr)
        return 2
    try:
        with open(args[0], encoding="utf-8") as fh:
            doc = json.load(fh)
        passed, failed = run(doc, print)
    except (OSError, ValueError) as exc:
        print(f"malformed vectors file: {exc}", file=sys.stderr)
        return 2
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
