"""The store on a real Redis Cluster of the suite's own (three masters, each with a replica,
tests.support.cluster): one slot per partition's keys, a resharding while events flow, and
``WAIT_REPLICAS`` on the master that took a page's events (issue #17, points 1 and 2)."""

import io
import threading
import time

import orjson
import pytest
import redis
from django.conf import settings as django_settings

from consent.api import grant_imported, notice_version
from segments.api import get_backend
from segments.backends.base import BackendUnavailable
from segments.backends.redis import RedisBackend
from segments.models import LoggedEvent
from segments.stream import drain as pipeline
from tests.segments.test_drain import _consent, keys_in_partitions
from tests.support.flow import click_until, send_click

pytestmark = [pytest.mark.services, pytest.mark.django_db]


@pytest.fixture
def clustered(settings, redis_cluster):
    prefix = f"{django_settings.SEGMENTS_BACKEND['OPTIONS']['KEY_PREFIX']}-cluster"
    settings.SEGMENTS_BACKEND = {
        "BACKEND": "segments.backends.redis.RedisBackend",
        "OPTIONS": {"URL": redis_cluster.url, "CLUSTER": True, "KEY_PREFIX": prefix},
    }
    backend = get_backend()
    assert isinstance(backend, RedisBackend) and backend.cluster
    backend.flush()
    yield backend
    backend.flush()


def test_every_key_of_a_partition_lives_in_one_slot(clustered):
    backend = clustered
    keys = keys_in_partitions(backend)
    for n, key in enumerate(keys):
        _consent(key)
        assert send_click(backend, key, n, notice_version())
    assert pipeline.drain_partition(0).processed == len(keys)
    for key in keys:
        p = backend.partition_for(key)
        slot = backend.client.keyslot(backend._stream(p))
        assert backend.client.keyslot(backend._m(key)) == slot
        assert backend.client.keyslot(backend._f(key)) == slot
        for kind in ("drain", "lock", "dead", "attempts", "shed"):
            assert backend.client.keyslot(backend._key(kind, p)) == slot
        for kind in ("due", "sizes", "nprofiles"):
            assert backend.client.keyslot(backend._counter(kind, p)) == slot
    # The partitions spread over the masters.
    owners = {redis_owner(backend, p) for p in range(backend.partitions)}
    assert len(owners) > 1
    assert backend.profile_count() == len(keys)
    assert LoggedEvent.objects.count() == len(keys)


def redis_owner(backend, partition: int) -> str:
    slot = backend.client.keyslot(backend._stream(partition))
    return backend.client.nodes_manager.get_node_from_slot(slot).name


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_resharding_while_events_flow_loses_none_and_counts_none_twice(clustered, redis_cluster):
    """Every partition's slot moves to another master, one key at a time, while visitors keep
    sending events and a drain keeps applying them: each accepted event is logged once and
    counted once in its visitor's features; a refused one (the visitor's keys in two places
    for a moment) is not recorded anywhere."""
    backend = clustered
    # The visitors' side is another process's store (a web server's): its slot map learns
    # of the moves from its own requests only.
    web = RedisBackend(dict(backend.options))
    keys = keys_in_partitions(backend, per_partition=3)
    for key in keys:
        _consent(key)
    accepted = dict.fromkeys(keys, 0)
    refused = [0]
    version = notice_version()
    stop = threading.Event()

    writer = threading.Thread(
        target=click_until,
        args=(stop, web, keys, version, accepted, refused),
        kwargs={"round_pause": 0.002},
        daemon=True,
    )
    writer.start()
    try:
        time.sleep(0.3)
        moved = 0
        for p in range(backend.partitions):
            slot = backend.client.keyslot(backend._stream(p))
            source = redis_cluster.owner(slot)
            target = next(port for port in redis_cluster.ports if port != source)
            pipeline.drain_partition(p, max_seconds=0.2)
            moved += redis_cluster.move_slot(slot, target, pause=0.01)
            pipeline.drain_partition(p, max_seconds=0.2)
            assert redis_cluster.owner(slot) == target
        assert moved > len(keys)  # the visitors' hashes and profiles, and the streams
        time.sleep(0.3)
    finally:
        stop.set()
        writer.join(timeout=10)
    # After the moves, the request path finds each visitor's new master (MOVED followed).
    for key in keys:
        assert send_click(web, key, -1, version)
        accepted[key] += 1
    total = sum(accepted.values())
    assert total > 100
    print(f"accepted {total}, refused {refused[0]}, keys moved {moved}")
    deadline = time.monotonic() + 30
    while backend.pending_partitions() and time.monotonic() < deadline:
        pipeline.drain_partition(0, max_seconds=2)
    assert backend.pending_partitions() == []
    assert backend.dead_letters() == []
    assert LoggedEvent.objects.filter(name="click").count() == total
    for key in keys:
        profile = orjson.loads(backend.visitor_data(key).profile)
        assert profile["t"].get("click", 0) == accepted[key], key[:8]


