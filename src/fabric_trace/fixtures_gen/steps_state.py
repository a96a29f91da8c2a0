"""State access: memory reads/writes, retrieval (embedding cache + vector store), redis.

Cache lookups are redis ``GET`` CLIENT spans carrying ``cache.hit``; a miss is
followed by the backing fetch (postgres read, or an embeddings call) and a
``SET`` that refills the cache. State services are reached through a
CLIENT -> SERVER hop whose callee may be a remote replica
(``remote_state_fraction``).
"""

from __future__ import annotations

import hashlib
import random

import orjson

from .builder import Streams, TraceBuilder
from .model import CLIENT, INTERNAL, STATUS_ERROR, GenSpan
from .steps_llm import Conversation, embeddings
from .topology import DATA_SOURCES, EMBEDDING_MODEL, PEERS
from .truth import CacheLookup, RedundantFetch


def _redis(b: TraceBuilder, r: random.Random, parent: GenSpan, t: int, peer: str, cmd: str, key: str,
           hit: bool | None) -> GenSpan:
    p = PEERS[peer]
    attrs = {
        "db.system.name": "redis",
        "db.operation.name": cmd,
        "db.query.text": f"{cmd} {key}" + (" ? EX 3600" if cmd == "SET" else ""),
        "db.namespace": "0",
        "server.address": p.address,
        "server.port": p.port,
    }
    if hit is not None:
        attrs["cache.hit"] = hit
    return b.leaf(r, parent, cmd, CLIENT, t, "redis", "cache", attrs, 1.1 if cmd == "GET" else 0.9, 0.45)


def memory_key(b: TraceBuilder, conv: Conversation) -> str:
    """The memory/cache key of this trace's conversation (ephemeral for anonymous traces)."""
    return f"mem:{conv.session_id if not b.anonymous else 'eph-' + b.trace_id[:12]}"


def memory_read(b: TraceBuilder, r: random.Random, parent: GenSpan, start: int, conv: Conversation,
                *, force_hit: bool = False) -> tuple[int, str]:
    """Read conversation memory; returns (end time, span id of the redis GET)."""
    key = memory_key(b, conv)
    callee = b.topo.pick(r, "memory")
    got: list[str] = []

    def body(server: GenSpan, t: int, rb: random.Random) -> int:
        hit = force_hit or rb.random() >= b.scenario.cache_miss_rate
        lazy = Streams(rb, 1)
        get = _redis(b, rb, server, t, "redis.memory", "GET", key, hit)
        got.append(get.span_id)
        t = get.end_ns
        backing: list[str] = []
        if not hit:
            rx = lazy[0]
            p = PEERS["postgres.memory"]
            pg = b.leaf(rx, server, "SELECT memory_messages", CLIENT, t, "psycopg", "memory", {
                "db.system.name": "postgresql",
                "db.operation.name": "SELECT",
                "db.collection.name": "memory_messages",
                "db.namespace": "memory",
                "db.query.text": "SELECT role, content FROM memory_messages WHERE session_key = $1 "
                                 "ORDER BY seq DESC LIMIT 20",
                "server.address": p.address,
                "server.port": p.port,
            }, 6.0, 0.5)
            st = _redis(b, rx, server, pg.end_ns, "redis.memory", "SET", key, None)
            backing = [pg.span_id, st.span_id]
            t = st.end_ns
        b.truth.cache_lookups.append(CacheLookup(get.span_id, key, hit, b.topo.instances[server.resource].service_name,
                                                 backing))
        return t

    sid = key.split(":", 1)[1]
    client = b.hop(r, parent, start, callee, "GET", "/v1/memory/{session_id}", f"/v1/memory/{sid}", "memory", body)
    return client.end_ns, got[0]


def memory_write(b: TraceBuilder, r: random.Random, parent: GenSpan, start: int, conv: Conversation) -> int:
    """Append the turn to conversation memory (postgres INSERT + redis SET); returns the end time."""
    key = memory_key(b, conv)
    callee = b.topo.pick(r, "memory")

    def body(server: GenSpan, t: int, rb: random.Random) -> int:
        p = PEERS["postgres.memory"]
        pg = b.leaf(rb, server, "INSERT memory_messages", CLIENT, t, "psycopg", "memory", {
            "db.system.name": "postgresql",
            "db.operation.name": "INSERT",
            "db.collection.name": "memory_messages",
            "db.namespace": "memory",
            "db.query.text": "INSERT INTO memory_messages (session_key, seq, role, content) VALUES ($1, $2, $3, $4)",
            "server.address": p.address,
            "server.port": p.port,
        }, 4.0, 0.5)
        return _redis(b, rb, server, pg.end_ns, "redis.memory", "SET", key, None).end_ns

    sid = key.split(":", 1)[1]
    client = b.hop(r, parent, start, callee, "POST", "/v1/memory/{session_id}", f"/v1/memory/{sid}", "memory", body)
    return client.end_ns


