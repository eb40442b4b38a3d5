"""The JSON-RPC methods of pouwd, with Bitcoin-familiar names and shapes."""
from __future__ import annotations

import asyncio
import math
import statistics
import time
from typing import Any, Protocol

from client.rpccodes import RpcCode
from consensus.block import Block, ReceivedBlock
from consensus.errors import AddressError, DecodeError, InvalidTx
from consensus.genesis import dev_faucet_key
from consensus.keys import decode_address, encode_address
from consensus.params import NETWORKS
from consensus.reasons import Reason
from consensus.tx import Tx
from p2p import BanError, InvalidAddress, NodeAlreadyAdded, NodeNotAdded, NodeNotConnected
from p2p.bans import MAX_BAN_SECONDS

from .addrindex import History, mempool_rows
from .chain import ACCEPTED, DUPLICATE, FUTURE, ORPHAN
from .chainstats import ChainStats
from .chainworker import ChainWorker
from .control import NodeControl
from .jsonview import block_json, difficulty, header_json, tx_json
from .mempool import Mempool, MempoolPolicyError
from .mempoolkeep import KeptMempool
from .mining import new_template, solve_template
from .stateinfo import state_info, tip_facts
from .rpcserver import Dispatcher, Param, RpcError, parse_address, parse_hash

LONGPOLL_SECONDS = 60.0
MAX_GENERATE = 10_000
MAX_ADDRESSES = 1000  # per getaddressbalance / getaddresshistory call
MAX_HISTORY = 1000  # index entries per getaddresshistory page
MAX_FEE_BLOCKS = 100