def test_a_cluster_down_when_the_process_starts_costs_default_content_not_an_error(settings):
    from tests.support.faults import free_port

    settings.SEGMENTS_BACKEND = {
        "BACKEND": "segments.backends.redis.RedisBackend",
        "OPTIONS": {"URL": f"redis://127.0.0.1:{free_port()}/0", "CLUSTER": True},
    }
    backend = get_backend()  # made without asking the cluster anything
    assert not backend.ping()
    with pytest.raises(BackendUnavailable):
        send_click(backend, "0" * 32, 1, "1")


def test_the_deployment_checks_read_every_master(clustered):
    # The suite's cluster keeps an append-only file and evicts nothing.
    assert clustered.durability_problems() == []


def test_the_fast_store_is_rebuilt_on_a_cluster_from_the_durable_log(clustered):
    """What moving a site to a cluster does (docs/installation.md): the stream and its group
    stay, everything else is made again from PostgreSQL."""
    from segments.stream.rebuild import rebuild

    backend = clustered
    keys = keys_in_partitions(backend)
    grant_imported(keys, frozenset({"personalization"}))  # the durable consent records
    for n, key in enumerate(keys):
        _consent(key)
        assert send_click(backend, key, n, notice_version())
    pipeline.drain_partition(0)
    before = {key: orjson.loads(backend.visitor_data(key).profile)["t"] for key in keys}
    stats = rebuild()
    assert stats["visitors"] == len(keys)
    assert {key: orjson.loads(backend.visitor_data(key).profile)["t"] for key in keys} == before
    assert backend.profile_count() == len(keys)
    assert sorted(k for batch in backend.visitor_keys() for k in batch) == sorted(keys)


def _waits(redis_cluster, port: int) -> int:
    """How many WAIT commands the server on ``port`` has run."""
    stats = redis_cluster.node(port).info("commandstats")
    return int(stats.get("cmdstat_wait", {}).get("calls", 0))


def _waiting_backend(settings, redis_cluster, name: str):
    """The cluster's backend with ``WAIT_REPLICAS`` 1, under its own key prefix; its wait is
    longer than production's, so that it shows on a loaded machine."""
    settings.SEGMENTS_BACKEND = {
        "BACKEND": "segments.backends.redis.RedisBackend",
        "OPTIONS": {
            "URL": redis_cluster.url,
            "CLUSTER": True,
            "KEY_PREFIX": f"{django_settings.SEGMENTS_BACKEND['OPTIONS']['KEY_PREFIX']}-{name}",
            "WAIT_REPLICAS": 1,
            "WAIT_TIMEOUT_MS": 1500,
            "REQUEST_TIMEOUT": 5,
        },
    }
    return get_backend()


