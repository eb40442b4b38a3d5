"""pouw p2p: the gossip network and headers-first sync (PROTOCOL §7); see docs/p2p.md."""
from .errors import BanError, InvalidAddress, NodeAlreadyAdded, NodeNotAdded, NodeNotConnected, P2PError
from .interfaces import ChainView, MatrixSource, MemoryRecords, MempoolView, Records
from .peer import PeerLimits
from .relay import RelayLimits
from .service import P2PNode
from .sync import SyncLimits

__all__ = [
    "BanError", "ChainView", "InvalidAddress", "MatrixSource", "MemoryRecords", "MempoolView",
    "NodeAlreadyAdded", "NodeNotAdded", "NodeNotConnected", "P2PError", "P2PNode", "PeerLimits",
    "Records", "RelayLimits", "SyncLimits",
]
