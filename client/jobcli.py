"""``pouw-cli job ...``: the job market from the command line (PROTOCOL §6).

    pouw-cli job post A.npy B.npy --reward 5 [--expiry BLOCKS] [--from ADDRESS]
    pouw-cli job status JOB_ID
    pouw-cli job list [--mine] [--status open|claimed|settled|refunded|lapsed]
    pouw-cli job result JOB_ID -o C.npy [--wait] [--timeout SECONDS]
    pouw-cli job watch [--once] [--interval SECONDS]
    pouw-cli job repost JOB_ID [--reward 5] [--expiry BLOCKS]
    pouw-cli job matmul A.npy B.npy --reward 5 -o C.npy [--expiry BLOCKS] [--reposts N] [--timeout SECONDS]

``post`` checks A (int8 m×k) and B (int8 k×n) against the protocol's rules, stores
them on the node and signs the JOB_POST with a wallet key. ``result`` fetches the
claimed C, verifies it (Freivalds modulo 2^61 − 1, two rounds; the node checked it
against the claim's H_C when it stored it), saves it and sends JOB_ACCEPT — or, when C
is wrong, checks it is the claimed one, finds a wrong entry, sends a FRAUD_PROOF
instead, says so and exits 1. ``watch`` does the same for every
claimed job the wallet posted, so no good result is left to lapse. ``repost`` posts a job of
the wallet's that ended without a result (refunded: no miner took it; lapsed: its worker never
delivered) again, with the A and B its node still holds (for a challenge window after the
end), at the same reward unless told otherwise. ``matmul`` is ``client.matmul`` from the
command line: any int8 A (m×k) and B (k×n) with entries in [−64, 64], padded and split into
jobs as the protocol allows, every piece verified and accepted, ended pieces posted again, and
the exact A·B saved as int32.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from consensus.keys import PrivateKey

from . import wallet
from .cliutil import CliError, number_flag, parse_amount
from .market import DEFAULT_EXPIRY, DEFAULT_REPOSTS, MAX_EXPIRY_BLOCKS, MarketClient, MarketClientError, MatricesGone
from .rpc import NodeUnreachable, RpcError

if TYPE_CHECKING:
    from .cli import Cli

STATUSES = ("open", "claimed", "settled", "refunded", "lapsed")
ENDED = ("refunded", "lapsed")  # over without a result
RETRY_SECONDS = 2.0  # between tries at a claimed C that could not be had yet


def build_job_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pouw-cli job", description="Post int8 products as jobs; get verified results.")
    sub = parser.add_subparsers(dest="action", required=True)
    post = sub.add_parser("post", help="store A and B on the node and post A·B as a job")
    post.add_argument("a", type=Path, help="A: an int8 .npy, m×k")
    post.add_argument("b", type=Path, help="B: an int8 .npy, k×n")
    post.add_argument("--reward", required=True, help="coins paid for a verified result, e.g. 5")
    post.add_argument("--expiry", type=number_flag(1, MAX_EXPIRY_BLOCKS), default=DEFAULT_EXPIRY, metavar="BLOCKS",
                      help=f"blocks the job stays open (default {DEFAULT_EXPIRY})")
    post.add_argument("--from", dest="sender", metavar="ADDRESS", help="the wallet key that posts and pays")
    status = sub.add_parser("status", help="a job's state and the matrices the node holds for it")
    status.add_argument("job_id")
    listing = sub.add_parser("list", help="jobs on the chain")
    listing.add_argument("--mine", action="store_true", help="only jobs posted by this wallet's keys")
    listing.add_argument("--status", choices=STATUSES)
    result = sub.add_parser("result", help="fetch, verify and accept a job's result (or prove it wrong)")
    result.add_argument("job_id")
    result.add_argument("-o", "--output", type=Path, required=True, help="where to save C (.npy, int32)")
    result.add_argument("--wait", action="store_true", help="wait for a result to be claimed")
    result.add_argument("--timeout", type=number_flag(0, kind=float), default=3600.0, metavar="SECONDS")
    watch = sub.add_parser("watch", help="settle every claimed job of this wallet as results arrive")
    watch.add_argument("--once", action="store_true", help="one pass, then exit")
    watch.add_argument("--interval", type=number_flag(0.1, kind=float), default=5.0, metavar="SECONDS")
    repost = sub.add_parser("repost", help="post a job that ended without a result again (same A and B)")
    repost.add_argument("job_id")
    repost.add_argument("--reward", help="coins paid for a verified result (default: the job's)")
    repost.add_argument("--expiry", type=number_flag(1, MAX_EXPIRY_BLOCKS), default=DEFAULT_EXPIRY, metavar="BLOCKS",
                        help=f"blocks the new job stays open (default {DEFAULT_EXPIRY})")
    matmul = sub.add_parser("matmul", help="A·B of any shape from the network: split into jobs, verified, saved")
    matmul.add_argument("a", type=Path, help="A: an int8 .npy, m×k, entries in [-64, 64]")
    matmul.add_argument("b", type=Path, help="B: an int8 .npy, k×n, entries in [-64, 64]")
    matmul.add_argument("--reward", required=True, help="coins for the whole product, shared by the jobs' MACs")
    matmul.add_argument("-o", "--output", type=Path, required=True, help="where to save A·B (.npy, int32)")
    matmul.add_argument("--expiry", type=number_flag(1, MAX_EXPIRY_BLOCKS), default=DEFAULT_EXPIRY, metavar="BLOCKS",
                        help=f"blocks each job stays open (default {DEFAULT_EXPIRY})")
    matmul.add_argument("--reposts", type=number_flag(0), default=DEFAULT_REPOSTS, metavar="N",
                        help=f"times a job that ends without a result is posted again (default {DEFAULT_REPOSTS})")
    matmul.add_argument("--timeout", type=number_flag(0, kind=float), default=3600.0, metavar="SECONDS")
    matmul.add_argument("--from", dest="sender", metavar="ADDRESS", help="the wallet key that posts and pays")
    return parser


def load_npy(path: Path, what: str) -> np.ndarray:
    """A matrix from a .npy file, or a one-line error naming the file."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CliError(f"{what}: no such file {path}") from None
    except (ValueError, OSError, EOFError) as exc:
        raise CliError(f"{what}: {path} is not a .npy matrix ({exc})") from None