def parse_hex(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise RpcError(RpcCode.INVALID_PARAMETER, f"{what} must be hex") from None


class PeerControl(Protocol):
    """The peer-to-peer controls behind the network methods (``p2p.P2PNode`` provides them)."""

    def peer_info(self) -> list[dict]: ...
    def network_info(self) -> dict: ...
    async def add_node(self, addr: str, command: str) -> None: ...
    async def disconnect_node(self, target: str | int) -> None: ...
    def set_ban(self, subnet: str, command: str, bantime: int = 0) -> None: ...
    def list_banned(self) -> list[dict]: ...
    def clear_banned(self) -> None: ...


class RpcMethods:
    """The methods, bound to the parts of the node they use.  Chain writes go through the
    chain's worker (``node.chainworker``); reads go to the chain directly."""

    def __init__(self, worker: ChainWorker, mempool: Mempool, peers: PeerControl, stats: ChainStats,
                 control: NodeControl, kept_mempool: KeptMempool) -> None:
        self.worker = worker
        self.chain = worker.chain
        self.mempool = mempool
        self.kept_mempool = kept_mempool
        self.peers = peers
        self.stats = stats
        self.control = control
        self.network = worker.network

    def register(self, d: Dispatcher) -> None:
        d.add("help", self.help, Param("command", str, None))
        d.add("getblockchaininfo", self.getblockchaininfo)
        d.add("getblockcount", self.getblockcount)
        d.add("getbestblockhash", self.getbestblockhash)
        d.add("waitfornewblock", self.waitfornewblock, Param("timeout", int, 0), Param("current_tip", str, None))
        d.add("getblockhash", self.getblockhash, Param("height", int))
        d.add("getblock", self.getblock, Param("blockhash", str), Param("verbosity", (int, bool), 1))
        d.add("getblockheader", self.getblockheader, Param("blockhash", str), Param("verbose", bool, True))
        d.add("getchaintips", self.getchaintips)
        d.add("getdifficulty", self.getdifficulty)
        d.add("getmininginfo", self.getmininginfo)
        d.add("getstateinfo", self.getstateinfo, Param("verify", bool, False))
        d.add("getblocktemplate", self.getblocktemplate, Param("template_request", dict, None))
        d.add("submitblock", self.submitblock, Param("hexdata", str))
        d.add("generatetoaddress", self.generatetoaddress, Param("nblocks", int), Param("address", str),
              Param("maxtries", int, 10_000))
        d.add("generate", self.generate, Param("nblocks", int), Param("maxtries", int, 10_000))
        d.add("getrawmempool", self.getrawmempool, Param("verbose", bool, False))
        d.add("getmempoolinfo", self.getmempoolinfo)
        d.add("savemempool", self.savemempool)
        d.add("sendrawtransaction", self.sendrawtransaction, Param("hexstring", str))
        d.add("gettransaction", self.gettransaction, Param("txid", str))
        d.add("getaccount", self.getaccount, Param("address", str))
        d.add("validateaddress", self.validateaddress, Param("address", str))
        d.add("getaddressbalance", self.getaddressbalance, Param("addresses", list))
        d.add("getaddresshistory", self.getaddresshistory, Param("addresses", list), Param("count", int, 100),
              Param("skip", int, 0), Param("include_mempool", bool, True))
        d.add("estimatefee", self.estimatefee, Param("nblocks", int, 6))
        d.add("getnetworkinfo", self.getnetworkinfo)
        d.add("getpeerinfo", self.getpeerinfo)
        d.add("getconnectioncount", self.getconnectioncount)
        d.add("addnode", self.addnode, Param("node", str), Param("command", str))
        d.add("disconnectnode", self.disconnectnode, Param("address", str, ""), Param("nodeid", int, None))
        d.add("setban", self.setban, Param("subnet", str), Param("command", str), Param("bantime", int, 0))
        d.add("listbanned", self.listbanned)
        d.add("clearbanned", self.clearbanned)
        d.add("invalidateblock", self.invalidateblock, Param("blockhash", str))
        d.add("reconsiderblock", self.reconsiderblock, Param("blockhash", str))
        d.add("uptime", self.uptime)
        d.add("stop", self.stop)
        self._dispatcher = d

    # --- help ------------------------------------------------------------------------
    def help(self, command: str | None) -> str:
        """help ( "command" ): list all commands, or describe one."""
        methods = self._dispatcher.methods
        if command is None:
            return "\n".join(f"{name} {' '.join(p.name for p in m.params)}".strip()
                             for name, m in sorted(methods.items()))
        if command not in methods:
            raise RpcError(RpcCode.INVALID_ADDRESS_OR_KEY, f"help: unknown command: {command}")
        m = methods[command]
        args = " ".join(p.name if p.required else f"( {p.name} )" for p in m.params)
        return f"{command} {args}\n{m.help}".strip()

    # --- chain -------------------------------------------------------------------------
    def _entry_or_404(self, block_hash: str):
        entry = self.chain.entry(parse_hash(block_hash, "blockhash"))
        if entry is None:
            raise RpcError(RpcCode.INVALID_ADDRESS_OR_KEY, "Block not found")
        return entry

    def _confirmations(self, entry) -> tuple[int, bytes | None]:
        """(confirmations, next best-chain hash); -1 when not on the best chain (Bitcoin's convention)."""
        if self.chain.hash_at(entry.height) != entry.hash:
            return -1, None
        return self.chain.tip.height - entry.height + 1, self.chain.hash_at(entry.height + 1)

    async def getblockchaininfo(self) -> dict[str, Any]:
        """getblockchaininfo: state of the best chain."""
        tip = self.chain.tip
        best_header = self.chain.best_header_height()
        return {
            "chain": self.network.name,
            "blocks": tip.height,
            "headers": max(best_header, tip.height),
            "bestblockhash": tip.hash.hex(),
            "difficulty": difficulty(self.network, tip.header.target),
            "time": tip.header.timestamp,
            "mediantime": self.chain.median_time_past(),
            "chainwork": f"{tip.chain_work:064x}",
            "initialblockdownload": best_header > tip.height,
            "verificationprogress": 1.0 if not best_header else min(1.0, tip.height / max(best_header, 1)),
            "next_target": f"{self.chain.next_target():064x}",
            "useful_blocks": await self.stats.useful_stats(),
        }

    def getblockcount(self) -> int:
        """getblockcount: height of the best chain."""
        return self.chain.tip.height

    def getbestblockhash(self) -> str:
        """getbestblockhash: hash of the best chain's tip."""
        return self.chain.tip.hash.hex()

    async def waitfornewblock(self, timeout: int, current_tip: str | None) -> dict[str, Any]:
        """waitfornewblock ( timeout "current_tip" ): wait until the best block is another than
        current_tip (by default the one when called) or timeout milliseconds pass (0: no limit),
        then the best block's hash and height (Bitcoin Core's call)."""
        if timeout < 0:
            raise RpcError(RpcCode.INVALID_PARAMETER, "timeout must be 0 (no limit) or milliseconds")
        start = self.chain.tip.hash if current_tip is None else parse_hash(current_tip, "current_tip")
        await self.control.wait_for_new_tip(start, timeout / 1000 if timeout else None)
        tip = self.chain.tip
        return {"hash": tip.hash.hex(), "height": tip.height}

    def getblockhash(self, height: int) -> str:
        """getblockhash height: hash of the best-chain block at height."""
        h = self.chain.hash_at(height)
        if h is None:
            raise RpcError(RpcCode.INVALID_PARAMETER, "Block height out of range")
        return h.hex()

    def getblock(self, blockhash: str, verbosity: int | bool) -> Any:
        """getblock "blockhash" ( verbosity ): 0 = canonical hex, 1 = JSON with txids, 2 = JSON with txs."""
        verbosity = int(verbosity)
        if verbosity not in (0, 1, 2):
            raise RpcError(RpcCode.INVALID_PARAMETER, "verbosity must be 0, 1 or 2")
        entry = self._entry_or_404(blockhash)
        raw = self.chain.block_bytes(entry.hash)
        if raw is None:
            raise RpcError(RpcCode.MISC_ERROR, "Block not available (header only)")
        if verbosity == 0:
            return raw.hex()
        confirmations, next_hash = self._confirmations(entry)
        return block_json(self.network, Block.decode(raw), verbosity, entry.chain_work, confirmations, next_hash,
                          len(raw))

    def getblockheader(self, blockhash: str, verbose: bool) -> Any:
        """getblockheader "blockhash" ( verbose ): header as JSON, or canonical hex when verbose is false."""
        entry = self._entry_or_404(blockhash)
        header = entry.header
        if header is None:  # the node keeps a few fields of a header whose block has not arrived
            raise RpcError(RpcCode.MISC_ERROR, "Header not available (header only, its block not received)")
        if not verbose:
            return entry.raw.hex()
        confirmations, next_hash = self._confirmations(entry)
        return header_json(self.network, header, entry.chain_work, confirmations, next_hash)

    async def getchaintips(self) -> list[dict[str, Any]]:
        """getchaintips: every known branch tip and its status."""
        return await self.worker.run(self.chain.chain_tips)

    def getdifficulty(self) -> float:
        """getdifficulty: pow_limit / target of the tip."""
        return difficulty(self.network, self.chain.tip.header.target)

    async def invalidateblock(self, blockhash: str) -> None:
        """invalidateblock "blockhash": treat a block and its descendants as invalid."""
        try:
            await self.worker.invalidate_block(parse_hash(blockhash, "blockhash"))
        except KeyError:
            raise RpcError(RpcCode.INVALID_ADDRESS_OR_KEY, "Block not found") from None
        except ValueError as exc:
            raise RpcError(RpcCode.INVALID_PARAMETER, str(exc)) from None

    async def reconsiderblock(self, blockhash: str) -> None:
        """reconsiderblock "blockhash": undo invalidateblock for a block and its descendants."""
        try:
            await self.worker.reconsider_block(parse_hash(blockhash, "blockhash"))
        except KeyError:
            raise RpcError(RpcCode.INVALID_ADDRESS_OR_KEY, "Block not found") from None

    # --- mining -----------------------------------------------------------------------------
    async def getmininginfo(self) -> dict[str, Any]:
        """getmininginfo: tip, difficulty, estimated network MAC rate, mempool size."""
        tip = self.chain.tip
        return {
            "chain": self.network.name,
            "blocks": tip.height,
            "difficulty": difficulty(self.network, tip.header.target),
            "next_target": f"{self.chain.next_target():064x}",
            "networkmacps": self.stats.network_mac_rate(),
            "state_root": tip.header.state_root.hex(),
            "pooledtx": len(self.mempool),
            "useful": await self.stats.useful_stats(),
        }

    async def getstateinfo(self, verify: bool) -> dict[str, Any]:
        """getstateinfo ( verify ): accounts, jobs by status and the supply at the tip (balances +
        escrow + pending fees = issued − burned); verify=true recomputes the state root."""
        facts = tip_facts(self.chain)
        view = self.chain.tip_state_view()
        return await asyncio.to_thread(state_info, self.network, facts, view, verify)

    async def getblocktemplate(self, template_request: dict | None) -> dict[str, Any]:
        """getblocktemplate ( {"longpollid": id} ): a template; with a longpollid, waits for a new tip."""
        request = template_request or {}
        longpollid = request.get("longpollid")
        if longpollid is not None:
            if not isinstance(longpollid, str):
                raise RpcError(RpcCode.INVALID_PARAMETER, "longpollid must be a string")
            if longpollid == self.chain.tip.hash.hex():  # another one (stale, or not a hash): at once
                await self.control.wait_for_new_tip(self.chain.tip.hash, LONGPOLL_SECONDS)
        return new_template(self.chain, self.mempool, int(time.time())).to_json()

    async def submitblock(self, hexdata: str) -> str | None:
        """submitblock "hexdata": null when accepted, else a reason string (Bitcoin's convention)."""
        raw = parse_hex(hexdata, "hexdata")
        try:
            received = ReceivedBlock.decode(raw)
        except DecodeError as exc:
            raise RpcError(RpcCode.DESERIALIZATION_ERROR, f"Block decode failed: {exc.detail}") from None
        result = await self.worker.submit_block(received)
        if result.status == ACCEPTED:
            return None
        if result.status == DUPLICATE:
            return "duplicate"
        if result.status == ORPHAN:
            return "inconclusive"
        if result.status == FUTURE:
            return Reason.TIME_TOO_NEW
        return result.reason or result.status

    async def generatetoaddress(self, nblocks: int, address: str, maxtries: int) -> list[str]:
        """generatetoaddress nblocks "address" ( maxtries ): mine blocks in-process (dev/regtest only)."""
        if not self.network.faucet:
            raise RpcError(RpcCode.NOT_ALLOWED_ON_NETWORK,
                           f"generatetoaddress is only for dev and regtest, not {self.network.name}")
        if not 0 <= nblocks <= MAX_GENERATE:
            raise RpcError(RpcCode.INVALID_PARAMETER, f"nblocks must be between 0 and {MAX_GENERATE}")
        miner = self._address(address)
        hashes: list[str] = []
        for _ in range(nblocks):
            template = new_template(self.chain, self.mempool, int(time.time()))
            # A fast burst pushes median time past ahead of the clock (about 1 s per 6 blocks);
            # wait rather than produce blocks beyond the future limit (§5).
            ahead = template.clock_wait(int(time.time()))
            if ahead:
                await asyncio.sleep(ahead)
                if self.control.stopping():
                    break
            block = await asyncio.to_thread(solve_template, template, miner, maxtries, self.control.stopping)
            if block is None:
                break
            result = await self.worker.submit_block(block)
            if result.status != ACCEPTED:
                raise RpcError(RpcCode.MISC_ERROR, f"generated block rejected: {result.reason or result.status}")
            hashes.append(block.hash.hex())
        return hashes

    async def generate(self, nblocks: int, maxtries: int) -> list[str]:
        """generate nblocks ( maxtries ): mine blocks to the dev faucet address (dev/regtest only)."""
        return await self.generatetoaddress(nblocks, encode_address(self.network.hrp, dev_faucet_key().address),
                                            maxtries)

    # --- mempool and transactions -------------------------------------------------------
    def getrawmempool(self, verbose: bool) -> Any:
        """getrawmempool ( verbose ): txids, or txid → details."""
        if not verbose:
            return [t.hex() for t in self.mempool.txids()]
        out = {}
        for txid in self.mempool.txids():
            tx = self.mempool.get(txid)
            if tx is not None:
                out[txid.hex()] = tx_json(self.network, tx)
        return out

    def getmempoolinfo(self) -> dict[str, Any]:
        """getmempoolinfo: size, bytes, usage and policy; ``loaded``: the txs kept at the last
        shutdown have all been offered to the pool (they load while the node serves)."""
        return {**self.mempool.info(), "loaded": self.kept_mempool.loaded}

    async def savemempool(self) -> dict[str, int]:
        """savemempool: keep the pool's txs for the next start now, as a clean shutdown does;
        ``size``: how many."""
        return {"size": await self.kept_mempool.save()}

    async def sendrawtransaction(self, hexstring: str) -> str:
        """sendrawtransaction "hexstring": validate, add to the mempool and relay; returns the txid.

        Judged once the chain's pending writes are done and the mempool has heard their blocks,
        so a tx that only the newest tip makes valid (a JOB_ACCEPT after its claim's block, as
        ``getjob`` already shows) is not refused against the tip before it."""
        raw = parse_hex(hexstring, "hexstring")
        try:
            tx = Tx.decode(raw)
        except DecodeError as exc:
            raise RpcError(RpcCode.DESERIALIZATION_ERROR, f"TX decode failed: {exc.detail}") from None
        await self.worker.settled()
        if self.chain.tx_location(tx.txid) is not None:
            raise RpcError(RpcCode.VERIFY_ALREADY_IN_CHAIN, "transaction already in block chain")
        try:
            self.mempool.add(tx)  # its event relays the tx
        except InvalidTx as exc:  # never valid (-25), or not against this tip (-26)
            code = RpcCode.VERIFY_ERROR if exc.code.tx_stateless else RpcCode.VERIFY_REJECTED
            raise RpcError(code, str(exc)) from None
        except MempoolPolicyError as exc:
            raise RpcError(RpcCode.VERIFY_REJECTED, str(exc)) from None
        return tx.txid.hex()

    def gettransaction(self, txid: str) -> dict[str, Any]:
        """gettransaction "txid": a tx from the best chain or the mempool."""
        raw_id = parse_hash(txid, "txid")
        location = self.chain.tx_location(raw_id)
        if location is not None:
            block_hash, position = location
            block = self.chain.block(block_hash)
            entry = self.chain.entry(block_hash)
            assert block is not None and entry is not None
            tx = block.txs[position]
            out = tx_json(self.network, tx)
            out.update(hex=tx.encode().hex(), blockhash=block_hash.hex(), blockheight=entry.height,
                       confirmations=self.chain.tip.height - entry.height + 1, in_mempool=False)
            return out
        tx = self.mempool.get(raw_id)
        if tx is None:
            raise RpcError(RpcCode.INVALID_ADDRESS_OR_KEY, "No such mempool or blockchain transaction")
        out = tx_json(self.network, tx)
        out.update(hex=tx.encode().hex(), blockhash=None, blockheight=None, confirmations=0, in_mempool=True)
        return out

    def _address(self, text: str) -> bytes:
        return parse_address(text, self.network.hrp)

    def getaccount(self, address: str) -> dict[str, Any]:
        """getaccount "address": balance, nonce, mempool nonce and immature rewards (base units)."""
        raw = self._address(address)
        acct = self.chain.account(raw)
        immature = [{"height": h, "amount": amount, "matures_at": h + self.network.coinbase_maturity}
                    for h, amount in self.chain.immature_rewards(raw)]
        return {
            "address": encode_address(self.network.hrp, raw),
            "balance": acct.balance,
            "nonce": acct.nonce,
            "pending_nonce": self.mempool.pending_nonce(raw),
            "immature": immature,
            "immature_total": sum(i["amount"] for i in immature),
        }

    def validateaddress(self, address: str) -> dict[str, Any]:
        """validateaddress "address": whether it is an address of this network (never an error)."""
        try:
            raw = decode_address(address, self.network.hrp)
        except AddressError as exc:
            hrp = address.lower().rpartition("1")[0]
            other = next((n.name for n in NETWORKS.values() if n.hrp == hrp and n is not self.network), None)
            error = f"address of network {other}, this node is {self.network.name}" if other else str(exc)
            return {"isvalid": False, "address": address, "error": error}
        return {"isvalid": True, "address": encode_address(self.network.hrp, raw), "network": self.network.name}

    def _addresses(self, addresses: list[Any]) -> list[bytes]:
        if not 1 <= len(addresses) <= MAX_ADDRESSES:
            raise RpcError(RpcCode.INVALID_PARAMETER, f"give 1 to {MAX_ADDRESSES} addresses")
        if not all(isinstance(a, str) for a in addresses):
            raise RpcError(RpcCode.INVALID_PARAMETER, "addresses must be strings")
        return list(dict.fromkeys(self._address(a) for a in addresses))

    def getaddressbalance(self, addresses: list[Any]) -> dict[str, Any]:
        """getaddressbalance ["address",...]: getaccount for each address, and the totals (base units)."""
        accounts = [self.getaccount(encode_address(self.network.hrp, raw)) for raw in self._addresses(addresses)]
        return {"balance": sum(a["balance"] for a in accounts),
                "immature": sum(a["immature_total"] for a in accounts),
                "height": self.chain.tip.height, "addresses": accounts}

    def getaddresshistory(self, addresses: list[Any], count: int, skip: int,
                          include_mempool: bool) -> list[dict[str, Any]]:
        """getaddresshistory ["address",...] ( count skip include_mempool ): txs and mined blocks of the
        addresses, newest first (needs pouwd --addressindex); count and skip are in index entries, and
        the first page (skip 0) starts with the pooled txs."""
        raw = self._addresses(addresses)
        if not self.chain.address_index:
            raise RpcError(RpcCode.MISC_ERROR, "address history needs the address index: restart pouwd with "
                                       "--addressindex (add --reindex once on an existing datadir)")
        if not 0 <= count <= MAX_HISTORY or skip < 0:
            raise RpcError(RpcCode.INVALID_PARAMETER, f"count must be 0 to {MAX_HISTORY} and skip not negative")
        rows = []
        if include_mempool and skip == 0:
            rows = mempool_rows(self.network, set(raw), filter(None, map(self.mempool.get, self.mempool.txids())))
        return rows + History(self.chain.tip_state_view(), self.network).page(raw, skip, count)

    def estimatefee(self, nblocks: int) -> dict[str, Any]:
        """estimatefee ( nblocks ): fee rate (base units per byte) to pay now: the median rate of the txs in
        the last nblocks best-chain blocks, at least the node's min relay fee rate."""
        if not 1 <= nblocks <= MAX_FEE_BLOCKS:
            raise RpcError(RpcCode.INVALID_PARAMETER, f"nblocks must be 1 to {MAX_FEE_BLOCKS}")
        tip = self.chain.tip.height
        rates = []
        for height in range(max(1, tip - nblocks + 1), tip + 1):
            raw = self.chain.block_bytes(self.chain.hash_at(height) or b"")
            if raw is not None:
                rates.extend(tx.fee / len(tx.encode()) for tx in Block.decode(raw).txs)
        floor = self.mempool.policy.min_fee_per_byte
        median = math.ceil(statistics.median(rates)) if rates else 0
        return {"feerate": max(floor, median), "min_relay_feerate": floor, "blocks": min(nblocks, tip),
                "txs": len(rates)}

    # --- network -----------------------------------------------------------------------------
    def getnetworkinfo(self) -> dict[str, Any]:
        """getnetworkinfo: protocol, user agent, connection counts, and ``matrixrate``: the getmatrix
        bytes this node serves each peer a second (``--matrix-rate``; 0: unlimited), which bounds
        how fast its worker's results reach their posters (PROTOCOL §6)."""
        return {"version": 1, "networkactive": True, **self.peers.network_info()}

    def getpeerinfo(self) -> list[dict[str, Any]]:
        """getpeerinfo: one object per connected peer."""
        return self.peers.peer_info()

    def getconnectioncount(self) -> int:
        """getconnectioncount: number of connected peers."""
        return len(self.peers.peer_info())

    async def addnode(self, node: str, command: str) -> None:
        """addnode "host:port" "add|remove|onetry"."""
        if command not in ("add", "remove", "onetry"):
            raise RpcError(RpcCode.INVALID_PARAMETER, "command must be add, remove or onetry")
        try:
            await self.peers.add_node(node, command)
        except NodeAlreadyAdded as exc:
            raise RpcError(RpcCode.CLIENT_NODE_ALREADY_ADDED, f"Error: Node already added ({exc})") from None
        except NodeNotAdded as exc:
            raise RpcError(RpcCode.CLIENT_NODE_NOT_ADDED, f"Error: Node has not been added ({exc})") from None
        except InvalidAddress as exc:
            raise RpcError(RpcCode.INVALID_PARAMETER, str(exc)) from None

    async def disconnectnode(self, address: str, nodeid: int | None) -> None:
        """disconnectnode ( "address" nodeid ): drop a peer by address or id."""
        if bool(address) == (nodeid is not None):
            raise RpcError(RpcCode.INVALID_PARAMETER, "give either an address or a nodeid")
        try:
            await self.peers.disconnect_node(address or nodeid)
        except NodeNotConnected:
            raise RpcError(RpcCode.CLIENT_NODE_NOT_CONNECTED, "Node not found in connected nodes") from None

    def setban(self, subnet: str, command: str, bantime: int) -> None:
        """setban "ip[/mask]" "add|remove" ( bantime ): ban or unban an address or subnet."""
        if command not in ("add", "remove"):
            raise RpcError(RpcCode.INVALID_PARAMETER, "command must be add or remove")
        if not 0 <= bantime <= MAX_BAN_SECONDS:
            raise RpcError(RpcCode.INVALID_PARAMETER, f"bantime must be between 0 and {MAX_BAN_SECONDS} seconds")
        try:
            self.peers.set_ban(subnet, command, bantime)
        except InvalidAddress as exc:
            raise RpcError(RpcCode.CLIENT_INVALID_IP_OR_SUBNET, f"Error: Invalid IP/Subnet ({exc})") from None
        except BanError as exc:
            raise RpcError(RpcCode.CLIENT_INVALID_IP_OR_SUBNET, f"Error: {exc}") from None

    def listbanned(self) -> list[dict[str, Any]]:
        """listbanned: banned addresses with times and reasons."""
        return self.peers.list_banned()

    def clearbanned(self) -> None:
        """clearbanned: lift every ban."""
        self.peers.clear_banned()

    # --- control -----------------------------------------------------------------------------
    def uptime(self) -> int:
        """uptime: seconds since the node started."""
        return self.control.uptime()

    def stop(self) -> str:
        """stop: shut the node down cleanly."""
        self.control.request_stop()
        return "pouwd stopping"
