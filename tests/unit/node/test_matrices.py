"""The matrix store (PROTOCOL §6): A, B by commitment and C by claim in real files; bad
matrices are refused with the reason; a crash leftover is cleaned; the store is bounded."""
from __future__ import annotations

import os

import numpy as np
import pytest

from consensus.params import REGTEST
from consensus.tx import claim_of
from consensus.work import commit_a, commit_b, commit_result
from node import matrices
from node.matrices import MatrixError, MatrixStore

WORKER, JOB = b"\x05" * 20, b"\x06" * 32


def operands(m: int = 64, k: int = 128, n: int = 96, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(-64, 65, size=(m, k), dtype=np.int8), rng.integers(-64, 65, size=(k, n), dtype=np.int8))


def test_put_get_lines_and_reopen(tmp_path) -> None:
    store = MatrixStore(tmp_path, REGTEST, 1 << 30)
    a, b = operands()
    c = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)
    ea, eb = store.put("A", a), store.put("B", b)
    ec = store.put("C", c, worker=WORKER, job_id=JOB)
    assert (ea.key, eb.key, ec.key) == (commit_a(a), commit_b(b), claim_of(WORKER, commit_result(c)))
    assert eb.shape == (128, 96) and eb.line_count == 96 and eb.line_bytes == 128
    assert store.rows(eb.key, 3, 2, 1 << 20) == [b[:, 3].tobytes(), b[:, 4].tobytes()]
    assert store.rows(ea.key, 60, 10, 1 << 20) == [a[i].tobytes() for i in range(60, 64)]
    assert len(store.rows(ec.key, 0, 64, 4 * 96 * 5)) == 5  # bounded by bytes
    assert store.rows(b"\x00" * 32, 0, 1, 100) is None
    again = MatrixStore(tmp_path, REGTEST, 1 << 30)
    assert (np.asarray(again.matrix(eb.key)) == b).all() and (np.asarray(again.matrix(ec.key)) == c).all()
    assert again.get(ec.key).job_id == JOB and again.usage() == store.usage()


@pytest.mark.parametrize("iov_max, most", [(matrices.IOV_MAX, None), (5, None), (5, 1000)])
def test_lines_from_a_peer_are_written_as_the_matrix_itself(tmp_path, monkeypatch, iov_max: int,
                                                            most: int | None) -> None:
    """A fetched matrix is written from its lines (views of the replies) byte for byte as its
    array would be, ``IOV_MAX`` lines a ``writev`` (5: many calls, the last short), and stored
    under the same key; a ``writev`` that takes fewer bytes than given (at most ``most``, ending
    mid-line) is followed by one for the rest."""
    monkeypatch.setattr(matrices, "IOV_MAX", iov_max)
    if most is not None:
        writev = os.writev

        def short(fd: int, buffers: list[memoryview]) -> int:
            taken: list[memoryview] = []
            for buffer in buffers:
                taken.append(buffer[:most - sum(map(len, taken))])
            return writev(fd, [part for part in taken if len(part)])
        monkeypatch.setattr(os, "writev", short)
    store = MatrixStore(tmp_path, REGTEST, 1 << 30)
    a, b = operands()
    c = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)
    for kind, array, lines in [("A", a, a), ("B", np.asfortranarray(b), b.T), ("C", c, c)]:
        views = [memoryview(np.ascontiguousarray(line)).cast("B") for line in lines]
        from_lines, from_array = store.write_lines_upload(kind, views), store.write_upload(array)
        assert from_lines.read_bytes() == from_array.read_bytes()
        from_array.unlink()
        extra = {"worker": WORKER, "job_id": JOB} if kind == "C" else {}
        assert (np.asarray(store.matrix(store.put_file(kind, from_lines, **extra).key)) == array).all()


