"""JSON-RPC error codes, one named set for the node that answers and the clients that read.

Bitcoin Core's codes and names (its ``rpc/protocol.h``, without the ``RPC_`` prefix)
where one exists, so that familiar tooling reads them; the node's own otherwise.
"""
from __future__ import annotations

from enum import IntEnum, unique


@unique
class RpcCode(IntEnum):
    """The ``code`` of a JSON-RPC error object."""

    # JSON-RPC 2.0
    PARSE_ERROR = -32700  # the body is not JSON
    INVALID_REQUEST = -32600  # not a request object, or a bad batch
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602  # missing, unknown or mistyped parameters
    INTERNAL_ERROR = -32603  # a bug in the node (logged there)

    # Bitcoin Core
    MISC_ERROR = -1
    INVALID_ADDRESS_OR_KEY = -5  # a bad address, or no such block, tx, job or matrix
    INVALID_PARAMETER = -8  # a parameter of the right type with a wrong value
    DATABASE_ERROR = -20  # the store refused a write (e.g. a full disk)
    DESERIALIZATION_ERROR = -22  # a block or tx that does not decode (§2)
    CLIENT_NODE_ALREADY_ADDED = -23
    CLIENT_NODE_NOT_ADDED = -24
    VERIFY_ERROR = -25  # a tx that breaks a rule the tx alone decides: never valid
    VERIFY_REJECTED = -26  # a tx invalid against the tip state, or refused by mempool policy
    VERIFY_ALREADY_IN_CHAIN = -27
    CLIENT_NODE_NOT_CONNECTED = -29
    CLIENT_INVALID_IP_OR_SUBNET = -30

    # the node's own (Bitcoin Core has -32 for a deprecated method)
    NOT_ALLOWED_ON_NETWORK = -32  # e.g. generate on main or test
