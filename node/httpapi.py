"""pouwd's HTTP surface (aiohttp): JSON-RPC 2.0 at ``/``, read-only REST, ``/health``,
``/metrics``, the ``/ws`` event stream, and job-market matrices at ``/matrix/…``.

JSON-RPC, ``/ws`` and ``/matrix`` need HTTP Basic auth (cookie or configured user);
REST, ``/health`` and ``/metrics`` are read-only and open, like bitcoind's ``-rest``,
which is why the server binds to 127.0.0.1 unless configured otherwise.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from client.rpccodes import RpcCode
from consensus.block import Block

from .chain import Chain
from .chainstats import ChainStats
from .control import NodeControl
from .jsonview import block_json, header_json
from .market import JobMarket, MarketError
from .marketrpc import MarketMethods, matrix_json
from .matrices import KINDS, StoreUnwritable
from .metrics import CONTENT_TYPE, NodeMetrics
from .rpcmethods import PeerControl
from .rpcserver import Auth, Dispatcher, RpcError, parse_hash

log = logging.getLogger("pouw.http")
MAX_BODY = 16 * 1024 * 1024
MAX_REST_HEADERS = 2000
WS_QUEUE = 1000
WS_CLOSE_TIMEOUT = 2.0  # how long a closing websocket waits for the client's close frame


def _error(code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": None}


class EventHub:
    """Fans node events (new tips, mempool txs) out to websocket subscribers."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[dict[str, Any] | None]] = set()

    def publish(self, event: dict[str, Any] | None) -> None:
        for q in list(self.queues):
            if q.full():  # a slow reader loses its oldest events, never blocks the node
                q.get_nowait()
            q.put_nowait(event)

    def close(self) -> None:
        """Tell every subscriber to hang up (``None`` ends a websocket handler)."""
        self.publish(None)


