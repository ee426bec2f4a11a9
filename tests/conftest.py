"""Fixtures shared by several test modules."""
from __future__ import annotations

import pytest
from storage_worker import need_redis, redis_server


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """The URL of one redis-server of the test run's own, on a free loopback port (tests keep
    apart by key prefix); skipped without redis-server, failed under CI=true."""
    need_redis()
    with redis_server(str(tmp_path_factory.mktemp("redis"))) as server:
        yield server.url
