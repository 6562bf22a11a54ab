"""INFO latencystats for the commands the RESP front answers itself (CLIENT, COMMAND, HELLO,
MULTI/EXEC...) on a real node: there with latency-tracking on, from the next INFO on, beside
the log actor's own commands; absent with it off; cleared by CONFIG RESETSTAT."""
from __future__ import annotations

import pytest

redis = pytest.importorskip("redis")

from tests.integration.test_resp_front import _start  # noqa: E402


def _latency(r) -> dict:
    return r.info("latencystats")


def test_front_commands_have_latency_percentiles(make_node):
    _node, port = _start(make_node)
    with redis.Redis(port=port, protocol=2, socket_timeout=10) as r:
        r.client_id()
        assert _latency(r) == {}  # off by default: nothing recorded, not even the log actor's
        r.config_set("latency-tracking", "yes")
        r.config_set("latency-tracking-info-percentiles", "50.0 99.0 99.9")
        r.client_id()
        r.client_setname("me")
        r.execute_command("COMMAND COUNT")
        pipe = r.pipeline(transaction=True)
        pipe.set("k", "v").get("k")
        assert pipe.execute() == [True, b"v"]
        stats = _latency(r)
        # the RESP front's, named as its commandstats (client|id), beside the log actor's
        for name in ("client|id", "client|setname", "command|count", "multi", "exec", "config|set", "set"):
            fields = stats[f"latency_percentiles_usec_{name}"]
            assert set(fields) == {"p50", "p99", "p99.9"}, name
            assert 0 < float(fields["p50"]) <= float(fields["p99.9"]) < 1e6, (name, fields)
        assert "latency_percentiles_usec_client" not in stats
        # a command refused before it ran (arity) has no latency, as in Redis
        with pytest.raises(redis.ResponseError):
            r.execute_command("CLIENT", "ID", "extra")
        r.config_resetstat()  # which counts itself after the reset, as in Redis
        assert set(_latency(r)) == {"latency_percentiles_usec_config|resetstat"}
        r.client_id()
        assert set(_latency(r)) == {"latency_percentiles_usec_config|resetstat",
                                    "latency_percentiles_usec_info",  # the INFO before
                                    "latency_percentiles_usec_client|id"}
        r.config_set("latency-tracking", "no")
        r.config_resetstat()
        r.client_id()
        r.execute_command("COMMAND COUNT")
        assert _latency(r) == {}