class HttpApi:
    def __init__(self, dispatcher: Dispatcher, auth: Auth, *, chain: Chain, stats: ChainStats, peers: PeerControl,
                 control: NodeControl, metrics: NodeMetrics, market: JobMarket, market_rpc: MarketMethods,
                 max_upload_bytes: int) -> None:
        self.dispatcher = dispatcher
        self.auth = auth
        self.chain = chain
        self.network = chain.network
        self.stats = stats
        self.peers = peers
        self.control = control
        self.node_metrics = metrics
        self.market = market
        self.market_rpc = market_rpc
        self.max_upload_bytes = max_upload_bytes
        self.events = EventHub()
        self.app = web.Application(client_max_size=MAX_BODY)
        self.app.router.add_post("/", self.jsonrpc)
        self.app.router.add_get("/ws", self.websocket)
        self.app.router.add_get("/health", self.health)
        self.app.router.add_get("/metrics", self.metrics)
        self.app.router.add_get("/rest/chaininfo", self.rest_chaininfo)
        self.app.router.add_get("/rest/block/{hash}", self.rest_block)
        self.app.router.add_get("/rest/headers/{count}/{hash}", self.rest_headers)
        self.app.router.add_put("/matrix/{kind}", self.put_matrix)
        self.app.router.add_get("/matrix/{name}", self.get_matrix)
        self.runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> None:
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self.runner.setup()
        await web.TCPSite(self.runner, host, port, reuse_address=True).start()

    async def stop(self) -> None:
        if self.runner is not None:
            self.events.close()  # open websockets would otherwise hold up shutdown for a minute
            await asyncio.sleep(0)
            await self.runner.cleanup()

    def _unauthorized(self) -> web.Response:
        return web.Response(status=401, text="authentication required\n",
                            headers={"WWW-Authenticate": 'Basic realm="pouwd"'})

    async def jsonrpc(self, request: web.Request) -> web.Response:
        if not self.auth.check(request.headers.get("Authorization")):
            await asyncio.sleep(0.05)  # slow down password guessing a little
            return self._unauthorized()
        try:
            payload = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
            return web.json_response(_error(RpcCode.PARSE_ERROR, "Parse error"), status=400)
        except web.HTTPRequestEntityTooLarge:
            return web.json_response(_error(RpcCode.INVALID_REQUEST, "request too large"), status=413)
        started = time.perf_counter()
        answer = await self.dispatcher.handle(payload)
        name = payload.get("method") if isinstance(payload, dict) else "batch"
        if isinstance(name, str) and name in self.dispatcher.methods or name == "batch":
            self.node_metrics.rpc_latency.labels(method=name).observe(time.perf_counter() - started)
        if answer is None:
            return web.Response(status=204)
        return web.json_response(answer)

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        if not self.auth.check(request.headers.get("Authorization")):
            return self._unauthorized()
        ws = web.WebSocketResponse(heartbeat=30, timeout=WS_CLOSE_TIMEOUT)
        await ws.prepare(request)
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(WS_QUEUE)
        self.events.queues.add(queue)
        reader = asyncio.create_task(self._drain(ws))
        try:
            while not ws.closed:
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                event = getter.result()
                if event is None:  # the node is shutting down
                    break
                await ws.send_json(event)
        except (ConnectionResetError, RuntimeError):
            pass
        finally:
            self.events.queues.discard(queue)
            reader.cancel()
            await ws.close(code=WSCloseCode.GOING_AWAY if self.control.stopping() else WSCloseCode.OK)
        return ws

    @staticmethod
    async def _drain(ws: web.WebSocketResponse) -> None:
        """Read (and ignore) client messages until it closes."""
        async for msg in ws:
            if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break

    async def health(self, request: web.Request) -> web.Response:
        """200 with ``ready``/``syncing``; 503 ``read-only`` once the database cannot be written."""
        tip = self.chain.tip
        write_error = self.chain.write_error
        status = "read-only" if write_error else ("syncing" if self.stats.syncing() else "ready")
        body = {
            "status": status,
            "network": self.network.name,
            "height": tip.height,
            "tip_age": max(0, int(time.time()) - tip.header.timestamp),
            "peers": len(self.peers.peer_info()),
        }
        if write_error:
            body["error"] = write_error
        return web.json_response(body, status=503 if write_error else 200)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.node_metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    # --- REST ------------------------------------------------------------------------------
    @staticmethod
    def _split_format(text: str) -> tuple[str, str]:
        name, _, fmt = text.partition(".")
        return name, fmt or "json"

    def _hash(self, text: str) -> bytes:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise web.HTTPBadRequest(text=f"invalid hash: {text}\n")
        return raw

    async def rest_chaininfo(self, request: web.Request) -> web.Response:
        tip = self.chain.tip
        return web.json_response({"chain": self.network.name, "blocks": tip.height,
                                  "bestblockhash": tip.hash.hex(), "chainwork": f"{tip.chain_work:064x}",
                                  "mediantime": self.chain.median_time_past()})

    async def rest_block(self, request: web.Request) -> web.Response:
        text, fmt = self._split_format(request.match_info["hash"])
        block_hash = self._hash(text)
        raw = self.chain.block_bytes(block_hash)
        if raw is None:
            raise web.HTTPNotFound(text=f"{text} not found\n")
        if fmt == "bin":
            return web.Response(body=raw, content_type="application/octet-stream")
        if fmt == "hex":
            return web.Response(text=raw.hex() + "\n")
        if fmt != "json":
            raise web.HTTPBadRequest(text="format must be json, hex or bin\n")
        entry = self.chain.entry(block_hash)
        assert entry is not None
        on_best = self.chain.hash_at(entry.height) == entry.hash
        confirmations = self.chain.tip.height - entry.height + 1 if on_best else -1
        next_hash = self.chain.hash_at(entry.height + 1) if on_best else None
        return web.json_response(block_json(self.network, Block.decode(raw), 1, entry.chain_work,
                                            confirmations, next_hash, len(raw)))

    async def rest_headers(self, request: web.Request) -> web.Response:
        text, fmt = self._split_format(request.match_info["hash"])
        try:
            count = int(request.match_info["count"])
        except ValueError:
            raise web.HTTPBadRequest(text="count must be an integer\n") from None
        if not 1 <= count <= MAX_REST_HEADERS:
            raise web.HTTPBadRequest(text=f"count must be between 1 and {MAX_REST_HEADERS}\n")
        chain = self.chain
        entry = chain.entry(self._hash(text))
        headers = []
        while entry is not None and len(headers) < count and chain.hash_at(entry.height) == entry.hash:
            headers.append(entry)
            nxt = chain.hash_at(entry.height + 1)
            entry = chain.entry(nxt) if nxt else None
        if fmt == "hex":
            return web.Response(text="".join(e.header.encode().hex() for e in headers) + "\n")
        if fmt != "json":
            raise web.HTTPBadRequest(text="format must be json or hex\n")
        return web.json_response([header_json(self.network, e.header, e.chain_work) for e in headers])

    # --- job-market matrices --------------------------------------------------------------
    async def put_matrix(self, request: web.Request) -> web.Response:
        """``PUT /matrix/{A,B,C}[?worker=ADDR&job_id=HEX][&expect=KEY]`` with a .npy body: checked,
        stored, answered with its key (JSON); a refusal is a 400 with the reason."""
        if not self.auth.check(request.headers.get("Authorization")):
            return self._unauthorized()
        kind = request.match_info["kind"].upper()
        if kind not in KINDS:
            raise web.HTTPNotFound(text=f"kind must be one of {', '.join(KINDS)}\n")
        market = self.market
        limit = self.max_upload_bytes
        upload = market.store.new_upload()
        try:
            received = 0
            with open(upload, "wb") as fh:
                async for chunk in request.content.iter_chunked(1 << 20):
                    received += len(chunk)
                    if received > limit:
                        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=received)
                    fh.write(chunk)
            q = request.query
            entry = await self.market_rpc.store_upload(kind, upload, q.get("worker"), q.get("job_id"),
                                                            q.get("expect"))
        except RpcError as exc:
            refusal = web.HTTPInsufficientStorage if exc.code == RpcCode.DATABASE_ERROR else web.HTTPBadRequest
            raise refusal(text=exc.message + "\n") from None
        except OSError as exc:
            raise web.HTTPInsufficientStorage(text=f"cannot store the matrix: {exc.strerror or exc}\n") from None
        finally:
            upload.unlink(missing_ok=True)
        return web.json_response(matrix_json(entry))

    async def get_matrix(self, request: web.Request) -> web.StreamResponse:
        """``GET /matrix/<key>.npy``: the matrix as .npy (fetched from peers first if needed)."""
        if not self.auth.check(request.headers.get("Authorization")):
            return self._unauthorized()
        text, fmt = self._split_format(request.match_info["name"])
        if fmt not in ("npy", "json"):
            raise web.HTTPBadRequest(text="format must be npy\n")
        try:
            key = parse_hash(text, "key")
            entry = await self.market.fetch(key)
        except RpcError as exc:
            raise web.HTTPBadRequest(text=exc.message + "\n") from None
        except MarketError as exc:
            raise web.HTTPNotFound(text=f"{exc}\n") from None
        except StoreUnwritable as exc:
            raise web.HTTPInsufficientStorage(text=f"matrix not stored: {exc}\n") from None
        self.market.bytes_served += entry.size
        return web.FileResponse(entry.path, headers={"Content-Type": "application/octet-stream"})
