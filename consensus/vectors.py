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
from .difficulty import next_target
from .errors import ConsensusError
from .genesis import dev_faucet_key, genesis_block
from .hashing import merkle_root, tagged
from .keys import encode_address
from .lthash import LtHash
from .memstate import MemoryState
from .params import BY_CHAIN_ID, NETWORKS, Network
from .state import Account, Job, StateDiff, apply_effects
from .tx import Tx, claim_of
from .validation import check_block

PROTOCOL_VERSION = 2

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
    got = next_target(NETWORKS[case["network"]], case["parent_height"], _hex_int(case["parent_target"]),
                      case["parent_time"], case["grand_time"])
    out: Mismatches = []
    _cmp(out, "target", got, _hex_int(case["expect"]))
    return out


def check_lthash(case: dict) -> Mismatches:
    out: Mismatches = []
    lanes = LtHash.of(bytes.fromhex(r) for r in case["records"])
    _cmp(out, "lanes", lanes.to_bytes().hex(), case["lanes_hex"])
    _cmp(out, "state_root", lanes.root().hex(), case["state_root"])
    return out


def check_claim(case: dict) -> Mismatches:
    out: Mismatches = []
    _cmp(out, "claim", claim_of(bytes.fromhex(case["worker"]), bytes.fromhex(case["H_C"])).hex(), case["claim"])
    return out


def check_tx(case: dict) -> Mismatches:
    out: Mismatches = []
    tx = Tx.decode(bytes.fromhex(case["tx_hex"]))
    network = NETWORKS[case["network"]]
    _cmp(out, "chain_id", tx.chain_id, network.chain_id)
    _cmp(out, "kind", tx.kind, case["kind"])
    _cmp(out, "sender", tx.sender.hex(), case["pubkey"])
    _cmp(out, "address", encode_address(network.hrp, tx.sender_address), case["address"])
    _cmp(out, "signature valid", tx.signature_valid(), True)
    _cmp(out, "sighash", tx.sighash.hex(), case["sighash"])
    _cmp(out, "txid", tx.txid.hex(), case["txid"])
    _cmp(out, "re-encoding", tx.encode().hex(), case["tx_hex"])
    return out


def header_from_fields(f: dict) -> Header:
    w = f["work"]
    spec = WorkSpec(w["m"], w["n"], w["k"], w["r"], bytes.fromhex(w["H_A"]), bytes.fromhex(w["H_B"]),
                    bytes.fromhex(w["job_id"]))
    return Header(f["version"], f["chain_id"], f["height"], bytes.fromhex(f["prev_hash"]), f["timestamp"],
                  _hex_int(f["target"]), bytes.fromhex(f["tx_root"]), bytes.fromhex(f["state_root"]),
                  bytes.fromhex(f["miner"]), f["nonce"], spec, Ticket(0, 0, bytes(32)))


def check_work(case: dict) -> Mismatches:
    out: Mismatches = []
    header = header_from_fields(case["header_fields"])
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
    product = work.recover_product(a, b_noisy, work.int8_product(a_noisy, b_noisy), s, w.r)
    _cmp(out, "recovered A·B", bool((product == work.int8_product(a, b)).all()), True)
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


def check_genesis(case: dict) -> Mismatches:
    out: Mismatches = []
    block = genesis_block(NETWORKS[case["network"]])
    _cmp(out, "block_hex", block.encode().hex(), case["block_hex"])
    _cmp(out, "block_hash", block.hash.hex(), case["block_hash"])
    _cmp(out, "state_root", block.header.state_root.hex(), case["state_root"])
    return out


def _state_from_json(network, obj: dict) -> MemoryState:
    accounts = {bytes.fromhex(a): Account(balance, nonce) for a, balance, nonce in obj["accounts"]}
    jobs = {}
    for row in obj["jobs"]:
        job_id, poster, m, n, k, h_a, h_b, reward, expiry, status, worker, claim, bond, claim_height = row
        jobs[bytes.fromhex(job_id)] = Job(bytes.fromhex(poster), m, n, k, bytes.fromhex(h_a), bytes.fromhex(h_b),
                                          reward, expiry, status, bytes.fromhex(worker), bytes.fromhex(claim),
                                          bond, claim_height)
    return MemoryState(network, accounts, jobs)


def _case_effects(case: dict, network: Network, state: MemoryState) -> tuple[StateDiff, StateDiff]:
    txs = [Tx.decode(bytes.fromhex(t)) for t in case["txs"]]
    payout = None if case["payout"] is None else (bytes.fromhex(case["payout"][0]), case["payout"][1])
    return apply_effects(state, txs, case["height"], network, payout)


def state_case_error(case: dict) -> ConsensusError | None:
    """The error a state case's block raises, or None if it applies (to check the reason)."""
    network = NETWORKS[case["network"]]
    try:
        _case_effects(case, network, _state_from_json(network, case["pre"]))
    except ConsensusError as exc:
        return exc
    return None


def check_state(case: dict) -> Mismatches:
    """One block's effects (txs, job events, payout) on a given pre-state (§5 order)."""
    out: Mismatches = []
    network = NETWORKS[case["network"]]
    state = _state_from_json(network, case["pre"])
    _cmp(out, "pre_state_root", state.lanes().root().hex(), case["pre_state_root"])
    expect = case["expect"]
    try:
        diff, _ = _case_effects(case, network, state)
    except ConsensusError as exc:
        if expect["valid"]:
            out.append(f"valid: got invalid ({exc}), expected valid")
        return out
    if not expect["valid"]:
        out.append(f"valid: got a valid block, expected invalid ({expect.get('why', '')})")
        return out
    state.apply(diff)
    _cmp(out, "state_root", state.lanes().root().hex(), expect["state_root"])
    _cmp(out, "lanes match a recomputation", state.lanes() == state.recomputed(), True)
    want = _state_from_json(network, expect["post"])
    _cmp(out, "post accounts", state.accounts, want.accounts)
    _cmp(out, "post jobs", state.jobs, want.jobs)
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
    "tagged": check_tagged, "merkle": check_merkle, "asert": check_asert, "lthash": check_lthash,
    "claim": check_claim, "tx": check_tx, "work": check_work, "genesis": check_genesis,
    "state": check_state, "dev_faucet": check_dev_faucet,
}


def run(doc: Any, write: Callable[[str], None]) -> tuple[int, int]:
    """Check every case of a parsed vectors document; returns (passed, failed)."""
    if not isinstance(doc, dict):
        raise ValueError("top level must be an object")
    if doc.get("protocol") != PROTOCOL_VERSION:
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
