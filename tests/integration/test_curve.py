"""CURVE authentication (issue 10, node/fronts/curve.py): the allow-list, fail-closed ZAP, SIGHUP,
the loopback-only default; libzmq's behaviour without a ZAP handler; ``aofnode keygen``."""
from __future__ import annotations

import errno
import os
import shutil
import signal
import stat
import subprocess
import time

import pytest
import zmq
from zmq.auth import load_certificate
from zmq.utils.monitor import recv_monitor_message

from tests.nodeproc import free_port
from aofnode import exitcodes
from aofnode.fronts import curve as auth
from aofnode.config import Config
from aofnode.tools.keygen import load_client_curve, write_key_pair
from aofnode.client import Client, CommandError, NodeTimeout
from tests.nodeproc import AOFNODE, wait_for

# A refused client gets nothing at all: it is told so by silence, so each try waits this long.
REFUSED_TIMEOUT_S = 0.5


class _Log:
    """Records (level, event, fields) like the structlog logger the actors get."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict]] = []

    def __getattr__(self, level):
        return lambda event, **fields: self.lines.append((level, event, fields))

    def events(self, name: str) -> list[dict]:
        return [fields for _level, event, fields in self.lines if event == name]


# -- libzmq itself: the pitfall, and what ZAP_ENFORCE_DOMAIN does -------------------------------

@pytest.mark.parametrize("handler", ["none", "closed"])
@pytest.mark.parametrize("enforce", [False, True])
def test_libzmq_without_a_zap_handler_accepts_anyone_unless_enforced(enforce, handler):
    """The reason for auth.py's design: with no ZAP handler (never bound, or bound and closed)
    libzmq lets any valid CURVE handshake through; with ZAP_ENFORCE_DOMAIN it refuses it."""
    ctx = zmq.Context()
    try:
        server_public, server_secret = zmq.curve_keypair()
        if handler == "closed":
            zap = ctx.socket(zmq.REP)
            zap.bind(auth.ZAP_ENDPOINT)
            zap.close(linger=0)
        server = ctx.socket(zmq.ROUTER)
        server.setsockopt(zmq.LINGER, 0)
        server.curve_server = True
        server.curve_secretkey = server_secret
        server.setsockopt(zmq.ZAP_DOMAIN, auth.DOMAIN)
        if enforce:
            server.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
        port = server.bind_to_random_port("tcp://127.0.0.1")
        # A closed socket leaves its inproc name when libzmq's reaper thread gets to it; until
        # then a handshake waits on the dying handler. So a few fresh clients, 0.5 s each.
        got_in = False
        for _ in range(4):
            public, secret = zmq.curve_keypair()  # a key nobody ever allowed
            client = ctx.socket(zmq.DEALER)
            client.setsockopt(zmq.LINGER, 0)
            client.curve_serverkey, client.curve_publickey, client.curve_secretkey = server_public, public, secret
            client.connect(f"tcp://127.0.0.1:{port}")
            client.send(b"hello")
            got_in = bool(server.poll(500))
            client.close()
            if got_in:
                break
        server.close()
        assert got_in == (not enforce)
    finally:
        ctx.term()


# -- Auth in process: answers, rate limits, reload ----------------------------------------------

@pytest.fixture
def keys(tmp_path):
    allow = tmp_path / "allow"
    allow.mkdir()
    server_pub_file, server_secret_file = write_key_pair(str(tmp_path / "server"), "server")
    alice_pub_file, alice_secret_file = write_key_pair(str(tmp_path / "clients"), "alice")
    shutil.copy(alice_pub_file, allow)
    return {
        "allow": allow, "server_public": server_pub_file, "server_secret": server_secret_file,
        "clients": tmp_path / "clients", "alice": load_client_curve(server_pub_file, alice_secret_file),
    }


def _zap_request(key: bytes, domain: bytes = auth.DOMAIN, mechanism: bytes = b"CURVE") -> list[bytes]:
    return [b"1.0", b"7", domain, b"192.0.2.9", b"", mechanism, key]


def _started_auth(config, log):
    ctx = zmq.Context()
    clients = ctx.socket(zmq.ROUTER)
    clients.setsockopt(zmq.LINGER, 0)

    class _Runtime:
        def watch(self, *_a, **_k):
            pass

    a = auth.setup(config, ctx, clients, _Runtime(), log)
    return a, ctx, clients


def test_answers_allowed_unknown_and_malformed_requests(keys):
    log = _Log()
    config = Config(curve_secret_key=keys["server_secret"], curve_allow=str(keys["allow"]))
    a, ctx, clients = _started_auth(config, log)
    try:
        assert clients.getsockopt(zmq.ZAP_ENFORCE_DOMAIN) == 1 and clients.getsockopt(zmq.CURVE_SERVER) == 1
        alice_raw = zmq.utils.z85.decode(keys["alice"][1])
        assert a.answer(_zap_request(alice_raw))[2:5] == [b"200", b"OK", b"alice"]
        stranger = zmq.utils.z85.decode(zmq.curve_keypair()[0])
        cases = [_zap_request(stranger), _zap_request(alice_raw, domain=b"other"),
                 _zap_request(alice_raw, mechanism=b"PLAIN"), _zap_request(b"short")]
        assert [a.answer(req)[2] for req in cases] == [b"400"] * 4
        assert a.answer([b"2.0", b"1"])[2] == b"500"
        # Four refusals within a second: one line (the first), three counted for the next.
        lines = log.events("auth_refused")
        assert len(lines) == 1 and lines[0]["address"] == "192.0.2.9" and lines[0]["refused"] == 1
        assert lines[0]["key"] == zmq.utils.z85.encode(stranger).decode()
        a.on_tick(time.monotonic() + 1.5)
        assert [line["refused"] for line in log.events("auth_refused")] == [1, 3]
        assert a.counters() == {"auth_enabled": 1, "auth_allowed_keys": 1, "auth_refused": 4,
                                "auth_handshake_failures": 0}
    finally:
        a.close()
        clients.close()
        ctx.term()


def test_reload_adds_and_removes_keys_and_keeps_them_when_the_dir_is_gone(keys):
    log = _Log()
    config = Config(curve_secret_key=keys["server_secret"], curve_allow=str(keys["allow"]))
    a, ctx, clients = _started_auth(config, log)
    try:
        bob_pub, _ = write_key_pair(str(keys["clients"]), "bob")
        shutil.copy(bob_pub, keys["allow"])
        os.remove(keys["allow"] / "alice.key")
        (keys["allow"] / "junk.key").write_text("not a certificate\n")
        a.request_reload()
        a.on_tick(time.monotonic())
        assert sorted(a.allowed.values()) == ["bob"]
        assert log.events("auth_keys_reloaded")[-1] == {
            "allow_dir": str(keys["allow"]), "allowed_keys": 1, "added": 1, "removed": 1}
        assert log.events("auth_bad_certificates")[-1]["files"] == "junk.key"
        shutil.rmtree(keys["allow"])
        a.request_reload()
        a.on_tick(time.monotonic())
        assert sorted(a.allowed.values()) == ["bob"]  # an unreadable dir keeps the last list
        assert log.events("auth_reload_failed")[-1]["kept_keys"] == 1
    finally:
        a.close()
        clients.close()
        ctx.term()


def test_handshake_failures_from_the_monitor_are_counted_and_rate_limited(keys):
    log = _Log()
    config = Config(curve_secret_key=keys["server_secret"], curve_allow=str(keys["allow"]))
    a, ctx, clients = _started_auth(config, log)
    try:
        mismatch = {"event": zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                    "value": zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH, "endpoint": b""}
        for _ in range(3):
            a.on_monitor_event(mismatch)
        a.on_monitor_event({"event": zmq.EVENT_ACCEPTED, "value": 9, "endpoint": b""})  # not ours
        a.on_tick(time.monotonic() + 1.5)
        assert [(f["reason"], f["failures"]) for f in log.events("auth_handshake_failed")] == [
            ("zmtp_mechanism_mismatch", 1), ("zmtp_mechanism_mismatch", 2)]
        assert a.counters()["auth_handshake_failures"] == 3
    finally:
        a.close()
        clients.close()
        ctx.term()


def test_the_monitor_reports_a_plain_client_and_a_wrong_server_key(keys):
    """What the front's socket monitor hands to ``on_monitor_event`` for the two failures that
    never reach ZAP."""
    log = _Log()
    config = Config(curve_secret_key=keys["server_secret"], curve_allow=str(keys["allow"]))
    a, ctx, clients = _started_auth(config, log)
    monitor = clients.get_monitor_socket(auth.MONITOR_EVENTS)
    port = clients.bind_to_random_port("tcp://127.0.0.1")
    server_public, alice_public, alice_secret = keys["alice"]
    try:
        for curve in [None, (zmq.curve_keypair()[0], alice_public, alice_secret)]:
            client = ctx.socket(zmq.DEALER)
            client.setsockopt(zmq.LINGER, 0)
            if curve is not None:
                client.curve_serverkey, client.curve_publickey, client.curve_secretkey = curve
            client.connect(f"tcp://127.0.0.1:{port}")
            client.send(b"x")
            assert monitor.poll(5000)
            a.on_monitor_event(recv_monitor_message(monitor))
            client.close()
            time.sleep(1.0)  # past the rate limit: one line each
        assert [f["reason"] for f in log.events("auth_handshake_failed")] == [
            "zmtp_mechanism_mismatch", "zmtp_cryptographic"]
        assert not clients.poll(0)
    finally:
        monitor.close(linger=0)
        a.close()
        clients.close()
        ctx.term()


def test_a_public_certificate_is_no_server_key(keys):
    config = Config(curve_secret_key=keys["server_public"], curve_allow=str(keys["allow"]))
    assert "holds no secret key" in auth.config_error(config)


@pytest.mark.parametrize("endpoint,local", [
    ("tcp://127.0.0.1:7700", True), ("tcp://127.0.0.2:7700", True), ("tcp://localhost:7700", True),
    ("tcp://[::1]:7700", True), ("ipc:///tmp/x.sock", True), ("inproc://x", True),
    ("tcp://*:7700", False), ("tcp://0.0.0.0:7700", False), ("tcp://[::]:7700", False),
    ("tcp://192.0.2.1:7700", False), ("tcp://eth0:7700", False), ("tcp://example.com:7700", False),
    ("ws://127.0.0.1:7700", False),
])
def test_which_endpoints_count_as_local(endpoint, local):
    assert auth.is_local_endpoint(endpoint) is local


def test_config_errors():
    assert auth.config_error(Config()) is None
    assert "without CURVE" in auth.config_error(Config(bind="tcp://0.0.0.0:1"))
    assert auth.config_error(Config(bind="tcp://0.0.0.0:1", insecure_bind=True)) is None
    assert "go together" in auth.config_error(Config(curve_allow="/nonexistent"))
    assert "cannot read the CURVE secret key" in auth.config_error(
        Config(curve_secret_key="/nonexistent", curve_allow="/nonexistent"))


# -- aofnode keygen -----------------------------------------------------------------------------

def test_keygen_writes_a_private_secret_and_refuses_to_overwrite(tmp_path):
    old_umask = os.umask(0)
    try:
        result = subprocess.run([AOFNODE, "keygen", "n1", "--dir", str(tmp_path)], capture_output=True, text=True)
    finally:
        os.umask(old_umask)
    assert result.returncode == 0, result.stderr
    secret_file, public_file = tmp_path / "n1.key_secret", tmp_path / "n1.key"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    public, secret = load_certificate(secret_file)
    assert load_certificate(public_file) == (public, None) and len(secret) == 40
    again = subprocess.run([AOFNODE, "keygen", "n1", "--dir", str(tmp_path)], capture_output=True, text=True)
    assert again.returncode == 1 and "exists" in again.stderr
    assert load_certificate(secret_file) == (public, secret)


# -- a real node --------------------------------------------------------------------------------

def _start_curve_node(make_node, keys, env=None, wait=True):
    node = make_node(extra=("--curve-secret-key", keys["server_secret"], "--curve-allow", str(keys["allow"])),
                     env=env)
    node.start(wait=False)
    wait_for(lambda: node.events("auth_started") or node.proc.poll() is not None, what="auth_started")
    if wait:
        wait_for(lambda: _answers(node, keys["alice"]), 20, what="allowed client served")
    return node


def _answers(node, curve, timeout: float = 1.0) -> bool:
    """True if ``curve``'s client gets a PONG (any reply at all counts as getting in)."""
    if node.proc.poll() is not None:
        raise AssertionError(f"aofnode exited with {node.proc.returncode}: {node.stderr_path.read_text()}")
    try:
        with Client(node.endpoint, timeout=timeout, retries=1, loading_timeout=0, curve=curve) as c:
            c.execute("PING")
            return True
    except CommandError:
        return True
    except NodeTimeout:
        return False


