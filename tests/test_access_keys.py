"""Access keys: stored as hashes, looked up by hash, compared in constant time."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import AccessKey

pytestmark = pytest.mark.django_db


def test_a_wrong_key_is_looked_up_by_its_hash_alone():
    # given
    _, raw = AccessKey.generate("ops")
    almost = raw[:-1] + ("0" if raw[-1] != "0" else "1")
    # when
    with CaptureQueriesContext(connection) as queries:
        assert AccessKey.objects.authenticate(almost) is None
    # then the database saw the digest of the presented key, nothing derived from how much
    # of the stored key it shares: the lookup costs the same for a near miss and a far miss
    sql = " ".join(q["sql"] for q in queries.captured_queries)
    assert AccessKey.hash_key(almost) in sql
    assert raw[:6] not in sql and almost not in sql


def test_an_inactive_key_is_refused():
    key, raw = AccessKey.generate("old")
    key.is_active = False
    key.save()
    assert AccessKey.objects.authenticate(raw) is None


def test_scope_and_read_only_decide_what_a_key_may_call():
    agent, _ = AccessKey.generate("a", scope="agent")
    reader, _ = AccessKey.generate("r", scope="all", read_only=True)
    assert agent.allows("agent", "POST") and not agent.allows("jobs", "GET")
    assert reader.allows("jobs", "GET") and not reader.allows("jobs", "POST")