def test_wait_replicas_waits_for_the_replica_of_the_master_that_took_the_events(
    settings, redis_cluster
):
    """``WAIT_REPLICAS`` on a cluster (docs/installation.md, "How WAIT narrows it"): WAIT
    counts the replicas holding the writes of its own connection, so it goes, in the same
    write as the exchange, to the master that took the page's events. The round trip returns
    once that master's replica holds them; with that replica stopped, it waits
    ``WAIT_TIMEOUT_MS`` and the events are accepted on the master alone. A read-only exchange
    waits for nothing."""
    backend = _waiting_backend(settings, redis_cluster, "cluster-wait")
    backend.flush()
    try:
        key = keys_in_partitions(backend)[0]
        _consent(key)
        version = notice_version()
        partition = backend.partition_for(key)
        owner = redis_cluster.owner(backend.client.keyslot(backend._stream(partition)))
        [replica] = redis_cluster.replicas[owner]
        # (The first call also loads the script on the master: NOSCRIPT, then EVALSHA again.)
        assert send_click(backend, key, 1, version)
        before = {port: _waits(redis_cluster, port) for port in redis_cluster.ports}

        assert send_click(backend, key, 2, version)
        # The replica holds the event as the round trip returns.
        reader = redis.Redis(
            port=replica, socket_timeout=5, decode_responses=True, single_connection_client=True
        )
        reader.execute_command("READONLY")
        assert reader.xlen(backend._stream(partition)) == 2
        reader.close()
        after = {port: _waits(redis_cluster, port) for port in redis_cluster.ports}
        assert after[owner] == before[owner] + 1  # on the master that took the write
        assert all(after[p] == before[p] for p in redis_cluster.ports if p != owner)

        backend.exchange(key, purpose="personalization", notice_version=version, now=time.time())
        assert _waits(redis_cluster, owner) == after[owner]  # no event, no wait

        with redis_cluster.paused(replica):
            started = time.monotonic()
            assert send_click(backend, key, 3, version)  # accepted on the master alone
            waited = time.monotonic() - started
        assert waited >= 1.4, waited
        assert backend.client.xlen(backend._stream(partition)) == 3
    finally:
        backend.flush()


def test_changing_partitions_on_a_cluster_the_stopped_way_keeps_every_visitors_state(
    clustered, settings
):
    """docs/operations.md, "Changing PARTITIONS on a Redis Cluster": with every process
    stopped and the stream drained, change PARTITIONS, seal_partitions (the drains refuse the
    new count until then), then rebuild_fast_store. Visitors whose
    partition changed have their features, memberships and consent mirror under their new
    hash tag, nothing is left under the old one, the counts hold, and their next events go to
    their new partition."""
    from django.core.management import call_command

    options = dict(clustered.options)
    settings.SEGMENTS_BACKEND = {
        "BACKEND": "segments.backends.redis.RedisBackend",
        "OPTIONS": {**options, "PARTITIONS": 2},
    }
    old = get_backend()
    keys = keys_in_partitions(old, per_partition=3)
    grant_imported(keys, frozenset({"personalization"}))  # the durable consent records
    version = notice_version()
    for n, key in enumerate(keys):
        _consent(key)
        assert send_click(old, key, n, version)
    for p in range(old.partitions):
        pipeline.drain_partition(p)
    assert all(s.length == 0 for s in old.stream_stats())  # drained
    before = {key: orjson.loads(old.visitor_data(key).profile)["t"] for key in keys}

    settings.SEGMENTS_BACKEND = {
        "BACKEND": "segments.backends.redis.RedisBackend",
        "OPTIONS": {**options, "PARTITIONS": 4},
    }
    new = get_backend()
    moved = [k for k in keys if new.partition_for(k) != old.partition_for(k)]
    assert moved
    # The store remembers 2: a worker started with 4 before the seal drains nothing.
    assert new.stored_partitions() == 2
    assert "sealed with 2" in new.partition_problem()
    assert pipeline.drain_partition(0).processed == 0
    call_command("seal_partitions", stdout=io.StringIO())  # the old partitions are empty
    assert new.stored_partitions() == 4
    call_command("rebuild_fast_store", stdout=io.StringIO())
    assert new.stored_partitions() == 4  # kept by the rebuild
    assert {key: orjson.loads(new.visitor_data(key).profile)["t"] for key in keys} == before
    assert new.profile_count() == len(keys)
    assert sorted(k for batch in new.visitor_keys() for k in batch) == sorted(keys)
    for key in moved:  # nothing left under the old hash tag
        assert not old.client.exists(old._m(key), old._f(key)), key[:8]
    for key in keys:  # the consent mirror is there: the next event is accepted
        assert send_click(new, key, -1, version)
    for key in moved:
        assert new.client.xlen(new._stream(new.partition_for(key))) >= 1
    for p in range(new.partitions):
        pipeline.drain_partition(p)
    assert new.pending_partitions() == []
    for key in keys:
        clicks = orjson.loads(new.visitor_data(key).profile)["t"]["click"]
        assert clicks == before[key]["click"] + 1, key[:8]
    assert LoggedEvent.objects.filter(name="click").count() == 2 * len(keys)