class JobCommands:
    """One ``job`` invocation, on the options and RPC client of a ``Cli``."""

    def __init__(self, cli: "Cli") -> None:
        self.cli = cli
        self.network = cli.network
        self.path = wallet.wallet_path(cli.datadir, cli.network)

    def run(self, args: list[str]) -> None:
        j = build_job_parser().parse_args(args)
        getattr(self, f"do_{j.action}")(j)

    def keystore(self) -> wallet.Keystore:
        return wallet.load(self.path, self.network)

    def signer(self, address: str | None = None) -> PrivateKey:
        keystore = self.keystore()
        return keystore.unlock(wallet.read_password()).signing_key(address or keystore.address)

    def market(self, key: PrivateKey | None = None) -> MarketClient:
        return MarketClient(self.cli.client, self.network, key, log=self.cli.note)

    def do_post(self, j: argparse.Namespace) -> None:
        a, b = load_npy(j.a, "A"), load_npy(j.b, "B")
        reward = parse_amount(j.reward, "reward")
        client = self.market(self.signer(j.sender))
        try:
            job_id = client.post(a, b, reward, j.expiry)
        except MarketClientError as exc:
            raise CliError(str(exc)) from None
        self.cli.show({"job_id": job_id, "poster": client.address} if self.cli.opts.json else job_id)

    def do_status(self, j: argparse.Namespace) -> None:
        self.cli.show(self.cli.client.call("getjob", j.job_id))

    def do_list(self, j: argparse.Namespace) -> None:
        jobs = self.cli.client.call("listjobs", j.status)
        if j.mine:
            mine = {k.address for k in self.keystore().keys}
            jobs = [job for job in jobs if job["poster"] in mine]
        if self.cli.opts.json:
            self.cli.show(jobs)
            return
        for job in jobs:
            print(f"{job['job_id']}  {job['status']:<8}  {job['m']}×{job['k']}·{job['k']}×{job['n']}  "
                  f"reward {job['reward'] / 1e8:g}  expiry {job['expiry']}")

    def do_result(self, j: argparse.Namespace) -> None:
        client = self.market(self.signer(self._own_job(j.job_id)["poster"]))
        deadline = time.monotonic() + j.timeout
        tip = self.cli.client.call("getbestblockhash")
        while True:
            job = self.cli.client.call("getjob", j.job_id)
            if job["status"] == "settled":
                self._save(j.output, client.download(job["claim"]))
                return
            if job["status"] == "claimed":
                verdict, c, txid = client.settle(j.job_id)
                if verdict.ok and c is not None:
                    self._save(j.output, c)
                    return
                if verdict.wrong is not None:
                    raise CliError(f"the claimed result is wrong ({verdict.reason}); fraud proof sent in {txid}")
                if not j.wait:
                    raise CliError(f"job {j.job_id}: {verdict.reason}")
            elif job["status"] in ENDED:
                raise CliError(f"job {j.job_id} is {job['status']}: there is no result to get "
                               f"(pouw-cli job repost {j.job_id} posts it again)")
            elif not j.wait:
                raise CliError(f"job {j.job_id} is {job['status']}: no result yet (--wait to wait for one)")
            if time.monotonic() > deadline:
                raise CliError(f"timed out after {j.timeout:g} s; job {j.job_id} is {job['status']}")
            if job["status"] == "claimed":  # its C could not be had yet: try again shortly
                time.sleep(RETRY_SECONDS)
            else:  # open: nothing moves before the next block
                tip = client.wait_for_block(tip, deadline - time.monotonic())

    def do_watch(self, j: argparse.Namespace) -> None:
        """Settle the wallet's claimed jobs round after round. A claim is done with once an
        accept or a fraud proof for it was sent; one whose C cannot be had yet, or whose tx the
        node refused, is tried again next round, and a node that cannot be reached is asked
        again after the interval (``--once``: reported, exit 1)."""
        mine = {k.address for k in self.keystore().keys}
        unlocked = self.keystore().unlock(wallet.read_password())
        answered: set[str] = set()  # claims an accept or a fraud proof was sent for
        while True:
            try:
                claimed = self.cli.client.call("listjobs", "claimed")
            except NodeUnreachable as exc:
                if j.once:
                    raise
                self.cli.note(f"{exc}; asking again in {j.interval:g} s")
                claimed = []
            for job in claimed:
                if job["poster"] not in mine or job["claim"] in answered:
                    continue
                client = self.market(unlocked.signing_key(job["poster"]))
                try:
                    _, _, txid = client.settle(job["job_id"])
                except (RpcError, NodeUnreachable, MarketClientError) as exc:
                    self.cli.note(f"job {job['job_id']}: {exc}; trying again next round")
                    continue
                if txid is not None:
                    answered.add(job["claim"])
            if j.once:
                return
            time.sleep(j.interval)

    def do_repost(self, j: argparse.Namespace) -> None:
        job = self._own_job(j.job_id)
        client = self.market(self.signer(job["poster"]))
        if job["status"] not in ENDED:
            raise CliError(f"job {j.job_id} is {job['status']}: only a refunded or lapsed job is posted again")
        reward = parse_amount(j.reward, "reward") if j.reward is not None else job["reward"]
        try:
            job_id = client.post_again(job, reward, j.expiry)
        except MatricesGone as exc:
            raise CliError(f"{exc}; post the job again from its files") from None
        except MarketClientError as exc:
            raise CliError(str(exc)) from None
        self.cli.show({"job_id": job_id, "reposts": j.job_id, "reward": reward} if self.cli.opts.json else job_id)

    def do_matmul(self, j: argparse.Namespace) -> None:
        a, b = load_npy(j.a, "A"), load_npy(j.b, "B")
        reward = parse_amount(j.reward, "reward")
        client = self.market(self.signer(j.sender))
        try:
            c = client.matmul(a, b, reward, timeout=j.timeout, expiry_blocks=j.expiry, reposts=j.reposts)
        except MarketClientError as exc:
            raise CliError(str(exc)) from None
        self._save(j.output, c)

    def _own_job(self, job_id: str) -> dict:
        """The job (getjob), if one of this wallet's keys posted it."""
        job = self.cli.client.call("getjob", job_id)
        if job["poster"] not in {k.address for k in self.keystore().keys}:
            raise CliError(f"job {job_id} was posted by {job['poster']}, which is not a key of this wallet")
        return job

    def _save(self, path: Path, c: np.ndarray) -> None:
        np.save(path, np.ascontiguousarray(c, dtype=np.int32), allow_pickle=False)
        self.cli.note(f"verified result saved to {path}")
        self.cli.show(str(path) if not self.cli.opts.json else {"output": str(path), "shape": list(c.shape)})

