"""A damaged database is refused with a message naming --reindex, and --reindex recovers it."""
from __future__ import annotations


def test_corrupt_manifest_then_reindex_recovers(start_nodes) -> None:
    (node,) = start_nodes(1)
    hashes = node.generate(5)
    assert node.stop() == 0
    chain_dir = node.datadir / "regtest" / "chain"
    manifests = list(chain_dir.glob("MANIFEST-*"))
    assert manifests
    for manifest in manifests:
        manifest.write_bytes(b"garbage")
    node.start(wait=False)
    assert node.process.wait(30) == 1
    log = node.log_tail()
    assert "is corrupt" in log and "--reindex" in log
    node.start(["--reindex"])
    assert node.getblockcount() == 5 and node.getbestblockhash() == hashes[-1]
    assert node.generate(1)
