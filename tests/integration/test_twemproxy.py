"""Sharding with twemproxy (Debian's ``nutcracker``) in front of three aofnode RESP fronts.

The setup is the one docs/sharding.md documents (docs/nutcracker.yml): ketama distribution,
``redis: true``, ``auto_eject_hosts``. Every test starts real processes: three ``aofnode serve
--resp-bind`` nodes and one nutcracker, all on loopback ports, all killed at teardown. Skipped
with a reason when nutcracker or redis-py is absent: the suite must pass without them.
"""
from __future__ import annotations

import inspect
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.nodeproc import free_port
from tests.nodeproc import Node, wait_for

redis = pytest.importorskip("redis", reason="redis-py is not installed (pip install '.[test]')")
NUTCRACKER = shutil.which("nutcracker")
pytestmark = pytest.mark.skipif(NUTCRACKER is None, reason="nutcracker (twemproxy) is not installed: "
                                "apt-get install nutcracker")

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "nutcracker.yml"
KEYS = [f"user:{i}" for i in range(300)]
# Short retry and one failure to eject, so that the test sees the ejection and the return of a
# node within seconds (the example in docs/ uses 30 s, twemproxy's default, and says why).
RETRY_MS = 500


def _conf(listen_port: int, nodes: list[tuple[str, int]]) -> str:
    """docs/nutcracker.yml with this test's ports and retry time. The test reads the shipped
    example, so the example is what gets tested."""
    text = EXAMPLE.read_text()
    head, _, _ = text.partition("  servers:")
    head = head.replace("127.0.0.1:22121", f"127.0.0.1:{listen_port}")
    head = head.replace("server_retry_timeout: 30000", f"server_retry_timeout: {RETRY_MS}")
    servers = "".join(f"   - 127.0.0.1:{port}:1 {name}\n" for name, port in nodes)
    return f"{head}  servers:\n{servers}"


# No CLIENT SETINFO at connect: driver_info=None in redis-py 8, lib_name=None in older ones.
_NO_SETINFO = ({"driver_info": None} if "driver_info" in inspect.signature(redis.Redis).parameters
               else {"lib_name": None, "lib_version": None})


