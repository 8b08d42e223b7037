"""Production backend: Redis Streams for events, hashes and strings for the fast store.

Layout (``P`` is the key prefix):

- ``P:e:<partition>``  stream of events, consumer group ``segments``
- ``P:m:<visitor>``    hash: ``s:<slug>`` -> membership end, ``_c:<purpose>`` -> consent expiry,
                       ``_nv`` -> notice version
- ``P:f:<visitor>``    string: the visitor's features (compact JSON)
- ``P:drain:<p>``      flag: a drain of partition p is scheduled or running
- ``P:lock:<p>``       lock: the drain holding partition p (a few seconds, renewed while held)
- ``P:dead:<p>``       stream of partition p's dead letters (entries the drain gave up on)
- ``P:attempts:<p>``   hash: entry id -> failed attempts at applying it
- ``P:shed:<p>``       counter: events refused at intake while partition p was over its cap
"""

import math
import os
import threading
import time
import weakref
import zlib
from dataclasses import replace

import redis
from redis.backoff import NoBackoff
from redis.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.retry import Retry

from .base import (
    CONSENT_PREFIX,
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

# KEYS: membership hash, stream, drain flag, shed counter. ARGV: consent field, now, notice
# version, drain flag ttl (ms), the stream's cap (0: none), the number S of sheddable prefixes,
# the S prefixes, then for each event its "k" and "d" field values (none: read only).
# Returns {-1} (no consent state), {0} (not consented) or {1, drain scheduled?, [slug, until...],
# events shed} with the memberships that end after now only (an unreadable end counts as
# ended). Over the cap, events whose "d" starts with a sheddable prefix are not appended.
_EXCHANGE = """
local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then return {-1} end
local now = tonumber(ARGV[2])
local exp, nv
local memberships = {}
for i = 1, #h, 2 do
  local f = h[i]
  if string.sub(f, 1, 2) == 's:' then
    local untilv = tonumber(h[i + 1])
    if untilv and untilv > now then
      memberships[#memberships + 1] = string.sub(f, 3)
      memberships[#memberships + 1] = h[i + 1]
    end
  elseif f == ARGV[1] then exp = h[i + 1]
  elseif f == '_nv' then nv = h[i + 1] end
end
if (not exp) or tonumber(exp) <= now or nv ~= ARGV[3] then return {0} end
local drain = 0
local shed = 0
local nshed = tonumber(ARGV[6])
local first = 7 + nshed
if #ARGV >= first then
  local cap = tonumber(ARGV[5])
  local over = cap > 0 and redis.call('XLEN', KEYS[2]) >= cap
  local added = 0
  for i = first, #ARGV, 2 do
    local drop = false
    if over then
      for j = 7, first - 1 do
        if string.sub(ARGV[i + 1], 1, #ARGV[j]) == ARGV[j] then drop = true break end
      end
    end
    if drop then
      shed = shed + 1
    else
      redis.call('XADD', KEYS[2], '*', 'k', ARGV[i], 'd', ARGV[i + 1])
      added = added + 1
    end
  end
  if shed > 0 then redis.call('INCRBY', KEYS[4], shed) end
  if added > 0 and redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[4]) then drain = 1 end
end
return {1, drain, memberships, shed}
"""

# KEYS: membership hash. ARGV: ttl, notice version, then purpose-field/expiry pairs.
_SET_CONSENT = """
local h = redis.call('HKEYS', KEYS[1])
for _, f in ipairs(h) do
  if string.sub(f, 1, 3) == '_c:' then redis.call('HDEL', KEYS[1], f) end
end
redis.call('HSET', KEYS[1], '_nv', ARGV[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
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
    return redis.Redis.from_url(
        options["URL"],
        decode_responses=decode_responses,
        socket_timeout=float(options.get("SOCKET_TIMEOUT", 0.5)),
        socket_connect_timeout=float(options.get("CONNECT_TIMEOUT", 0.5)),
        health_check_interval=30,
    )


class RedisBackend(BaseBackend):
    def __init__(self, options: dict):
        super().__init__(options)
        self.prefix = options.get("KEY_PREFIX", "tailored")
        self.client = _connect(options, decode_responses=True)
        # Profiles are stored compressed, so they go through a binary connection.
        self.raw = _connect(options, decode_responses=False)
        self._exchange = self.client.register_script(_EXCHANGE)
        self._local = threading.local()  # the request path's connection, one per thread
        self.request_timeout = float(options.get("REQUEST_TIMEOUT", 0.1))
        self._set_consent = self.client.register_script(_SET_CONSENT)
        self._unlock = self.client.register_script(_UNLOCK)
        self._refresh = self.client.register_script(_REFRESH)
        self._shed_args = [str(self.max_length), str(len(self.shed_events))]
        self._shed_args += [shed_prefix(name) for name in self.shed_events]
        self._groups_ready: set[str] = set()
        self._due = f"{self.prefix}:due"
        self._sizes = f"{self.prefix}:sizes"

    # -- keys -------------------------------------------------------------------------------
    def _m(self, visitor_key: str) -> str:
        return f"{self.prefix}:m:{visitor_key}"

    def _f(self, visitor_key: str) -> str:
        return f"{self.prefix}:f:{visitor_key}"

    def _stream(self, partition: int) -> str:
        return f"{self.prefix}:e:{partition}"

    # -- request path -----------------------------------------------------------------------
    def exchange(self, visitor_key, *, purpose, notice_version, now, events=()):
        partition = self.partition_for(visitor_key)
        keys = [
            self._m(visitor_key),
            self._stream(partition),
            f"{self.prefix}:drain:{partition}",
            f"{self.prefix}:shed:{partition}",
        ]
        args = [CONSENT_PREFIX + purpose, repr(now), notice_version, str(self.drain_flag_ttl_ms)]
        args += self._shed_args
        for fields in events:
            args += (fields["k"], fields["d"])
        result = self._call_exchange(keys, args)
        status = result[0]
        if status == -1:
            return Exchange(consented=None)
        if status == 0:
            return Exchange(consented=False)
        return Exchange(
            True, now=now, flat=result[2], drain_needed=bool(result[1]), shed=int(result[3])
        )

    def _call_exchange(self, keys: list[str], args: list[str]) -> list:
        try:
            try:
                return self._round_trip(keys, args)
            except NoScriptError:
                self.client.script_load(_EXCHANGE)  # the server forgot it (restart, flush)
                return self._round_trip(keys, args)
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
            pool = self.client.connection_pool
            kwargs = {
                **pool.connection_kwargs,
                "retry": Retry(NoBackoff(), 0),
                "socket_timeout": self.request_timeout,
                "socket_connect_timeout": self.request_timeout,
            }
            held = self._local.held = _HeldConnection(pool.connection_class(**kwargs))
        return held.connection

    def _round_trip(self, keys: list[str], args: list[str]) -> list:
        """EVALSHA of the exchange script: one packed command written, one reply read.

        This skips redis-py's client layer (connection checkout, command lookup, response
        callbacks), which is most of its cost per call; the connection itself (packing and
        parsing with hiredis, reconnecting, health checks) is redis-py's own."""
        connection = self._request_connection()
        command = connection.pack_command("EVALSHA", self._exchange.sha, len(keys), *keys, *args)
        reused = connection.is_connected
        try:
            connection.send_packed_command(command)
            return connection.read_response()
        except RedisConnectionError as exc:
            # A connection the server dropped while idle (restart, client timeout) fails on
            # first use: reconnect once. Not after a timeout, which would double the wait, nor
            # after a refused AUTH or a LOADING reply (subclasses). A failed call has closed
            # the connection, so a half-read reply is never taken for the next one. (A repeated
            # event is harmless: events are deduplicated by id.)
            if not reused or type(exc) is not RedisConnectionError:
                raise
        connection.send_packed_command(command)
        return connection.read_response()

    def append_events(self, partition, events):
        stream = self._stream(partition)
        pipe = self.client.pipeline(transaction=False)
        for fields in events:
            pipe.xadd(stream, {"k": fields["k"], "d": fields["d"]})
        pipe.execute()

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except RedisError:
            return False

    def durability_problems(self) -> list[str]:
        try:
            persistence = self.client.info("persistence")
            memory = self.client.info("memory")
        except RedisError:
            return []  # unreachable: segments.W001 says so
        problems = []
        if not int(persistence.get("aof_enabled", 0)):
            problems.append(
                "Redis runs without its append-only file (appendonly no): a restart loses "
                "the events accepted but not yet drained"
            )
        policy = memory.get("maxmemory_policy", "noeviction")
        if policy != "noeviction":
            problems.append(
                f"Redis evicts keys when full (maxmemory-policy {policy}): it may drop the "
                "event stream or consent mirrors"
            )
        return problems

    # -- consent mirror ---------------------------------------------------------------------
    def set_consent(self, visitor_key, grants, notice_version, ttl):
        args: list = [max(int(ttl), 1), notice_version]
        for purpose, expiry in grants.items():
            args.extend((CONSENT_PREFIX + purpose, expiry))
        try:
            self._set_consent(keys=[self._m(visitor_key)], args=args)
        except RedisError as exc:
            raise BackendUnavailable(str(exc)) from exc

    # -- workers ----------------------------------------------------------------------------
    def lock_partition(self, partition, token, ttl_ms):
        return bool(self.client.set(f"{self.prefix}:lock:{partition}", token, nx=True, px=ttl_ms))

    def refresh_lock(self, partition: int, token: str, ttl_ms: int) -> bool:
        return bool(self._refresh(keys=[f"{self.prefix}:lock:{partition}"], args=[token, ttl_ms]))

    def unlock_partition(self, partition, token):
        self._unlock(keys=[f"{self.prefix}:lock:{partition}"], args=[token])

    def clear_drain_flag(self, partition):
        self.client.delete(f"{self.prefix}:drain:{partition}")

    def set_drain_flag(self, partition):
        return bool(
            self.client.set(
                f"{self.prefix}:drain:{partition}", "1", nx=True, px=self.drain_flag_ttl_ms
            )
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
        streams = {self._stream(p): "$" for p in range(self.partitions)}
        try:
            return bool(self.client.xread(streams, count=1, block=max(int(timeout_ms), 1)))
        except RedisError:  # a linger longer than the socket timeout: as if nothing came
            return False

    def _dead(self, partition: int) -> str:
        return f"{self.prefix}:dead:{partition}"

    def record_attempt(self, partition, entry_id):
        key = f"{self.prefix}:attempts:{partition}"
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
        pipe.hdel(f"{self.prefix}:attempts:{partition}", entry.entry_id)
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
        profiles = self.raw.mget([self._f(key) for key in keys])
        return {
            key: VisitorState(profile=_unpack(profiles[n]), fields=fields[n])
            for n, key in enumerate(keys)
        }

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
        if due_add:
            pipe.zadd(self._due, due_add)
        if due_remove:
            pipe.zrem(self._due, *due_remove)
        for slug, delta in (size_deltas or {}).items():
            if delta:
                pipe.hincrby(self._sizes, slug, delta)
        if new_profiles:
            pipe.incrby(f"{self.prefix}:nprofiles", new_profiles)
        if acked:
            pipe.xack(stream, GROUP, *acked)
            # Exactly the acknowledged entries are deleted, never a range: an older entry may
            # still be waiting (one being retried, or on its way to the dead letters), and an
            # accepted entry is only ever removed once it is done.
            pipe.xdel(stream, *acked)
        pipe.execute()

    def due_visitors(self, now, limit):
        return list(self.client.zrangebyscore(self._due, "-inf", now, start=0, num=limit))

    def segment_sizes(self):
        return {k: max(int(v), 0) for k, v in self.client.hgetall(self._sizes).items()}

    def profile_count(self):
        return int(self.client.get(f"{self.prefix}:nprofiles") or 0)

    def sample_profiles(self, limit):
        keys = []
        for key in self.client.scan_iter(match=f"{self.prefix}:f:*", count=1000):
            keys.append(key)
            if len(keys) >= limit:
                break
        return [_unpack(v) for v in self.raw.mget(keys) if v] if keys else []

    def visitor_keys(self, batch=1000):
        start = len(self._f(""))
        keys: list[str] = []
        for key in self.client.scan_iter(match=f"{self.prefix}:f:*", count=batch):
            keys.append(key[start:])
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
        stream = self._stream(self.partition_for(visitor_key))
        doomed = [i for i, f in self.client.xrange(stream) if f.get("k") == visitor_key]
        dead_stream = self._dead(self.partition_for(visitor_key))
        dead = [i for i, f in self.client.xrange(dead_stream) if f.get("k") == visitor_key]
        m = self._m(visitor_key)
        memberships = [f for f in self.client.hkeys(m) if f.startswith(SEGMENT_PREFIX)]
        had_profile = self.client.exists(self._f(visitor_key))
        pipe = self.client.pipeline(transaction=True)
        if doomed:
            pipe.xack(stream, GROUP, *doomed)
            pipe.xdel(stream, *doomed)
        if dead:  # dead letters are the visitor's events too
            pipe.xdel(dead_stream, *dead)
        if memberships:
            pipe.hdel(m, *memberships)
            for field in memberships:
                pipe.hincrby(self._sizes, field[len(SEGMENT_PREFIX) :], -1)
        pipe.delete(self._f(visitor_key))
        pipe.zrem(self._due, visitor_key)
        if had_profile:
            pipe.decr(f"{self.prefix}:nprofiles")
        pipe.execute()
        return len(doomed) + len(dead)

    def visitor_data(self, visitor_key):
        return self.load_visitors([visitor_key])[visitor_key]

    def rename_visitor(self, old_key, new_key):
        old = self.visitor_data(old_key)
        if old.profile is not None:
            self.raw.set(self._f(new_key), _pack(old.profile), ex=self.profile_ttl)
        pipe = self.client.pipeline(transaction=True)
        seg = {k: v for k, v in old.fields.items() if k.startswith(SEGMENT_PREFIX)}
        if seg:
            pipe.hset(self._m(new_key), mapping=seg)
        pipe.delete(self._f(old_key), self._m(old_key))
        pipe.execute()

    def flush(self, keep_stream=False):
        keys = list(self.client.scan_iter(match=f"{self.prefix}:*", count=1000))
        if keep_stream:
            # Accepted events stay: the stream, its dead letters, and who is draining it.
            stream_keys = tuple(
                f"{self.prefix}:{part}:" for part in ("e", "lock", "dead", "attempts", "shed")
            )
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
            pipe.get(f"{self.prefix}:shed:{p}")
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