def test_a_matrix_is_on_disk_before_its_name(tmp_path, monkeypatch) -> None:
    """An upload streamed to its temporary file (as the HTTP PUT writes it, not fsynced) is
    fsynced before its rename into the store, and the directory after: a power cut leaves
    no named file with unwritten bytes."""
    store = MatrixStore(tmp_path, REGTEST, 1 << 30)
    upload = store.new_upload()
    np.save(upload, operands()[0], allow_pickle=False)
    file, directory = upload.stat().st_ino, tmp_path.stat().st_ino
    events: list[tuple[str, int]] = []
    fsync, replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.fstat(fd).st_ino)), fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda src, dst: (events.append(("replace", os.stat(src).st_ino)),
                                                         replace(src, dst))[1])
    store.put_file("A", upload)
    assert events == [("fsync", file), ("replace", file), ("fsync", directory)]


@pytest.mark.parametrize("array, message", [
    (np.zeros((64, 128), np.int16), "int8"),
    (np.zeros((60, 128), np.int8), "m=60"),
    (np.zeros((64, 100), np.int8), "k=100"),
    (np.full((64, 128), 65, np.int8), "outside"),
    (np.zeros((2, 64, 128), np.int8), "2-D"),
])
def test_bad_operands_are_refused_with_the_reason(tmp_path, array, message) -> None:
    store = MatrixStore(tmp_path, REGTEST, 1 << 30)
    with pytest.raises(MatrixError, match=message):
        store.put("A", array)
    assert store.entries() == [] and [p.name for p in tmp_path.iterdir()] == []


def test_corrupt_upload_and_crash_leftovers(tmp_path) -> None:
    store = MatrixStore(tmp_path, REGTEST, 1 << 30)
    upload = store.new_upload()
    upload.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(MatrixError, match="not a valid .npy"):
        store.put_file("A", upload)
    assert not upload.exists()
    (tmp_path / "tmp-leftover.npy").write_bytes(b"half a matrix")  # a kill -9 mid-write
    assert MatrixStore(tmp_path, REGTEST, 1 << 30).entries() == []
    assert not (tmp_path / "tmp-leftover.npy").exists()


def test_bounded_and_pruned(tmp_path) -> None:
    a, b = operands()
    store = MatrixStore(tmp_path, REGTEST, 13_000)  # A (8,320 bytes) or B (12,416), not both
    ea = store.put("A", a)
    with pytest.raises(MatrixError, match="full"):
        store.put("B", b)
    assert store.prune(needed={ea.key}, released=set(), grace_seconds=0) == []
    assert store.prune(needed=set(), released={ea.key}, grace_seconds=3600) == [ea.key]
    assert store.entries() == [] and not ea.path.exists()
    eb = store.put("B", b)
    assert store.prune(needed=set(), released=set(), grace_seconds=3600) == []  # a fresh upload waits
    assert store.prune(needed=set(), released=set(), grace_seconds=-1) == [eb.key]


def test_a_matrix_stored_again_waits_for_its_new_job(tmp_path) -> None:
    """The same A uploaded for a new job once its old job is final: the node may prune before
    the client sends the new post, and pruned it under the client before."""
    a, _ = operands()
    store = MatrixStore(tmp_path, REGTEST, 1 << 30)
    ea = store.put("A", a)
    assert store.prune(needed={ea.key}, released=set(), grace_seconds=3600) == []  # its job is live
    assert not store.prune_due
    assert store.put("A", a) == ea  # its job is final: uploaded again for a new one
    assert store.prune_due  # so the node prunes again, though no block came
    assert store.prune(needed=set(), released={ea.key}, grace_seconds=3600) == []
    assert store.prune_due  # it kept A for being new: the next prune decides
    assert store.prune(needed={ea.key}, released=set(), grace_seconds=3600) == []  # the new post names it
    assert store.prune(needed=set(), released={ea.key}, grace_seconds=3600) == [ea.key]  # and is final too


def test_c_needs_its_worker(tmp_path) -> None:
    store = MatrixStore(tmp_path, REGTEST, 1 << 30)
    with pytest.raises(MatrixError, match="worker"):
        store.put("C", np.zeros((32, 32), np.int32))
    with pytest.raises(MatrixError, match="int32"):
        store.put("C", np.zeros((32, 32), np.int64), worker=WORKER, job_id=JOB)