def test_allowed_key_works_and_info_shows_auth(make_node, keys):
    node = _start_curve_node(make_node, keys)
    with Client(node.endpoint, timeout=5, curve=keys["alice"]) as c:
        assert c.execute("SET", "k", "v") == "OK"
        assert c.execute("GET", "k") == b"v"
        info = wait_for(lambda: (i := c.execute("INFO", "clients")["clients"]).get("auth_enabled") and i,
                        what="auth in INFO")
    assert (info["auth_enabled"], info["auth_allowed_keys"]) == (1, 1)


def test_unknown_key_plain_client_and_wrong_server_key_get_nothing_and_are_logged(make_node, keys):
    node = _start_curve_node(make_node, keys)
    stranger_pub, stranger_secret = zmq.curve_keypair()
    server_public, alice_public, alice_secret = keys["alice"]
    wrong_server, _ = zmq.curve_keypair()
    plain = None
    for curve in [(server_public, stranger_pub, stranger_secret), plain, (wrong_server, alice_public, alice_secret)]:
        assert not _answers(node, curve, REFUSED_TIMEOUT_S)
    refused = wait_for(lambda: node.events("auth_refused"), what="auth_refused logged")
    assert refused[0]["address"] == "127.0.0.1" and refused[0]["key"] == stranger_pub.decode()
    assert _answers(node, keys["alice"])  # the node still serves the allowed key
    with Client(node.endpoint, timeout=5, curve=keys["alice"]) as c:
        assert wait_for(lambda: c.execute("INFO", "clients")["clients"]["auth_refused"], what="counted") >= 1


