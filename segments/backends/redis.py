"""Production backend: Redis Streams for events, hashes and strings for the fast store.

Layout (``P`` is the key prefix):

- ``P:e:<partition>``  stream of events, consumer group ``segments``
- ``P:m:<visitor>``    hash: ``s:<slug>`` -> membership end, ``_c:<purpose>`` -> consent expiry,
                       ``_nv`` -> notice version, ``_sq`` -> standing (which copies of the
                       consent cookie count: ``consent.standing``)
- ``P:f:<visitor>``    string: the visitor's features (compact JSON)
- ``P:drain:<p>``      flag: a drain of partition p is scheduled or running
- ``P:lock:<p>``       lock: the drain holding partition p (a few seconds, renewed while held)
- ``P:dead:<p>``       stream of partition p's dead letters (entries the drain gave up on)
- ``P:attempts:<p>``   hash: entry id -> failed attempts at applying it
- ``P:shed:<p>``       counter: events refused at intake while partition p was over its cap
- ``P:resize:<n>:<m>`` hash: old partition -> its last entry when the raise of PARTITIONS
                       from n to m was sealed (``seal_partitions``)
- ``P:partitions``     string: the partition count the store was sealed with (written by the
                       first process to use it and by ``seal_partitions``; read once per process)
- ``P:due``            sorted set: visitor -> when to evaluate it again without new events
- ``P:sizes``          hash: segment slug -> members; ``P:nprofiles``: visitors with features

On Redis Cluster (``OPTIONS["CLUSTER"]``) every key a partition's scripts and transactions touch
carries the partition's hash tag, so it lives in one hash slot: ``P:{p<p>}:e``,
``P:{p<p>}:m:<visitor>``, ``P:{p<p>}:f:<visitor>``, ``P:{p<p>}:drain`` (likewise ``lock``,
``dead``, ``attempts``, ``shed``) and, per partition there, ``P:{p<p>}:due``,
``P:{p<p>}:sizes`` and ``P:{p<p>}:nprofiles`` (summed when read); ``P:partitions`` has no tag
(it is read on its own). The request path's exchange
(a visitor's hash and its partition's stream) and the drain's commit (the visitors' hashes, the
acknowledgement, the counts) each stay one script or one ``MULTI`` on one node. A single Redis
keeps the layout above (no migration for sites that stay on one server).
"""

import math
import os
import threading
import time
import weakref
import zlib
from dataclasses import replace