def test_wait_replicas_follows_an_ask_to_the_importing_master(settings, redis_cluster):
    """While a partition's slot is being resharded and its keys have gone ahead, the call is
    asked to the importing master: its WAIT goes there too, in the same write, and waits for
    that master's replica."""
    from segments.backends.redis import _EXCHANGE

    backend = _waiting_backend(settings, redis_cluster, "cluster-ask")
    backend.flush()
    key = keys_in_partitions(backend)[0]
    _consent(key)
    version = notice_version()
    partition = backend.partition_for(key)
    slot = backend.client.keyslot(backend._stream(partition))
    source = redis_cluster.owner(slot)
    target = next(port for port in redis_cluster.ports if port != source)
    for port in redis_cluster.ports:
        redis_cluster.node(port).script_load(_EXCHANGE)
    assert send_click(backend, key, 1, version)
    # An importing master runs a call asked to it only when it holds every key the call names
    # (else TRYAGAIN): the partition's drain flag and shed counter must exist to be moved too.
    backend.client.set(backend._key("drain", partition), "1")
    backend.client.set(backend._key("shed", partition), "0")
    src, dst = redis_cluster.node(source), redis_cluster.node(target)
    dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", redis_cluster.node_id(source))
    src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", redis_cluster.node_id(target))
    try:
        while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
            src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys)
        before = {port: _waits(redis_cluster, port) for port in redis_cluster.ports}
        [replica] = redis_cluster.replicas[target]
        with redis_cluster.paused(replica):
            started = time.monotonic()
            assert send_click(backend, key, 2, version)  # ASK: to the importing master
            waited = time.monotonic() - started
        assert waited >= 1.4, waited  # for the importing master's replica
        after = {port: _waits(redis_cluster, port) for port in redis_cluster.ports}
        assert after[target] == before[target] + 1
        # (The source answered the call ASK; the WAIT sent with it returned at once there, as
        # that connection had nothing new to replicate.)
        others = [p for p in redis_cluster.ports if p not in (source, target)]
        assert all(after[p] == before[p] for p in others)
    finally:
        for port in redis_cluster.ports:
            redis_cluster.node(port).execute_command(
                "CLUSTER SETSLOT", slot, "NODE", redis_cluster.node_id(target)
            )
    assert dst.xlen(backend._stream(partition)) == 2
    backend.flush()


def test_a_cluster_process_started_with_another_count_drains_nothing(clustered, settings, caplog):
    """On a cluster PREVIOUS_PARTITIONS is refused, so a count changed while the site runs is
    a process disagreeing with the store: its drain refuses (the waiting events stay under
    their partitions' tags), and seal_partitions will not record the new count before the
    old partitions are drained."""
    from django.core.management import call_command
    from django.core.management.base import CommandError

    backend = clustered
    keys = keys_in_partitions(backend)
    version = notice_version()
    for n, key in enumerate(keys):
        _consent(key)
        assert send_click(backend, key, n, version)
    assert backend.partition_problem() is None  # sealed with the site's count (4)
    other = RedisBackend({**backend.options, "PARTITIONS": 8})
    assert "sealed with 4" in other.partition_problem()
    site = settings.SEGMENTS_BACKEND
    settings.SEGMENTS_BACKEND = {**site, "OPTIONS": {**site["OPTIONS"], "PARTITIONS": 8}}
    caplog.clear()
    assert pipeline.drain_partition(0).processed == 0
    assert "Drain refused" in caplog.text
    with pytest.raises(CommandError, match="still hold events"):
        call_command("seal_partitions", stdout=io.StringIO())
    settings.SEGMENTS_BACKEND = site
    assert [s.length for s in backend.stream_stats()] == [1] * backend.partitions
    assert pipeline.drain_partition(0).processed == len(keys)  # the site's count drains them