def test_plain_client_and_wrong_server_key_are_logged(make_node, keys):
    """Failures before ZAP come from the front's socket monitor (Front._read_monitor hands the
    handshake events to ``auth.on_monitor_event``)."""
    node = _start_curve_node(make_node, keys)
    server_public, alice_public, alice_secret = keys["alice"]
    assert not _answers(node, None, REFUSED_TIMEOUT_S)
    # How libzmq reports a plain client depends on which side notices first: a mechanism
    # mismatch, or the connection dropped under it (seen in about one run in five here).
    plain_client_reasons = {"zmtp_mechanism_mismatch", os.strerror(errno.EPIPE), os.strerror(errno.ECONNRESET)}
    lines = wait_for(lambda: node.events("auth_handshake_failed"), 5, what="the plain client logged")
    assert {e["reason"] for e in lines} & plain_client_reasons, lines
    time.sleep(1.0)  # the rate limit: a second line only a second after the first
    assert not _answers(node, (zmq.curve_keypair()[0], alice_public, alice_secret), REFUSED_TIMEOUT_S)
    wait_for(lambda: any(e["reason"] == "zmtp_cryptographic" for e in node.events("auth_handshake_failed")),
             5, what="wrong server key logged")


def test_sighup_adds_a_key(make_node, keys):
    node = _start_curve_node(make_node, keys)
    bob_pub, bob_secret = write_key_pair(str(keys["clients"]), "bob")
    bob = load_client_curve(keys["server_public"], bob_secret)
    assert not _answers(node, bob, REFUSED_TIMEOUT_S)
    shutil.copy(bob_pub, keys["allow"])
    node.proc.send_signal(signal.SIGHUP)  # to the supervisor, which forwards it to the front
    reloaded = wait_for(lambda: node.events("auth_keys_reloaded"), what="auth_keys_reloaded")
    assert (reloaded[0]["allowed_keys"], reloaded[0]["added"]) == (2, 1)
    assert _answers(node, bob, 5.0)
    assert _answers(node, keys["alice"])
    assert node.proc.poll() is None and not node.events("actor_died")


