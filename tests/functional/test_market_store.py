"""The matrix store under failure, with real pouwd processes (PROTOCOL §6, docs/market.md):
a store that cannot be written (a file-size limit on the node process: every write past it
fails with EFBIG, as a full disk fails with ENOSPC) refuses with 507 and the reason, keeps
no partial file and keeps the node serving; a kill -9 in the middle of an upload leaves no
partial matrix, and the upload works again after the restart."""
from __future__ import annotations

import http.client
import io
import resource
from pathlib import Path

import numpy as np
import pytest

from client.market import MarketClient, download_npy, npy_bytes
from client.rpc import BadResponse
from consensus.params import REGTEST
from consensus.work import commit_a

from .framework import NodeProcess, sync_blocks, wait_until
from .p2putil import connected_pair
from .rpcutil import FAUCET, FAUCET_ADDRESS, basic, cookie

LIMIT = 1 << 20  # bytes any file the limited node writes may reach


def limit_file_size(node: NodeProcess, size: int) -> None:
    """The soft RLIMIT_FSIZE of the running node, 0 for none (Python ignores SIGXFSZ: a write
    past the limit fails with EFBIG)."""
    hard = resource.prlimit(node.process.pid, resource.RLIMIT_FSIZE)[1]
    resource.prlimit(node.process.pid, resource.RLIMIT_FSIZE, (size or hard, hard))


def matrix_files(node: NodeProcess) -> list[str]:
    return sorted(p.name for p in (Path(node.datadir) / REGTEST.name / "matrices").iterdir())


def operand(rows: int, cols: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-64, 65, size=(rows, cols), dtype=np.int8)


def test_unwritable_store_is_507_and_the_node_keeps_serving(tmp_path: Path) -> None:
    with connected_pair(tmp_path) as (poster, fetcher):
        big_a, small_a = operand(1024, 2048, 1), operand(64, 128, 2)  # 2 MiB and 8 KiB
        big_b = operand(2048, 64, 3)

        limit_file_size(fetcher, LIMIT)
        with pytest.raises(BadResponse, match=r"HTTP 507 .*(File too large|matrix)") as refused:
            fetcher.rpc.http("PUT", "/matrix/A", npy_bytes(big_a))
        assert "matrix" in str(refused.value)
        assert matrix_files(fetcher) == []  # nothing partial kept
        assert fetcher.getblockcount() == 0  # the node keeps serving ...
        fetcher.generatetoaddress(1, FAUCET_ADDRESS)  # ... and writing its chain
        small_key = MarketClient(fetcher.rpc, REGTEST).upload("A", small_a)
        assert small_key == commit_a(small_a).hex()  # and storing what fits

        # the same through the p2p fetch of a job's A: the poster's node has it, the fetcher cannot store it
        sync_blocks([poster, fetcher])
        job_id = MarketClient(poster.rpc, REGTEST, FAUCET, log=lambda text: None).post(big_a, big_b, 10**6)
        poster.generatetoaddress(1, FAUCET_ADDRESS)
        sync_blocks([poster, fetcher])
        h_a = poster.getjob(job_id)["H_A"]
        with pytest.raises(BadResponse, match=r"HTTP 507 .*matrix not stored"):
            download_npy(fetcher.rpc, h_a)
        files = matrix_files(fetcher)  # B fits (the post's prefetch brought it): no A, nothing partial
        assert f"a-{small_key}.npy" in files and not [f for f in files if f.startswith(("tmp-", f"a-{h_a}"))]
        assert fetcher.getjob(job_id)["status"] == "open"

        limit_file_size(fetcher, 0)  # space again: the same requests work
        assert (download_npy(fetcher.rpc, h_a) == big_a).all()
        raw = fetcher.rpc.http("GET", f"/matrix/{h_a}.npy")  # the file itself, as any HTTP client gets it
        assert (np.load(io.BytesIO(raw), allow_pickle=False) == big_a).all()
        assert MarketClient(fetcher.rpc, REGTEST).upload("A", big_a) == h_a


def test_kill9_mid_upload_leaves_no_partial_matrix(tmp_path: Path) -> None:
    node = NodeProcess(0, tmp_path)
    node.start()
    try:
        a = operand(4096, 8192, 4)  # 32 MiB
        body = npy_bytes(a)
        conn = http.client.HTTPConnection("127.0.0.1", node.rpc_port, timeout=60)
        conn.putrequest("PUT", "/matrix/A")
        conn.putheader("Authorization", basic(*cookie(node)))
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        conn.send(body[:len(body) // 2])
        matrices = Path(node.datadir) / REGTEST.name / "matrices"

        def half_written() -> bool:
            return any(p.name.startswith("tmp-") and p.stat().st_size >= len(body) // 4 for p in matrices.iterdir())
        wait_until(half_written, 60, what="the upload half written")
        node.kill9()
        conn.close()

        node.start()
        assert matrix_files(node) == []  # the partial upload is gone, nothing else appeared
        key = commit_a(a).hex()
        with pytest.raises(BadResponse, match="HTTP 404"):
            download_npy(node.rpc, key)
        assert MarketClient(node.rpc, REGTEST).upload("A", a) == key  # the upload works again
        assert matrix_files(node) == [f"a-{key}.npy"]
        node.stop()
        node.start()
        assert node.rpc.http("GET", f"/matrix/{key}.npy") == body
    finally:
        node.cleanup()
