"""Errors of the P2PNode control API (mapped to JSON-RPC error codes by the node)."""
from __future__ import annotations


class P2PError(ValueError):
    """Base class of the errors below."""


class InvalidAddress(P2PError):
    """Not a "host:port", IP or subnet."""


class NodeAlreadyAdded(P2PError):
    """addnode "add" for an address already in the list."""


class NodeNotAdded(P2PError):
    """addnode "remove" for an address not in the list."""


class NodeNotConnected(P2PError):
    """disconnectnode for a peer that is not connected."""


class BanError(P2PError):
    """setban "add" for a subnet already banned, or "remove" for one that is not."""
