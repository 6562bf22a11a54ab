"""One password for both fronts: ``--requirepass-file`` keeps out every client that has not
sent AUTH, over ZeroMQ (per connection) and over RESP; the Python client and the CLI send it."""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap

import msgpack
import pytest
import zmq

from aofnode.client import Client, CommandError
from tests.nodeproc import AOFNODE, Node, free_port, wait_for

PASSWORD = "s3cret pass"
NOBODY_UID = 65534
SYSTEM_PYTHON = "/usr/bin/python3"

# A plain ZeroMQ client, run as another user with the system's python (no pyzmq, no msgpack, and
# the test's interpreter may be out of its reach): ZMTP 3.0 with the NULL mechanism by hand, as a
# DEALER. It prints the first bytes of each reply in hex.
PLAIN_CLIENT = textwrap.dedent("""
    import json, socket, struct, sys
    host, port = sys.argv[1], int(sys.argv[2])
    s = socket.create_connection((host, port), timeout=5)
    def recv_exact(n):
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data
    def frame():
        flags = recv_exact(1)[0]
        size = struct.unpack(">Q", recv_exact(8))[0] if flags & 2 else recv_exact(1)[0]
        return flags, recv_exact(size)
    s.sendall(b"\\xff" + bytes(8) + b"\\x7f\\x03\\x00" + b"NULL".ljust(20, b"\\0") + bytes(32))
    recv_exact(64)
    ready = b"\\x05READY" + bytes([11]) + b"Socket-Type" + struct.pack(">I", 6) + b"DEALER"
    s.sendall(bytes([4, len(ready)]) + ready)
    frame()  # the node's READY
    def str_(t):
        return bytes([0xa0 + len(t)]) + t.encode()
    out = {}
    for cmd in (["GET", "k"], ["SET", "k", "stolen"], ["DBSIZE"], ["HELLO"]):
        body = b"\\x92\\x80" + bytes([0x90 + len(cmd)]) + b"".join(str_(a) for a in cmd)
        s.sendall(b"\\x01\\x00" + bytes([0, len(body)]) + body)
        parts = []
        while True:
            flags, data = frame()
            parts.append(data)
            if not flags & 1:
                break
        out[cmd[0]] = parts[-1][:12].hex()
    print(json.dumps(out))
""")


@pytest.fixture
def node():
    root = tempfile.mkdtemp(prefix="aofnode-pass-", dir="/tmp")
    os.chmod(root, 0o755)
    secret = pathlib.Path(root) / "pass"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    resp_port = free_port()
    n = Node(pathlib.Path(root), appendfsync="no",
             extra=("--requirepass-file", str(secret), "--resp-bind", f"127.0.0.1:{resp_port}"))
    n.resp_port = resp_port
    n.secret = secret
    n.wait_ready = lambda timeout=20.0: _wait_ready(n, timeout)
    n.start()
    yield n
    n.kill_all()
    shutil.rmtree(root, ignore_errors=True)


def _wait_ready(n: Node, timeout: float) -> None:
    def ready():
        assert n.proc.poll() is None, n.stderr_path.read_text()
        try:
            with Client(n.endpoint, timeout=0.5, retries=1, password=PASSWORD) as c:
                return c.execute("PING") == "PONG"
        except Exception:  # noqa: BLE001 -- not up yet
            return False
    wait_for(ready, timeout, what="node ready")

    def resp_up():
        try:
            socket.create_connection(("127.0.0.1", n.resp_port), timeout=1).close()
            return True
        except OSError:
            return False
    wait_for(resp_up, timeout, what="RESP front up")


def _raw(endpoint: str, body: bytes, sock=None, ctx=None) -> object:
    own = sock is None
    if own:
        sock = (ctx or zmq.Context.instance()).socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
    try:
        sock.send_multipart([b"", body])
        assert sock.poll(5000), "no reply"
        return msgpack.unpackb(sock.recv_multipart()[-1])
    finally:
        if own:
            sock.close()