class Proxy:
    def __init__(self, root: Path, nodes: list[tuple[str, int]]) -> None:
        self.port = free_port()
        self.conf = root / "nutcracker.yml"
        self.conf.write_text(_conf(self.port, nodes))
        self.log = root / "nutcracker.log"
        check = subprocess.run([NUTCRACKER, "-t", "-c", str(self.conf)], capture_output=True, text=True,
                               timeout=10)
        assert check.returncode == 0, check.stdout + check.stderr
        # -s/-a: the stats port would otherwise listen on 0.0.0.0:22222.
        self.proc = subprocess.Popen([NUTCRACKER, "-c", str(self.conf), "-o", str(self.log), "-v", "5",
                                      "-s", str(free_port()), "-a", "127.0.0.1",
                                      "-p", str(root / "nutcracker.pid")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def client(self) -> "redis.Redis":
        # twemproxy speaks RESP2 and closes the connection on HELLO or CLIENT: protocol=2, and
        # no CLIENT SETINFO at connect (redis-py 5+ sends it unless lib_name is None).
        return redis.Redis(port=self.port, protocol=2, socket_timeout=5, decode_responses=True,
                           **_NO_SETINFO)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture
def cluster(tmp_path):
    nodes: list[Node] = []
    resp_ports = []
    for i in range(3):
        port = free_port()
        (tmp_path / f"node{i + 1}").mkdir()
        node = Node(tmp_path / f"node{i + 1}", appendfsync="always",
                    extra=("--resp-bind", f"127.0.0.1:{port}"))
        nodes.append(node)
        resp_ports.append(port)
    proxy = None
    try:
        for node in nodes:  # the three start up side by side
            node.start(wait=False)
        for node, port in zip(nodes, resp_ports):
            node.wait_ready()
            wait_for(lambda p=port: _ping(p), 20, what=f"RESP front on {port}")
        proxy = Proxy(tmp_path, [(f"node{i + 1}", p) for i, p in enumerate(resp_ports)])
        client = proxy.client()
        wait_for(lambda: _set_ok(client), 15, what="nutcracker forwarding")
        yield nodes, resp_ports, proxy, client
    finally:
        if proxy is not None:
            proxy.stop()
        for node in nodes:
            node.kill_all()


def _ping(port: int) -> bool:
    try:
        return redis.Redis(port=port, protocol=2, socket_timeout=1).ping()
    except redis.RedisError:
        return False


def _set_ok(client) -> bool:
    try:
        return client.set("probe", "1") is True and client.delete("probe") == 1
    except redis.RedisError:
        return False


def _direct(port: int) -> "redis.Redis":
    return redis.Redis(port=port, protocol=2, socket_timeout=5, decode_responses=True)


def _owner(ports: list[int], key: str) -> int:
    """The index of the one node holding ``key`` (asserting that exactly one does)."""
    holders = [i for i, port in enumerate(ports) if _direct(port).exists(key)]
    assert len(holders) == 1, f"{key} is on nodes {holders}"
    return holders[0]


def test_keys_spread_over_three_nodes_and_read_back_through_the_proxy(cluster):
    nodes, ports, proxy, client = cluster
    # MSET is split by the proxy into one MSET per node (not atomic across nodes).
    for start in range(0, len(KEYS), 50):
        chunk = KEYS[start:start + 50]
        assert client.mset({k: f"v-{k}" for k in chunk}) is True
    assert client.mget(KEYS) == [f"v-{k}" for k in KEYS]
    # nutcracker 0.5.0 does not split EXISTS: it sends the whole command to the node of its
    # first key (docs/sharding.md). One key per EXISTS is right wherever the key lives.
    assert [client.exists(k) for k in KEYS[:40]] == [1] * 40
    assert client.exists("missing:1") == 0
    # Every key lives on exactly one node, and each node holds a fair share (ketama over 3
    # nodes of equal weight: each gets a third, give or take the ring's unevenness).
    sizes = [_direct(p).dbsize() for p in ports]
    assert sum(sizes) == len(KEYS), sizes
    assert all(size >= len(KEYS) // 10 for size in sizes), sizes
    owners = {key: _owner(ports, key) for key in KEYS[:30]}
    assert len(set(owners.values())) == 3
    same_node = [k for k in KEYS[:30] if owners[k] == owners[KEYS[0]]]
    assert client.exists(*same_node) == len(same_node)
    # DEL of keys on several nodes: split, and the counts summed.
    assert client.delete(*KEYS[:30], "missing:2") == 30
    assert client.mget(KEYS[:30]) == [None] * 30
    assert sum(_direct(p).dbsize() for p in ports) == len(KEYS) - 30
    # Hashes and counters go to one node each, whole.
    assert client.hset("h:1", mapping={"a": "1", "b": "2"}) == 2
    assert client.hgetall("h:1") == {"a": "1", "b": "2"}
    assert client.incr("counter:1") == 1 and client.incrby("counter:1", 41) == 42


def test_a_killed_node_is_ejected_then_rejoins_with_its_data_from_the_aof(cluster):
    nodes, ports, proxy, client = cluster
    for key in KEYS:
        assert client.set(key, f"v-{key}") is True  # acknowledged: fsynced (appendfsync always)
    victim = 1
    lost = [k for k in KEYS if _owner(ports, k) == victim]
    kept = [k for k in KEYS if k not in set(lost)]
    assert lost and kept

    nodes[victim].kill_all()  # kill -9 of every process of that node

    # First the proxy answers errors for its keys; after one failure it ejects the node and
    # rehashes its keys over the two others, where they do not exist: reads give nil. That is
    # what auto_eject_hosts trades: availability, not the data of the lost node.
    def ejected():
        try:
            return client.get(lost[0]) is None
        except redis.RedisError:
            return False
    wait_for(ejected, 10, what="the dead node ejected")
    assert client.mget(kept[:50]) == [f"v-{k}" for k in kept[:50]]

    nodes[victim].start()
    wait_for(lambda: _ping(ports[victim]), 20, what="restarted node's RESP front")
    assert _direct(ports[victim]).dbsize() == len(lost)  # every acknowledged write, from its AOF

    # After server_retry_timeout the proxy tries the node again and puts it back on the ring.
    def rejoined():
        try:
            return client.get(lost[0]) == f"v-{lost[0]}"
        except redis.RedisError:
            return False
    wait_for(rejoined, 15, interval=0.1, what="the node back on the ring")
    assert client.mget(KEYS) == [f"v-{k}" for k in KEYS]


def _readme_mset() -> list[str]:
    """The keys of the README's twemproxy example (``redis-cli -p 22121 MSET k v ...``)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    [line] = [ln for ln in readme.splitlines() if "redis-cli -p 22121 MSET" in ln]
    words = line.split("#")[0].split()
    args = words[words.index("MSET") + 1:]
    return args[0::2]


def test_the_readme_mset_example_spreads_over_the_three_nodes(cluster):
    """The README shows the proxy splitting an MSET: with the shipped docs/nutcracker.yml (the
    ring is placed by the node names, not the ports) its keys must land on three nodes."""
    nodes, ports, proxy, client = cluster
    keys = _readme_mset()
    assert client.mset({k: "1" for k in keys}) is True
    candidates = [f"user:{i}" for i in range(12)] + list("abcdefgh")
    client.mset({k: "1" for k in candidates})
    owners = {k: _owner(ports, k) + 1 for k in candidates}
    assert sorted({owners[k] for k in keys}) == [1, 2, 3], f"node of each key: {owners}"
