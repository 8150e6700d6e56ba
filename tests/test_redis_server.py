"""The private redis-server fixture does what the failure tests rely on."""

from __future__ import annotations

import redis

from redis_server import RedisServer


def _client(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url, socket_timeout=5, retry=None)


def test_session_server_answers_and_uses_aof_always(redis_server: RedisServer) -> None:
    client = _client(redis_server)
    assert client.ping()
    config = client.config_get("append*")
    assert config["appendonly"] == "yes" and config["appendfsync"] == "always"
    assert client.config_get("bind")["bind"] == "127.0.0.1"


def test_kill_and_restart_replays_the_aof(fresh_redis: RedisServer) -> None:
    client = _client(fresh_redis)
    client.xadd("s", {"n": "1"})
    client.xadd("s", {"n": "2"})
    fresh_redis.kill()
    fresh_redis.start()
    client = _client(fresh_redis)
    assert [fields[b"n"] for _, fields in client.xrange("s")] == [b"1", b"2"]


def test_restart_empty_loses_the_data(fresh_redis: RedisServer) -> None:
    client = _client(fresh_redis)
    client.set("k", "v")
    fresh_redis.restart_empty()
    assert _client(fresh_redis).get("k") is None


def test_drop_clients_cuts_open_connections(fresh_redis: RedisServer) -> None:
    client = _client(fresh_redis)
    client.ping()
    assert fresh_redis.drop_clients() >= 1


def test_freeze_then_thaw_answers_again(fresh_redis: RedisServer) -> None:
    fresh_redis.freeze(0.2)
    assert _client(fresh_redis).ping()


def test_flushall_empties(fresh_redis: RedisServer) -> None:
    client = _client(fresh_redis)
    client.set("k", "v")
    fresh_redis.flushall()
    assert client.dbsize() == 0