def _req(*cmd) -> bytes:
    return msgpack.packb([{}, list(cmd)])


def test_zmq_front_serves_no_unauthenticated_client(node):
    with Client(node.endpoint, timeout=5, password=PASSWORD) as c:
        assert c.execute("SET", "k", "v") == "OK"
    for cmd in (("GET", "k"), ("SET", "k", "x"), ("DBSIZE",), ("SELECT", "1"), ("PING",)):
        assert _raw(node.endpoint, _req(*cmd)) == [1, "NOAUTH", "Authentication required."], cmd
    assert _raw(node.endpoint, _req("HELLO", 2))[0] == 0
    assert _raw(node.endpoint, _req("AUTH", "wrong")) == [
        1, "WRONGPASS", "invalid username-password pair or user is disabled."]
    big = msgpack.packb([{}, ["SET", "k", b"x" * 5000]])  # not even decoded before AUTH
    assert _raw(node.endpoint, big) == [1, "NOAUTH", "Authentication required."]
    batch = msgpack.packb([{}, [["HELLO"], ["GET", "k"]]])
    reply = _raw(node.endpoint, batch)
    assert reply[0][0] == 0 and reply[1] == [1, "NOAUTH", "Authentication required."]
    # AUTH, then the same socket is served; the value was never changed by the refused SET.
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(node.endpoint)
    try:
        assert _raw(node.endpoint, _req("AUTH", "default", PASSWORD), sock) == [0, "OK"]
        assert _raw(node.endpoint, _req("GET", "k"), sock) == [0, b"v"]
        assert _raw(node.endpoint, _req("AUTH", "wrong"), sock)[1] == "WRONGPASS"
        assert _raw(node.endpoint, _req("GET", "k"), sock) == [0, b"v"]  # still authenticated
    finally:
        sock.close()


def test_an_identity_reused_after_its_connection_closed_is_not_authenticated(node):
    ctx = zmq.Context.instance()
    first = ctx.socket(zmq.DEALER)
    first.setsockopt(zmq.ROUTING_ID, b"alice")
    first.setsockopt(zmq.LINGER, 0)
    first.connect(node.endpoint)
    assert _raw(node.endpoint, _req("AUTH", PASSWORD), first) == [0, "OK"]
    assert _raw(node.endpoint, _req("PING"), first) == [0, "PONG"]
    first.close()

    def impostor_refused():
        second = ctx.socket(zmq.DEALER)
        second.setsockopt(zmq.ROUTING_ID, b"alice")
        second.setsockopt(zmq.LINGER, 0)
        second.connect(node.endpoint)
        try:
            second.send_multipart([b"", _req("GET", "k")])
            if not second.poll(1000):
                return False  # the old connection is still being torn down: the ROUTER refuses
            return msgpack.unpackb(second.recv_multipart()[-1])[1] == "NOAUTH"
        finally:
            second.close()
    wait_for(impostor_refused, 10, what="a reused identity refused")


def _resp_serving(port: int) -> bool:
    """The RESP front answers an authenticated PING (its link to the log actor is up)."""
    pw = PASSWORD.encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\nPING\r\n" % (len(pw), pw))
            data = b""
            while data.count(b"\r\n") < 2:
                chunk = s.recv(100)
                if not chunk:
                    return False
                data += chunk
            return data == b"+OK\r\n+PONG\r\n"
    except OSError:
        return False


def test_resp_front_serves_no_unauthenticated_client(node):
    # The RESP front starts after the log actor; until its link is up it answers LOADING.
    wait_for(lambda: _resp_serving(node.resp_port), 20, what="the RESP front serving")
    with socket.create_connection(("127.0.0.1", node.resp_port), timeout=5) as s:
        s.sendall(b"GET k\r\n")
        assert s.recv(100).startswith(b"-NOAUTH")
        pw = PASSWORD.encode()
        s.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\nPING\r\n" % (len(pw), pw))
        data = b""
        while data.count(b"\r\n") < 2:
            data += s.recv(100)
        assert data == b"+OK\r\n+PONG\r\n"