def _docs(query: str) -> str:
    h = hashlib.sha256(query.encode()).digest()
    docs = [{"id": f"doc-{int.from_bytes(h[i:i + 3], 'big') % 100000:05d}", "score": round(0.9 - i * 0.021, 3)}
            for i in range(0, 15, 3)]
    return orjson.dumps(docs).decode()


def retrieve(b: TraceBuilder, r: random.Random, parent: GenSpan, start: int, conv: Conversation, workflow: str,
             query: str, *, force_hit: bool = False) -> tuple[int, str, str]:
    """Retrieve documents for ``query`` via the retrieval service.

    Returns (end time, retrieval span id, embedding-cache GET span id).
    """
    ds, store, collection = DATA_SOURCES[workflow]
    callee = b.topo.pick(r, "retrieval")
    u_err = r.random()
    ids: list[str] = []
    ekey = "emb:" + hashlib.sha1(query.encode()).hexdigest()[:16]

    def body(server: GenSpan, t: int, rb: random.Random) -> int:
        ret = b.span(rb, server, f"retrieval {ds}", INTERNAL, t, server.resource, "genai", "retrieval", {
            "gen_ai.operation.name": "retrieval",
            "gen_ai.data_source.id": ds,
            "gen_ai.retrieval.query.text": query,
        })
        hit = force_hit or rb.random() >= b.scenario.cache_miss_rate
        lazy = Streams(rb, 1)
        get = _redis(b, rb, ret, t + b.dur(rb, "retrieval", 0.3, 0.3), "redis.search", "GET", ekey, hit)
        t2 = get.end_ns
        backing: list[str] = []
        if not hit:
            rx = lazy[0]
            t2 = embeddings(b, rx, ret, t2, EMBEDDING_MODEL, conv, max(4, len(query) // 4))
            backing.append(b.spans[-1].span_id)
            st = _redis(b, rx, ret, t2, "redis.search", "SET", ekey, None)
            backing.append(st.span_id)
            t2 = st.end_ns
        b.truth.cache_lookups.append(CacheLookup(get.span_id, ekey, hit, b.topo.instances[server.resource].service_name,
                                                 backing))
        p = PEERS[store]
        if store == "qdrant":
            vattrs = {"db.system.name": "qdrant", "db.operation.name": "search",
                      "db.query.text": f"search {collection} limit=8 with_payload=true"}
            vname, vscope = f"search {collection}", "qdrant"
        else:
            vattrs = {"db.system.name": "postgresql", "db.operation.name": "SELECT", "db.namespace": "vectors",
                      "db.query.text": f"SELECT id, title, chunk FROM {collection} ORDER BY embedding <=> $1 LIMIT 8"}
            vname, vscope = f"SELECT {collection}", "psycopg"
        vattrs.update({"db.collection.name": collection, "db.vector.query.top_k": 8,
                       "server.address": p.address, "server.port": p.port})
        vec = b.leaf(rb, ret, vname, CLIENT, t2, vscope, "retrieval", vattrs, 38.0, 0.55)
        ret.end_ns = vec.end_ns + b.dur(rb, "retrieval", 2.0, 0.4)
        if u_err < b.scenario.error_rate:
            b.fail(vec, "retrieval", "TimeoutError", "vector search timed out", exc="TimeoutError")
            b.fail(ret, "retrieval", "TimeoutError", "vector search timed out")
            server.status_code = STATUS_ERROR
        else:
            ret.attributes["gen_ai.retrieval.documents"] = _docs(query)
        ids.extend((ret.span_id, get.span_id))
        return ret.end_ns

    client = b.hop(r, parent, start, callee, "POST", "/v1/retrieve", "/v1/retrieve", "retrieval", body)
    return client.end_ns, ids[0], ids[1]


def record_repeat(b: TraceBuilder, kind: str, key: str, first: str, repeat: str) -> None:
    """Record a redundant fetch of ``key`` (first and repeated span ids)."""
    b.truth.redundant_fetches.append(RedundantFetch(kind, key, first, repeat))