def test_with_the_zap_handler_broken_no_client_gets_in(make_node, keys):
    """AOFNODE_TEST_ZAP_BROKEN=1: the front closes its ZAP handler right after starting it. Until
    its next tick only libzmq (ZAP_ENFORCE_DOMAIN) keeps clients out; then the front notices,
    unbinds and exits to be restarted (here it breaks again each time: a crash loop, never an
    open door)."""
    node = _start_curve_node(make_node, keys, env={auth.TEST_BREAK_ENV: "1"}, wait=False)
    deadline = time.monotonic() + 4.0
    tries = 0
    while time.monotonic() < deadline and node.proc.poll() is None:
        assert not _answers(node, keys["alice"], REFUSED_TIMEOUT_S), "a client got in without a ZAP handler"
        tries += 1
    assert tries >= 4
    lost = wait_for(lambda: node.events("auth_handler_lost"), what="auth_handler_lost")
    assert lost[0]["unbound"] is True
    assert any(e["role"] == "front" for e in node.events("actor_died"))


def test_cli_connects_with_curve(make_node, keys, tmp_path):
    node = _start_curve_node(make_node, keys)
    alice_secret = keys["clients"] / "alice.key_secret"
    base = [AOFNODE, "cli", "--connect", node.endpoint, "--curve-server-key", keys["server_public"]]
    ok = subprocess.run([*base, "--curve-key", str(alice_secret), "SET", "a", "1"], capture_output=True, text=True)
    assert (ok.returncode, ok.stdout.strip()) == (0, "OK"), ok.stderr
    missing = subprocess.run([*base, "PING"], capture_output=True, text=True)
    assert missing.returncode == 1 and "go together" in missing.stderr