def test_another_user_gets_nothing_from_the_zmq_front(node):
    if os.geteuid() != 0:
        pytest.skip("needs root to run a client as nobody")
    with Client(node.endpoint, timeout=5, password=PASSWORD) as c:
        c.execute("SET", "k", "v")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip(f"no {SYSTEM_PYTHON} that nobody can run")
    host, port = node.endpoint.rsplit("/", 1)[1].split(":")
    out = subprocess.run([SYSTEM_PYTHON, "-c", PLAIN_CLIENT, host, port], user=NOBODY_UID,
                         group=NOBODY_UID, capture_output=True, text=True, timeout=30, cwd="/")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    noauth = msgpack.packb([1, "NOAUTH", "x"])[:9].hex()  # 93 01 a6 "NOAUTH"
    for name in ("GET", "SET", "DBSIZE"):
        assert got[name].startswith(noauth), got
    assert got["HELLO"].startswith("9200"), got  # [0, {...}]
    with Client(node.endpoint, timeout=5, password=PASSWORD) as c:
        assert c.execute("GET", "k") == b"v"


def test_python_client_authenticates_again_after_the_front_restarts(node):
    with Client(node.endpoint, timeout=5, password=PASSWORD) as c:
        assert c.execute("SET", "a", "1") == "OK"
        front = node.actor_pids()["front"]
        os.kill(front, signal.SIGKILL)
        wait_for(lambda: node.actor_pids().get("front") not in (None, front), 15, what="front restarted")
        # The same socket: ZeroMQ reconnects it, and the new front has never seen it.
        assert c.execute("INCR", "a") == 2
    with pytest.raises(CommandError) as err:
        Client(node.endpoint, timeout=5, password="wrong")
    assert err.value.code == "WRONGPASS"


def test_cli_with_the_password(node):
    base = [AOFNODE, "cli", "--connect", node.endpoint]
    run = lambda *a: subprocess.run([*base, *a], capture_output=True, text=True, timeout=30)  # noqa: E731
    out = run("SET", "c", "1")
    assert "NOAUTH" in out.stdout + out.stderr and out.returncode != 0
    out = run("--requirepass-file", str(node.secret), "SET", "c", "1")
    assert out.returncode == 0 and out.stdout.strip() == "OK", out
    out = run("-a", PASSWORD, "GET", "c")
    assert out.returncode == 0 and out.stdout.strip() == "1", out
    assert "visible" in out.stderr
    out = run("-a", "wrong", "GET", "c")
    assert out.returncode == 1 and "WRONGPASS" in out.stderr


def test_the_worked_example_of_protocol_md_is_what_the_gate_does():
    """docs/protocol.md, "Password": the hex of each line is the bytes sent and answered."""
    from aofnode.fronts.zmq_password import PasswordGate
    text = (pathlib.Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    block = text.split("Worked example, password `s3cret`:", 1)[1].split("```")[1]
    lines, current = [], None
    for line in block.strip().splitlines():
        left, _, hexpart = line.partition("  ")
        if left.strip():
            current = [left.strip(), hexpart.strip()]
            lines.append(current)
        else:
            current[1] += " " + hexpart.strip()
    exchanges = [bytes.fromhex(h) for _, h in lines]
    gate = PasswordGate(b"s3cret")
    get, noauth, auth, ok, get_again, _value = exchanges
    assert gate.answer(b"id", 7, get) == noauth
    assert gate.answer(b"id", 7, auth) == ok
    assert gate.answer(b"id", 7, get_again) is None  # forwarded to the log actor as it came
    assert gate.answer(b"id", 8, get_again) == noauth  # another connection with that identity
    gate.answer(b"id", 7, auth)
    gate.disconnected(7)
    assert gate.answer(b"id", 7, get_again) == noauth and gate.fd_of == {}
