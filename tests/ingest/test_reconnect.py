"""How ingest waits for a database that went away (pure: no server needed)."""

from __future__ import annotations

import itertools
import random

import psycopg
import pytest
from psycopg_pool import PoolTimeout

from ingest.store.db import _connect_kwargs, connection_lost, retry_delays
from ingest.store.errors import StoreUnavailable


def test_retry_delays_double_up_to_the_ceiling_with_jitter_below_each_step() -> None:
    delays = list(itertools.islice(retry_delays(1.0, first_s=0.2, rng=random.Random(7)), 40))
    steps = [0.2, 0.4, 0.8] + [1.0] * 37
    assert all(step / 2 <= d <= step for d, step in zip(delays, steps, strict=True))
    assert max(delays) <= 1.0  # bounded: a promoted leader is tried at least once a second
    assert len({round(d, 6) for d in delays[3:]}) > 30  # jittered, not in lock step


def test_two_workers_do_not_retry_in_the_same_instant() -> None:
    a = list(itertools.islice(retry_delays(1.0, rng=random.Random(1)), 10))
    b = list(itertools.islice(retry_delays(1.0, rng=random.Random(2)), 10))
    assert a != b


@pytest.mark.parametrize(
    ("exc", "lost"),
    [
        (psycopg.OperationalError("connection failed: Connection refused"), True),
        (PoolTimeout("couldn't get a connection after 10.00 sec"), True),
        (TimeoutError(), True),
        (StoreUnavailable("postgresql://db", "refused"), True),
        (psycopg.errors.AdminShutdown("terminating connection"), True),  # 57P01
        (psycopg.errors.CannotConnectNow("the database system is starting up"), True),  # 57P03
        (psycopg.errors.ConnectionFailure("connection failure"), True),  # 08006
        (psycopg.errors.DiskFull("could not extend file"), False),  # 53100: same server, wait
        (psycopg.errors.UniqueViolation("duplicate key"), False),
    ],
)
def test_connection_lost_tells_a_gone_server_from_a_refusal(exc: BaseException, lost: bool) -> None:
    assert connection_lost(exc) is lost


def test_a_cluster_url_keeps_its_own_connect_timeout() -> None:
    cluster = (
        "postgresql://daon@db1:5432,db2:5432/daon?target_session_attrs=read-write&connect_timeout=3"
    )
    assert _connect_kwargs(cluster) == {}
    assert _connect_kwargs("postgresql://daon@db1:5432/daon") == {"connect_timeout": 10}