def test_non_loopback_bind_without_curve_exits_with_a_clear_error(tmp_path):
    endpoint = f"tcp://0.0.0.0:{free_port()}"
    result = subprocess.run([AOFNODE, "serve", "--dir", str(tmp_path / "data"), "--bind", endpoint],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == exitcodes.BIND
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith(f"aofnode: refusing to bind {endpoint} without CURVE") and "--insecure-bind" in line
               for line in lines), result.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was created


def test_insecure_bind_starts_and_warns(make_node):
    node = make_node(extra=("--insecure-bind",))
    node.endpoint = f"tcp://0.0.0.0:{free_port()}"
    node.start(wait=False)
    with Client(node.endpoint.replace("0.0.0.0", "127.0.0.1"), timeout=5, loading_timeout=20) as c:
        assert wait_for(lambda: _ping(c), what="served") == "PONG"
    assert node.events("insecure_bind")[0]["bind"] == node.endpoint


def _ping(client):
    try:
        return client.execute("PING")
    except NodeTimeout:
        return None


def test_a_plain_cli_is_told_the_node_may_use_curve(make_node, keys):
    """A plain client gets silence from a CURVE node, as from no node: the CLI says both."""
    node = _start_curve_node(make_node, keys)
    done = subprocess.run([AOFNODE, "cli", "--connect", node.endpoint, "PING"], capture_output=True,
                          text=True, timeout=20)
    assert done.returncode == 1
    assert "If it uses CURVE, give --curve-server-key and --curve-key" in done.stderr, done.stderr