import redis
from django.core.exceptions import ImproperlyConfigured
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.connection import AbstractConnection
from redis.exceptions import (
    AskError,
    ClusterError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection

from .base import (
    ASSIGNMENT_PREFIX,
    CONSENT_PREFIX,
    RECOMMENDATION_PREFIX,
    SEGMENT_PREFIX,
    BackendUnavailable,
    BaseBackend,
    DeadLetter,
    Exchange,
    PartitionStats,
    StreamEntry,
    VisitorState,
    shed_prefix,
)

GROUP = "segments"

# KEYS: membership hash, stream, drain flag, shed counter; while PARTITIONS is being raised and
# the visitor's partition changes, also the resize seal, and the new partition's stream, drain
# flag and shed counter (used instead once the seal exists). ARGV: consent field, now, notice
# version, drain flag ttl (ms), the consent cookie's claim (record number, -1 when the cookie
# does not say it, or '' for no cookie to check) and signing time (whole seconds), the
# stream's cap and hard cap (0: none), the number S of sheddable prefixes, the number K of kept
# prefixes, the S prefixes, the K prefixes, then for each event its "k" and "d" field values
# (none: read only).
# Returns {-1} (no consent state, or none recorded with a standing to check a claim against),
# {2} (the claim is void: an old copy of the cookie, or the latest record grants nothing),
# {0} (not consented) or {1, drain scheduled?, [slug, until...], events shed, [experiment,
# assignment...], [recommendation field, value...]} with the memberships that end after now
# only (an unreadable end counts as ended), the sticky experiment assignments ("x:" fields) and
# the recommendation fields ("r:" fields), both without their prefix. Over the cap, events
# whose "d" starts with a sheddable prefix are not appended; over the hard cap, only those
# whose "d" starts with a kept prefix are.
_EXCHANGE = """
local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then return {-1} end
local now = tonumber(ARGV[2])
local exp, nv, sq
local memberships = {}
local assignments = {}
local recs = {}
for i = 1, #h, 2 do
  local f = h[i]
  local p = string.sub(f, 1, 2)
  if p == 's:' then
    local untilv = tonumber(h[i + 1])
    if untilv and untilv > now then
      memberships[#memberships + 1] = string.sub(f, 3)
      memberships[#memberships + 1] = h[i + 1]
    end
  elseif p == 'x:' then
    assignments[#assignments + 1] = string.sub(f, 3)
    assignments[#assignments + 1] = h[i + 1]
  elseif p == 'r:' then
    recs[#recs + 1] = string.sub(f, 3)
    recs[#recs + 1] = h[i + 1]
  elseif f == ARGV[1] then exp = h[i + 1]
  elseif f == '_nv' then nv = h[i + 1]
  elseif f == '_sq' then sq = h[i + 1] end
end
if ARGV[5] ~= '' then
  if not sq then return {-1} end
  local colon = string.find(sq, ':', 1, true)
  if not colon then return {2} end
  local claim = tonumber(ARGV[5])
  if claim >= 0 then
    if claim < tonumber(string.sub(sq, 1, colon - 1)) then return {2} end
  elseif tonumber(ARGV[6]) < tonumber(string.sub(sq, colon + 1)) then return {2} end
end
if (not exp) or tonumber(exp) <= now or nv ~= ARGV[3] then return {0} end
local drain = 0
local shed = 0
local nshed = tonumber(ARGV[9])
local first = 11 + nshed + tonumber(ARGV[10])
if #ARGV >= first then
  local stream, flag, shedk = KEYS[2], KEYS[3], KEYS[4]
  if #KEYS > 4 and redis.call('EXISTS', KEYS[5]) == 1 then
    stream, flag, shedk = KEYS[6], KEYS[7], KEYS[8]
  end
  local cap = tonumber(ARGV[7])
  local hard = tonumber(ARGV[8])
  local length = 0
  if cap > 0 or hard > 0 then length = redis.call('XLEN', stream) end
  local over = cap > 0 and length >= cap
  local full = hard > 0 and length >= hard
  local added = 0
  for i = first, #ARGV, 2 do
    local drop = false
    if full then
      drop = true
      for j = 11 + nshed, first - 1 do
        if string.sub(ARGV[i + 1], 1, #ARGV[j]) == ARGV[j] then drop = false break end
      end
    elseif over then
      for j = 11, 10 + nshed do
        if string.sub(ARGV[i + 1], 1, #ARGV[j]) == ARGV[j] then drop = true break end
      end
    end
    if drop then
      shed = shed + 1
    else
      redis.call('XADD', stream, '*', 'k', ARGV[i], 'd', ARGV[i + 1])
      added = added + 1
    end
  end
  if shed > 0 then redis.call('INCRBY', shedk, shed) end
  if added > 0 and redis.call('SET', flag, '1', 'NX', 'PX', ARGV[4]) then drain = 1 end
end
return {1, drain, memberships, shed, assignments, recs}
"""

# KEYS: membership hash. ARGV: ttl, notice version, standing, then purpose-field/expiry pairs.
_SET_CONSENT = """
local h = redis.call('HKEYS', KEYS[1])
for _, f in ipairs(h) do
  if string.sub(f, 1, 3) == '_c:' then redis.call('HDEL', KEYS[1], f) end
end
redis.call('HSET', KEYS[1], '_nv', ARGV[2], '_sq', ARGV[3])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""

# KEYS: the resize seal, the store's partition count, then the old partitions' streams. ARGV:
# the new count. Records each old partition's last entry (or 0-0) atomically with respect to
# the exchange scripts: an entry appended before the seal is at or below its fence, one
# appended after it goes to the new partitions. Sealing again keeps the first fences. The
# store's count becomes the new one in the same step.
_SEAL = """
local fences = {}
for i = 3, #KEYS do
  local fence = redis.call('HGET', KEYS[1], tostring(i - 3))
  if not fence then
    local last = redis.call('XREVRANGE', KEYS[i], '+', '-', 'COUNT', 1)
    fence = last[1] and last[1][1] or '0-0'
    redis.call('HSET', KEYS[1], tostring(i - 3), fence)
  end
  fences[#fences + 1] = fence
end
redis.call('SET', KEYS[2], ARGV[1])
return fences
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def _connect(options: dict, *, decode_responses: bool) -> redis.Redis:
    kwargs = {
        "decode_responses": decode_responses,
        "socket_timeout": float(options.get("SOCKET_TIMEOUT", 0.5)),
        "socket_connect_timeout": float(options.get("CONNECT_TIMEOUT", 0.5)),
        "health_check_interval": 30,
    }
    if options.get("CLUSTER"):
        # Any node of the cluster (URL) finds the others; redis-py follows MOVED and ASK and
        # reloads the slot map when the cluster changes.
        return redis.RedisCluster.from_url(options["URL"], **kwargs)
    if options.get("SENTINELS"):
        # The master as the Sentinels name it, asked again on every new connection: after a
        # failover, a connection to the old master fails (or is told READONLY once it is a
        # replica), and the next one goes to the new master.
        sentinel = Sentinel(
            [(host, int(port)) for host, port in options["SENTINELS"]],
            sentinel_kwargs={
                "socket_timeout": kwargs["socket_timeout"],
                "socket_connect_timeout": kwargs["socket_connect_timeout"],
            },
        )
        return sentinel.master_for(
            options["SENTINEL_MASTER"], db=int(options.get("DB", 0)), **kwargs
        )
    return redis.Redis.from_url(options["URL"], **kwargs)


# Why a live raise of PARTITIONS is refused on a cluster (segments.E009 says it too).
CLUSTER_RESIZE_REFUSED = (
    "PREVIOUS_PARTITIONS is not supported on a Redis Cluster: a visitor's keys carry their "
    "partition's hash tag, so a visitor whose partition changes would have their keys in two "
    "slots, which no script can read together. Change PARTITIONS there with every process "
    "stopped and the stream drained, then rebuild_fast_store (docs/operations.md, "
    '"Changing PARTITIONS on a Redis Cluster").'
)


class RedisBackend(BaseBackend):
    def __init__(self, options: dict):
        super().__init__(options)
        self.prefix = options.get("KEY_PREFIX", "tailored")
        self.cluster = bool(options.get("CLUSTER"))
        if self.cluster and self.previous_partitions:
            # Refused when the backend is made, in every process (a system check is not run
            # by a WSGI server or a Celery worker): recording by two partition counts on a
            # cluster splits visitors' state without a word.
            raise ImproperlyConfigured(CLUSTER_RESIZE_REFUSED)
        self._clients: tuple[redis.Redis, redis.Redis] | None = None
        self._connecting = threading.Lock()
        if not self.cluster:
            self._clients = self._connect()
        # Scripts are hashed with the clients' encoding (no connection needed) and called
        # with self.client, so a cluster's client is made on first use only.
        encoder = redis.Redis(decode_responses=True)
        self._exchange = Script(encoder, _EXCHANGE)
        self._local = threading.local()  # the request path's connection, one per thread
        # On a cluster, the node each partition's calls go to: {a partition's stream key:
        # (host, port)}, as the slot map said when first needed; emptied when a MOVED reply or
        # a failed node shows the map changed (a route out of date costs one redirect).
        self._routes: dict[str, tuple[str, int]] = {}
        self.request_timeout = float(options.get("REQUEST_TIMEOUT", 0.1))
        # Replicas that must hold a page's events before its round trip returns (0: none).
        self.wait_replicas = int(options.get("WAIT_REPLICAS", 0))
        self.wait_timeout_ms = int(options.get("WAIT_TIMEOUT_MS", 50))
        self._set_consent = Script(encoder, _SET_CONSENT)
        self._unlock = Script(encoder, _UNLOCK)
        self._refresh = Script(encoder, _REFRESH)
        self._shed_args = [str(self.max_length), str(self.hard_max_length)]
        self._shed_args += [str(len(self.shed_events)), str(len(self.keep_events))]
        self._shed_args += [shed_prefix(name) for name in (*self.shed_events, *self.keep_events)]
        self._groups_ready: set[str] = set()
        self._ready: set[int] = set()  # partitions found ready after a resize

    def _connect(self) -> tuple[redis.Redis, redis.Redis]:
        # Profiles are stored compressed, so they go through a binary connection.
        return (
            _connect(self.options, decode_responses=True),
            _connect(self.options, decode_responses=False),
        )

    def _made_clients(self) -> tuple[redis.Redis, redis.Redis]:
        clients = self._clients
        if clients is None:
            # A cluster client asks a node for the slot map as it is made: made when first
            # needed, not with the backend (so a cluster that is down when the process starts
            # costs the pages that need it their default content, not an error).
            with self._connecting:
                if self._clients is None:
                    try:
                        self._clients = self._connect()
                    except (RedisError, RedisClusterException) as exc:
                        raise BackendUnavailable(type(exc).__name__) from exc
                clients = self._clients
        return clients

    @property
    def client(self) -> redis.Redis:
        """The workers' client (strings decoded)."""
        return self._made_clients()[0]

    @property
    def raw(self) -> redis.Redis:
        """A client of bytes, for the compressed profiles."""
        return self._made_clients()[1]

    # -- keys -------------------------------------------------------------------------------
    def _key(self, kind: str, partition: int) -> str:
        """A partition's own key of ``kind`` (e, drain, lock, dead, attempts, shed)."""
        if self.cluster:
            return f"{self.prefix}:{{p{partition}}}:{kind}"
        return f"{self.prefix}:{kind}:{partition}"

    def _counter(self, kind: str, partition: int) -> str:
        """A count kept once for the whole store on one Redis (due, sizes, nprofiles), and per
        partition on a cluster, where it must share a slot with the partition's commit."""
        if self.cluster:
            return f"{self.prefix}:{{p{partition}}}:{kind}"
        return f"{self.prefix}:{kind}"

    def _counters(self, kind: str) -> list[str]:
        if self.cluster:
            return [self._counter(kind, p) for p in range(self.partitions)]
        return [self._counter(kind, 0)]

    def _visitor(self, kind: str, visitor_key: str) -> str:
        if self.cluster:
            return f"{self.prefix}:{{p{self.partition_for(visitor_key)}}}:{kind}:{visitor_key}"
        return f"{self.prefix}:{kind}:{visitor_key}"

    def _m(self, visitor_key: str) -> str:
        return self._visitor("m", visitor_key)

    def _f(self, visitor_key: str) -> str:
        return self._visitor("f", visitor_key)

    def _stream(self, partition: int) -> str:
        return self._key("e", partition)

    @property
    def _profiles_match(self) -> str:
        return f"{self.prefix}:{{p*}}:f:*" if self.cluster else f"{self.prefix}:f:*"

    # -- raising PARTITIONS -----------------------------------------------------------------
    @property
    def _resize_key(self) -> str:
        """The seal of the resize from PREVIOUS_PARTITIONS to PARTITIONS (one per resize)."""
        return f"{self.prefix}:resize:{self.previous_partitions}:{self.partitions}"

    def partition_ready(self, partition):
        old = self.previous_partitions
        if not old or partition < old or partition in self._ready:
            return True
        fence = self.client.hget(self._resize_key, str(partition % old))
        if fence is None:
            return False  # not sealed yet: some process may still record by the old count
        # Acknowledged entries are deleted: none left up to the fence means all are applied.
        if self.client.xrange(self._stream(partition % old), "-", fence, count=1):
            return False
        self._ready.add(partition)  # for good: later entries have later ids
        return True

    def seal_resize(self):
        old = self.previous_partitions
        if not old:
            return {}
        keys = [self._resize_key, self._partitions_key, *(self._stream(q) for q in range(old))]
        flat = self.client.eval(_SEAL, len(keys), *keys, self.partitions)
        return dict(enumerate(flat))

    # -- the partition count the store was sealed with ----------------------------------------
    @property
    def _partitions_key(self) -> str:
        return f"{self.prefix}:partitions"

    def stored_partitions(self):
        try:
            value = self.client.get(self._partitions_key)
        except RedisError as exc:
            raise BackendUnavailable(type(exc).__name__) from exc
        return int(value) if value is not None else None

    def record_partitions(self, count, *, replace=False):
        key = self._partitions_key
        try:
            if self.client.set(key, int(count), nx=not replace):
                return int(count)
            value = self.client.get(key)
        except RedisError as exc:
            raise BackendUnavailable(type(exc).__name__) from exc
        return int(value) if value is not None else int(count)

    def first_partitions(self):
        # A store first used (or emptied) after the raise was sealed: the new count.
        try:
            sealed = self.previous_partitions and self.client.exists(self._resize_key)
        except RedisError as exc:
            raise BackendUnavailable(type(exc).__name__) from exc
        return self.partitions if sealed else super().first_partitions()

    def waiting_partitions(self, count):
        pipe = self.client.pipeline(transaction=False)
        for p in range(count):
            pipe.xlen(self._stream(p))
            pipe.xlen(self._dead(p))
        try:
            replies = pipe.execute()
        except RedisError as exc:
            raise BackendUnavailable(type(exc).__name__) from exc
        return [p for p in range(count) if replies[2 * p] or replies[2 * p + 1]]

    # -- request path -----------------------------------------------------------------------
    def exchange(self, visitor_key, *, purpose, notice_version, now, events=(), claim=None):
        partition = self.partition_for(visitor_key)
        old = self.previous_partitions and int(visitor_key[:8], 16) % self.previous_partitions
        moving = bool(self.previous_partitions) and old != partition
        first = old if moving else partition
        keys = [
            self._m(visitor_key),
            self._stream(first),
            self._key("drain", first),
            self._key("shed", first),
        ]
        if moving:
            # Until the seal, the events of a visitor whose partition changes still go to
            # the old one (whatever count the recording process was started with); from
            # the seal on, to the new one, which is drained after the old one's earlier
            # events (partition_ready). The script decides, so no event falls in between.
            keys += [
                self._resize_key,
                self._stream(partition),
                self._key("drain", partition),
                self._key("shed", partition),
            ]
        args = [CONSENT_PREFIX + purpose, repr(now), notice_version, str(self.drain_flag_ttl_ms)]
        args += ("", "0") if claim is None else (str(claim[0]), str(claim[1]))
        args += self._shed_args
        for fields in events:
            args += (fields["k"], fields["d"])
        result = self._call_exchange(keys, args, wait=bool(events))
        status = result[0]
        honoured = None if claim is None else status != 2
        if status == -1:
            return Exchange(consented=None)
        if status != 1:
            return Exchange(consented=False, honoured=honoured)
        return Exchange(
            True,
            now=now,
            flat=result[2],
            drain_needed=bool(result[1]),
            shed=int(result[3]),
            honoured=honoured,
            assignments=_pairs(result[4]) if len(result) > 4 and result[4] else None,
            recommendations=_pairs(result[5]) if len(result) > 5 and result[5] else None,
        )

    def _call_exchange(self, keys: list[str], args: list[str], wait: bool = False) -> list:
        try:
            try:
                return self._round_trip(keys, args, wait)
            except NoScriptError:
                self.client.script_load(_EXCHANGE)  # the server forgot it (restart, flush)
                return self._round_trip(keys, args, wait)
        except ResponseError as exc:
            # The error's code only: the rest of an error reply may quote the call's data.
            raise BackendUnavailable(str(exc).split(" ", 1)[0]) from exc
        except RedisError as exc:
            raise BackendUnavailable(str(exc)) from exc

    def _request_connection(self) -> AbstractConnection:
        """This thread's connection for the request path, made by the client's pool.

        Made with the pool's connection class and settings (TLS for ``rediss://``, AUTH, the
        database, timeouts, health checks; a Sentinel pool's class finds the primary), but not
        taken from the pool's free list: it stays with its thread for the thread's life and is
        closed when the thread ends. redis-py's retries are off on it, whatever the pool's: a
        page waits at most one timeout, then renders default content. A forked child makes
        its own (a connection remembers the process that made it).

        Its timeouts are ``REQUEST_TIMEOUT`` (connecting and each reply), shorter than the
        workers' ``SOCKET_TIMEOUT``: a page never waits longer than that for the fast store,
        and the request path's breaker (:mod:`segments.recording`) stops asking a slow one."""
        held = getattr(self._local, "held", None)
        if held is None or held.connection.pid != os.getpid():
            held = self._local.held = self._hold(self.client.connection_pool)
        return held.connection

    def _hold(self, pool, **where) -> "_HeldConnection":
        kwargs = {
            **pool.connection_kwargs,
            **where,
            "retry": Retry(NoBackoff(), 0),
            "socket_timeout": self.request_timeout,
            "socket_connect_timeout": self.request_timeout,
        }
        return _HeldConnection(pool.connection_class(**kwargs))

    def _node_connection(self, host: str, port: int) -> AbstractConnection:
        """On a cluster, this thread's request connection to the node at ``host:port`` (one per
        node it has talked to), made like :meth:`_request_connection`'s."""
        held_by_node = getattr(self._local, "nodes", None)
        if held_by_node is None:
            held_by_node = self._local.nodes = {}
        held = held_by_node.get((host, port))
        if held is None or held.connection.pid != os.getpid():
            template = self.client.get_default_node().redis_connection.connection_pool
            held = held_by_node[(host, port)] = self._hold(template, host=host, port=port)
        return held.connection

    def _round_trip(self, keys: list[str], args: list[str], wait: bool = False) -> list:
        """EVALSHA of the exchange script: one packed command written, one reply read.

        This skips redis-py's client layer (connection checkout, command lookup, response
        callbacks), which is most of its cost per call; the connection itself (packing and
        parsing with hiredis, reconnecting, health checks) is redis-py's own."""
        call = ("EVALSHA", self._exchange.sha, len(keys), *keys, *args)
        # WAIT in the same write as the call, on the same connection (WAIT counts the
        # replicas holding this connection's writes): the reply comes once that many replicas
        # of the master that took the events hold them (or after WAIT_TIMEOUT_MS: then they
        # are accepted on the master alone).
        commands = [call]
        if wait and self.wait_replicas:
            commands.append(("WAIT", self.wait_replicas, self.wait_timeout_ms))
        if self.cluster:
            return self._cluster_round_trip(keys, commands)
        connection = self._request_connection()
        return _send(connection, _packed(connection, commands), replies=len(commands))

    def _cluster_round_trip(self, keys: list[str], commands: list[tuple]) -> list:
        """The exchange on a cluster: sent straight to the node that owns the partition's slot
        (every key of the call carries the partition's hash tag), as redis-py's slot map says.
        A ``MOVED`` reply (the slot has moved for good) updates that map and goes to the new
        owner; an ``ASK`` reply (the slot is being resharded and the visitor's keys have gone
        ahead) sends ``ASKING`` and the call to the importing node, in one write. A
        ``TRYAGAIN`` (the call's keys are split between the two nodes for the moment) and a
        failed node are the store being unavailable: the page renders default content and
        records nothing (no event is accepted that was not appended). A failed node also
        makes the thread's next call reload the slot map (a failover).

        ``commands`` is the call and, with ``WAIT_REPLICAS``, its ``WAIT``: both go to the node
        that takes the call (after ``ASKING`` on an ``ASK``), so the wait is for that master's
        replicas."""
        if getattr(self._local, "stale_map", False):
            self._local.stale_map = False
            self._routes.clear()
            self.client.nodes_manager.initialize()
        # keys[1] is the partition's stream: every key of the call is in its slot.
        route = self._routes.get(keys[1])
        if route is None:
            node = self.client.nodes_manager.get_node_from_slot(self.client.keyslot(keys[1]))
            route = self._routes[keys[1]] = (node.host, node.port)
        host, port = route
        try:
            for _ in range(3):  # a slot can move on while we follow it, but not for ever
                connection = self._node_connection(host, port)
                try:
                    return _send(connection, _packed(connection, commands), replies=len(commands))
                except MovedError as exc:
                    self._routes.clear()
                    self.client.nodes_manager.move_slot(exc)
                    host, port = exc.host, exc.port
                except AskError as exc:
                    connection = self._node_connection(exc.host, exc.port)
                    asked = [("ASKING",), *commands]
                    connection.send_packed_command(connection.pack_commands(asked))
                    return _read(connection, len(asked), index=1)
        except RedisConnectionError:
            self._local.stale_map = True
            raise
        raise ClusterError("TOOMANYREDIRECTS")

    def append_events(self, partition, events):
        stream = self._stream(partition)
        pipe = self.client.pipeline(transaction=False)
        for fields in events:
            pipe.xadd(stream, {"k": fields["k"], "d": fields["d"]})
        pipe.execute()

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except (RedisError, BackendUnavailable):
            return False

    def durability_problems(self) -> list[str]:
        try:
            if self.cluster:  # every master holds some partitions
                primaries = redis.RedisCluster.PRIMARIES
                persistence = self.client.info("persistence", target_nodes=primaries)
                memory = self.client.info("memory", target_nodes=primaries)
                servers = [(persistence[n], memory[n]) for n in persistence]
            else:
                servers = [(self.client.info("persistence"), self.client.info("memory"))]
        except (RedisError, BackendUnavailable):
            return []  # unreachable: segments.W001 says so
        problems = []
        if any(not int(persistence.get("aof_enabled", 0)) for persistence, _ in servers):
            problems.append(
                "Redis runs without its append-only file (appendonly no): a restart loses "
                "the events accepted but not yet drained"
            )
        for policy in sorted({m.get("maxmemory_policy", "noeviction") for _, m in servers}):
            if policy != "noeviction":
                problems.append(
                    f"Redis evicts keys when full (maxmemory-policy {policy}): it may drop the "
                    "event stream or consent mirrors"
                )
        return problems

    # -- consent mirror ---------------------------------------------------------------------
    def set_consent(self, visitor_key, grants, notice_version, ttl, *, standing="0:0"):
        args: list = [max(int(ttl), 1), notice_version, standing]
        for purpose, expiry in grants.items():
            args.extend((CONSENT_PREFIX + purpose, expiry))
        try:
            self._set_consent(keys=[self._m(visitor_key)], args=args, client=self.client)
        except RedisError as exc:
            raise BackendUnavailable(str(exc)) from exc

    # -- workers ----------------------------------------------------------------------------
    def lock_partition(self, partition, token, ttl_ms):
        return bool(self.client.set(self._key("lock", partition), token, nx=True, px=ttl_ms))

    def refresh_lock(self, partition: int, token: str, ttl_ms: int) -> bool:
        return bool(
            self._refresh(
                keys=[self._key("lock", partition)], args=[token, ttl_ms], client=self.client
            )
        )

    def unlock_partition(self, partition, token):
        self._unlock(keys=[self._key("lock", partition)], args=[token], client=self.client)

    def clear_drain_flag(self, partition):
        self.client.delete(self._key("drain", partition))

    def set_drain_flag(self, partition):
        return bool(
            self.client.set(self._key("drain", partition), "1", nx=True, px=self.drain_flag_ttl_ms)
        )

    def _ensure_group(self, stream: str) -> None:
        if stream in self._groups_ready:
            return
        try:
            # From the stream's first entry, not "$": events appended before the group existed
            # (the request path's XADD recreates a stream after Redis restarted empty) are
            # delivered too.
            self.client.xgroup_create(stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups_ready.add(stream)

    def _with_group(self, stream: str, call):
        """``call()`` (a command naming the consumer group), recreating the group and trying
        once more if the server no longer has it: Redis restarted empty, or the stream was
        deleted, while this process remembered the group as made. Without this, every drain
        would fail with NOGROUP until the worker restarted."""
        self._ensure_group(stream)
        try:
            return call()
        except ResponseError as exc:
            if not str(exc).startswith("NOGROUP"):
                raise
        self._groups_ready.discard(stream)
        self._ensure_group(stream)
        return call()

    def read_batch(self, partition, consumer, count, *, reclaim=False, block_ms=0):
        stream = self._stream(partition)
        if reclaim:
            # We hold the partition's lock, so anything pending belongs to a drain that died.
            _next, claimed, *_ = self._with_group(
                stream,
                lambda: self.client.xautoclaim(
                    stream, GROUP, consumer, min_idle_time=0, start_id="0-0", count=count
                ),
            )
            entries = [StreamEntry(i, f) for i, f in claimed if f is not None]
            if entries:
                return entries
        response = self._with_group(
            stream,
            lambda: self.client.xreadgroup(
                GROUP, consumer, {stream: ">"}, count=count, block=block_ms or None
            ),
        )
        if not response:
            return []
        return [StreamEntry(i, f) for i, f in response[0][1]]

    def wait_for_events(self, timeout_ms):
        if self.cluster:
            return False  # one XREAD cannot wait on streams in several slots
        streams = {self._stream(p): "$" for p in range(self.partitions)}
        try:
            return bool(self.client.xread(streams, count=1, block=max(int(timeout_ms), 1)))
        except RedisError:  # a linger longer than the socket timeout: as if nothing came
            return False

    def _dead(self, partition: int) -> str:
        return self._key("dead", partition)

    def record_attempt(self, partition, entry_id):
        key = self._key("attempts", partition)
        pipe = self.client.pipeline(transaction=True)
        pipe.hincrby(key, entry_id, 1)
        pipe.expire(key, 86400)  # counts of entries that later went through fade away
        return int(pipe.execute()[0])

    def dead_letter(self, partition, entry, error, attempts):
        stream = self._stream(partition)
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(
            self._dead(partition),
            {
                **entry.fields,
                "_id": entry.entry_id,
                "_error": error,
                "_attempts": str(attempts),
                "_at": repr(time.time()),
            },
        )
        pipe.xack(stream, GROUP, entry.entry_id)
        pipe.xdel(stream, entry.entry_id)
        pipe.hdel(self._key("attempts", partition), entry.entry_id)
        pipe.execute()

    def dead_letters(self, partition=None, limit=500):
        partitions = range(self.partitions) if partition is None else [partition]
        pipe = self.client.pipeline(transaction=False)
        for p in partitions:
            pipe.xrange(self._dead(p), count=limit)
        found = [
            _dead_letter(p, entry_id, fields)
            for p, entries in zip(partitions, pipe.execute(), strict=True)
            for entry_id, fields in entries
        ]
        found.sort(key=lambda d: (d.at, d.partition))
        return found[:limit]

    def _dead_fields(self, partition: int, entry_id: str) -> dict | None:
        found = self.client.xrange(self._dead(partition), entry_id, entry_id)
        return found[0][1] if found else None

    def requeue_dead_letter(self, partition, entry_id):
        fields = self._dead_fields(partition, entry_id)
        if fields is None:
            return False
        original = {k: v for k, v in fields.items() if not k.startswith("_")}
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self._stream(partition), original)
        pipe.xdel(self._dead(partition), entry_id)
        pipe.execute()
        return True

    def discard_dead_letter(self, partition, entry_id):
        return bool(self.client.xdel(self._dead(partition), entry_id))

    def load_visitors(self, keys):
        if not keys:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(self._m(key))
        fields = pipe.execute()
        profiles = self._mget_raw([self._f(key) for key in keys])
        return {
            key: VisitorState(profile=_unpack(profiles[n]), fields=fields[n])
            for n, key in enumerate(keys)
        }

    def _mget_raw(self, keys: list[str]) -> list:
        # A cluster answers MGET for keys of one slot only: there, one GET per key, pipelined
        # by node.
        return self.raw.mget_nonatomic(keys) if self.cluster else self.raw.mget(keys)

    def commit(self, partition, updates, acked, size_deltas=None):
        stream = self._stream(partition)
        # Profiles first (compressed, through the binary connection), then memberships and the
        # acknowledgement together. A crash in between is harmless: the entries are delivered
        # again, and applying them to a profile that already holds them changes nothing.
        if updates:
            raw = self.raw.pipeline(transaction=False)
            for u in updates:
                raw.set(self._f(u.visitor_key), _pack(u.profile), ex=self.profile_ttl)
            raw.execute()
        pipe = self.client.pipeline(transaction=True)
        due_add: dict[str, float] = {}
        due_remove: list[str] = []
        new_profiles = 0
        for u in updates:
            m = self._m(u.visitor_key)
            if u.due == math.inf:
                due_remove.append(u.visitor_key)
            else:
                due_add[u.visitor_key] = u.due
            new_profiles += u.new_profile
            if u.removed_memberships:
                pipe.hdel(m, *(SEGMENT_PREFIX + s for s in u.removed_memberships))
            if u.set_memberships:
                pipe.hset(
                    m,
                    mapping={SEGMENT_PREFIX + s: repr(t) for s, t in u.set_memberships.items()},
                )
            if u.delete_fields:
                pipe.hdel(m, *u.delete_fields)
            if u.set_fields:
                pipe.hset(m, mapping=u.set_fields)
        due, sizes = self._counter("due", partition), self._counter("sizes", partition)
        if due_add:
            pipe.zadd(due, due_add)
        if due_remove:
            pipe.zrem(due, *due_remove)
        for slug, delta in (size_deltas or {}).items():
            if delta:
                pipe.hincrby(sizes, slug, delta)
        if new_profiles:
            pipe.incrby(self._counter("nprofiles", partition), new_profiles)
        if acked:
            pipe.xack(stream, GROUP, *acked)
            # Exactly the acknowledged entries are deleted, never a range: an older entry may
            # still be waiting (one being retried, or on its way to the dead letters), and an
            # accepted entry is only ever removed once it is done.
            pipe.xdel(stream, *acked)
        pipe.execute()

    def due_visitors(self, now, limit):
        pipe = self.client.pipeline(transaction=False)
        for key in self._counters("due"):
            pipe.zrangebyscore(key, "-inf", now, start=0, num=limit, withscores=True)
        due = sorted((at, key) for found in pipe.execute() for key, at in found)
        return [key for _, key in due[:limit]]

    def segment_sizes(self):
        pipe = self.client.pipeline(transaction=False)
        for key in self._counters("sizes"):
            pipe.hgetall(key)
        sizes: dict[str, int] = {}
        for found in pipe.execute():
            for slug, n in found.items():
                sizes[slug] = sizes.get(slug, 0) + int(n)
        return {slug: max(n, 0) for slug, n in sizes.items()}

    def profile_count(self):
        pipe = self.client.pipeline(transaction=False)
        for key in self._counters("nprofiles"):
            pipe.get(key)
        return sum(int(n or 0) for n in pipe.execute())

    def sample_profiles(self, limit):
        keys = []
        for key in self.client.scan_iter(match=self._profiles_match, count=1000):
            keys.append(key)
            if len(keys) >= limit:
                break
        return [_unpack(v) for v in self._mget_raw(keys) if v] if keys else []

    def visitor_keys(self, batch=1000):
        keys: list[str] = []
        for key in self.client.scan_iter(match=self._profiles_match, count=batch):
            keys.append(key.rpartition(":")[2])  # visitor keys are hex digests
            if len(keys) >= batch:
                yield keys
                keys = []
        if keys:
            yield keys

    def pending_partitions(self):
        """Partitions with entries delivered but not acknowledged, or not delivered yet."""
        pipe = self.client.pipeline(transaction=False)
        for p in range(self.partitions):
            pipe.xinfo_stream(self._stream(p))
            pipe.xinfo_groups(self._stream(p))
        replies = pipe.execute(raise_on_error=False)
        result = []
        for p in range(self.partitions):
            stream, groups = replies[2 * p], replies[2 * p + 1]
            if isinstance(stream, Exception):
                continue  # no stream yet
            group = (
                next((g for g in groups if g["name"] == GROUP), None)
                if isinstance(groups, list)
                else None
            )
            if group is None:
                if stream["length"]:
                    result.append(p)
                continue
            delivered = _id(group["last-delivered-id"])
            if group["pending"] or _id(stream["last-generated-id"]) > delivered:
                result.append(p)
        return result

    def stale_partitions(self, idle_ms):
        pipe = self.client.pipeline(transaction=False)
        for p in range(self.partitions):
            pipe.xpending_range(self._stream(p), GROUP, "-", "+", 1, idle=int(idle_ms))
        replies = pipe.execute(raise_on_error=False)
        return [p for p, r in enumerate(replies) if isinstance(r, list) and r]

    def erase_visitor(self, visitor_key):
        partition = self.partition_for(visitor_key)
        sizes = self._counter("sizes", partition)
        # On a cluster a visitor's keys carry their partition's hash tag: only this process's
        # count can address them (and a cluster refuses PREVIOUS_PARTITIONS).
        partitions = [partition] if self.cluster else self.erasure_partitions(visitor_key)
        doomed, dead = {}, {}
        for p in partitions:
            stream, dead_stream = self._stream(p), self._dead(p)
            doomed[p] = [i for i, f in self.client.xrange(stream) if f.get("k") == visitor_key]
            dead[p] = [i for i, f in self.client.xrange(dead_stream) if f.get("k") == visitor_key]
        m = self._m(visitor_key)
        fields = self.client.hkeys(m)
        memberships = [f for f in fields if f.startswith(SEGMENT_PREFIX)]
        assignments = [
            f for f in fields if f.startswith((ASSIGNMENT_PREFIX, RECOMMENDATION_PREFIX))
        ]
        had_profile = self.client.exists(self._f(visitor_key))
        pipe = self.client.pipeline(transaction=True)
        for p in partitions:
            if doomed[p]:
                pipe.xack(self._stream(p), GROUP, *doomed[p])
                pipe.xdel(self._stream(p), *doomed[p])
            if dead[p]:  # dead letters are the visitor's events too
                pipe.xdel(self._dead(p), *dead[p])
            pipe.zrem(self._counter("due", p), visitor_key)
        if memberships:
            pipe.hdel(m, *memberships)
            for field in memberships:
                pipe.hincrby(sizes, field[len(SEGMENT_PREFIX) :], -1)
        if assignments:
            pipe.hdel(m, *assignments)
        pipe.delete(self._f(visitor_key))
        if had_profile:
            pipe.decr(self._counter("nprofiles", partition))
        pipe.execute()
        return sum(map(len, doomed.values())) + sum(map(len, dead.values()))

    def visitor_data(self, visitor_key):
        return self.load_visitors([visitor_key])[visitor_key]

    def rename_visitor(self, old_key, new_key):
        old = self.visitor_data(old_key)
        if old.profile is not None:
            self.raw.set(self._f(new_key), _pack(old.profile), ex=self.profile_ttl)
        # On a cluster the two keys' hashes may live on two nodes: no MULTI across them, but
        # the new one is written before the old one goes (a crash in between keeps both).
        pipe = self.client.pipeline(transaction=not self.cluster)
        seg = {
            k: v
            for k, v in old.fields.items()
            if k.startswith((SEGMENT_PREFIX, ASSIGNMENT_PREFIX, RECOMMENDATION_PREFIX))
        }
        if seg:
            pipe.hset(self._m(new_key), mapping=seg)
        pipe.delete(self._f(old_key))
        pipe.delete(self._m(old_key))
        pipe.execute()

    def flush(self, keep_stream=False):
        keys = list(self.client.scan_iter(match=f"{self.prefix}:*", count=1000))
        if keep_stream:
            # Accepted events stay: the stream, its dead letters, who is draining it, and the
            # partition count they were recorded by.
            # The seal of a raise in progress too: without its marks the new partitions would
            # never be ready, and a moving visitor's next events would go to the old partition
            # again, ahead of the ones already waiting in the new one.
            resize = f"{self.prefix}:resize:"
            keys = [k for k in keys if k != self._partitions_key and not k.startswith(resize)]
            kinds = ("e", "lock", "dead", "attempts", "shed")
            if self.cluster:  # P:{p<n>}:<kind>
                keys = [k for k in keys if not (k.rpartition(":")[2] in kinds and "{p" in k)]
            else:
                stream_keys = tuple(f"{self.prefix}:{kind}:" for kind in kinds)
                keys = [k for k in keys if not k.startswith(stream_keys)]
        for n in range(0, len(keys), 500):
            self.client.delete(*keys[n : n + 500])
        self._groups_ready.clear()

    # -- operations -------------------------------------------------------------------------
    def stream_stats(self, now=None):
        now = time.time() if now is None else now
        streams = [self._stream(p) for p in range(self.partitions)]
        pipe = self.client.pipeline(transaction=False)
        for p, stream in enumerate(streams):
            pipe.xlen(stream)
            pipe.xinfo_groups(stream)
            pipe.xpending(stream, GROUP)
            pipe.xlen(self._dead(p))
            pipe.get(self._key("shed", p))
        replies = pipe.execute(raise_on_error=False)
        stats, oldest_of = [], {}
        for p in range(self.partitions):
            length, groups, pending, dead, shed = replies[5 * p : 5 * p + 5]
            group = (
                next((g for g in groups if g["name"] == GROUP), None)
                if isinstance(groups, list)
                else None
            )
            npending = pending["pending"] if isinstance(pending, dict) else 0
            lag = group.get("lag") if group else None
            # Acknowledged entries are deleted, so the rest were never delivered (the group's
            # own count where Redis keeps one).
            undelivered = max(length - npending, 0) if lag is None else int(lag)
            oldest_age = 0.0
            if npending:
                oldest_age = _age(pending["min"], now)
            elif undelivered:  # the first entry after the last one delivered
                oldest_of[p] = f"({group['last-delivered-id']}" if group else "-"
            stats.append(
                PartitionStats(
                    partition=p,
                    length=int(length),
                    pending=int(npending),
                    lag=undelivered,
                    dead_letters=dead if isinstance(dead, int) else 0,
                    shed=int(shed or 0) if not isinstance(shed, Exception) else 0,
                    oldest_age=oldest_age,
                    group=None if isinstance(groups, Exception) else group is not None,
                )
            )
        if oldest_of:
            pipe = self.client.pipeline(transaction=False)
            for p, start in oldest_of.items():
                pipe.xrange(streams[p], min=start, max="+", count=1)
            for p, first in zip(oldest_of, pipe.execute(), strict=True):
                if first:
                    stats[p] = replace(stats[p], oldest_age=_age(first[0][0], now))
        return stats

    def ensure_consumer_groups(self):
        pipe = self.client.pipeline(transaction=False)
        for p in range(self.partitions):
            pipe.xgroup_create(self._stream(p), GROUP, id="0", mkstream=True)
        created = []
        for p, reply in enumerate(pipe.execute(raise_on_error=False)):
            if isinstance(reply, ResponseError) and "BUSYGROUP" in str(reply):
                continue
            if isinstance(reply, Exception):
                raise BackendUnavailable(type(reply).__name__)
            created.append(p)
        return created

    def set_heartbeat(self, now):
        self.client.set(f"{self.prefix}:heartbeat", repr(now), ex=86_400)

    def heartbeat(self):
        value = self.client.get(f"{self.prefix}:heartbeat")
        return float(value) if value is not None else None


def _send(connection: AbstractConnection, command, replies: int = 1) -> list:
    """Write packed commands on the request path's own connection and read their ``replies``;
    returns the first."""
    reused = connection.is_connected
    try:
        _connect_sentinel_managed(connection)
        connection.send_packed_command(command)
        return _read(connection, replies)
    except RedisConnectionError as exc:
        # A connection the server dropped while idle (restart, client timeout) fails on
        # first use: reconnect once. Not after a timeout, which would double the wait, nor
        # after a refused AUTH or a LOADING reply (subclasses). A failed call has closed
        # the connection, so a half-read reply is never taken for the next one. (A repeated
        # event is harmless: events are deduplicated by id.)
        if not reused or type(exc) is not RedisConnectionError:
            raise
    _connect_sentinel_managed(connection)
    connection.send_packed_command(command)
    return _read(connection, replies)


def _packed(connection: AbstractConnection, commands: list[tuple]):
    """One write of ``commands`` (the common single call packed without a pipeline's cost)."""
    if len(commands) == 1:
        return connection.pack_command(*commands[0])
    return connection.pack_commands(commands)


def _connect_sentinel_managed(connection: AbstractConnection) -> None:
    # Sending connects a connection that is not connected, but to its host as it stands (a
    # default one at first): a Sentinel pool's connection learns the master's address from
    # the Sentinels in its own connect() only.
    if not connection.is_connected and isinstance(connection, SentinelManagedConnection):
        connection.connect()


def _read(connection: AbstractConnection, replies: int, index: int = 0) -> list:
    """Read ``replies`` replies; return the one at ``index``.

    Every reply is read before an error reply is raised: a reply left unread would be taken
    for the next call's."""
    wanted, error = None, None
    for n in range(replies):
        try:
            reply = connection.read_response()
        except ResponseError as exc:
            error = error or exc
            continue
        if n == index:
            wanted = reply
    if error is not None:
        raise error
    return wanted


def _pairs(flat: list) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _dead_letter(partition: int, entry_id: str, fields: dict[str, str]) -> DeadLetter:
    return DeadLetter(
        partition=partition,
        entry_id=entry_id,
        original_id=fields.get("_id", ""),
        fields={k: v for k, v in fields.items() if not k.startswith("_")},
        error=fields.get("_error", ""),
        attempts=int(fields.get("_attempts") or 0),
        at=float(fields.get("_at") or 0),
    )


class _HeldConnection:
    """A thread's request connection, closed as soon as the thread's local storage goes (or at
    interpreter exit).

    Dropping the connection alone would leave its socket open until a full garbage
    collection: redis-py's connection and its notification handlers refer to each other. (In a
    forked child, closing the parent's connection only closes the child's copy of the socket:
    redis-py shuts a socket down only in the process that opened it.)"""

    __slots__ = ("__weakref__", "connection")

    def __init__(self, connection: AbstractConnection):
        self.connection = connection
        weakref.finalize(self, connection.disconnect)


def _id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _age(entry_id: str, now: float) -> float:
    return max(now - _id(entry_id)[0] / 1000, 0.0)


# Profiles are small JSON documents with the same keys over and over: deflate with a preset
# dictionary of those keys stores them in about a third of their size (see the memory
# benchmark). The first byte says how a value is stored, so the format can change.
_ZDICT = (
    b'"b":{"t":{"lt":{"page_view":"click":"add_to_cart":"purchase":"scroll":"signup":'
    b'"@category=","@page_type=","d":["h":["m":["e":["a":{"c":{"device":"desktop","mobile",'
    b'"referrer":"utm_campaign":"p":["r":["s":"o":["i":[1,"f":17'
)
_DEFLATE_WITH_DICT = b"\x01"


def _pack(profile: str) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, _ZDICT)
    return _DEFLATE_WITH_DICT + compressor.compress(profile.encode()) + compressor.flush()


def _unpack(value: bytes | None) -> str | None:
    if value is None:
        return None
    if value[:1] == _DEFLATE_WITH_DICT:
        decompressor = zlib.decompressobj(-15, _ZDICT)
        return (decompressor.decompress(value[1:]) + decompressor.flush()).decode()
    if value[:1] == b"{":  # stored uncompressed (before compression was introduced)
        return value.decode()
    return zlib.decompress(value).decode()
