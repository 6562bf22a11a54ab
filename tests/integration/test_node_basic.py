"""Integration: a real ``aofnode serve``, real sockets, real files."""
import time

import msgpack
import pytest
import zmq

from aofnode import protocol
from aofnode.client import CommandError
from tests.nodeproc import wait_for


def test_set_get_survives_restart(node):
    with node.client() as c:
        assert c.execute("SET", "k", "v") == "OK"
        assert c.execute("HSET", "h", "f", 1) == 1
        set_at = time.monotonic()
        assert c.execute("SET", "t", "x", "EX", 1000) == "OK"
    assert node.stop() == 0
    node.start()
    with node.client() as c:
        assert c.execute("GET", "k") == b"v"
        assert c.execute("HGET", "h", "f") == b"1"
        # The deadline survives as it was: the TTL is what is left of it however long the
        # restart took (seconds under load), never reset to 1000.
        assert 1000 - (time.monotonic() - set_at) - 1 <= c.execute("TTL", "t") <= 1000


def test_pipeline_replies_in_order_with_errors_in_place(node):
    with node.client() as c:
        replies = c.execute_many([("SET", "a", "1"), ("NOSUCH",), ("INCR", "a"), ("GET",), ("GET", "a")])
    assert replies[0] == "OK"
    assert isinstance(replies[1], CommandError) and replies[1].code == protocol.UNKNOWNCMD
    assert replies[2] == 2
    assert isinstance(replies[3], CommandError) and replies[3].code == protocol.ARITY
    assert replies[4] == b"2"


def test_select_is_per_socket_and_logged_with_its_db(node):
    with node.client() as c1, node.client() as c2:
        assert c1.execute("SELECT", 3) == "OK"
        c1.execute("SET", "k", "in3")
        assert c2.execute("GET", "k") is None
        assert c1.execute("GET", "k") == b"in3"
        err = pytest.raises(CommandError, c2.execute, "SELECT", 16).value
        assert err.code == protocol.ERR
    node.stop()
    node.start()
    with node.client() as c:
        assert c.execute("GET", "k") is None
        c.execute("SELECT", 3)
        assert c.execute("GET", "k") == b"in3"


def test_req_socket_and_dealer_without_delimiter(node):
    ctx = zmq.Context.instance()
    req = ctx.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(node.endpoint)
    req.send(protocol.encode_request("PING"))
    assert req.poll(5000)
    assert protocol.decode_reply(req.recv()) == "PONG"
    req.close()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(node.endpoint)
    dealer.send(protocol.encode_request("ECHO", "hi"))
    assert dealer.poll(5000)
    frames = dealer.recv_multipart()
    assert protocol.decode_reply(frames[-1]) == b"hi"
    dealer.close()


GARBAGE = [
    ([b"", b"\xc1"], protocol.PROTO),                       # never-used msgpack byte
    ([b"", b"\x93\x01"], protocol.PROTO),                   # truncated array
    ([b"", msgpack.packb({"a": 1})], protocol.PROTO),        # a map, not a request
    ([b"", msgpack.packb([{}, []])], protocol.PROTO),              # empty request
    ([b"", msgpack.packb([{}, ["NOPE"]])], protocol.UNKNOWNCMD),
    ([b"", msgpack.packb([{}, ["GET"]])], protocol.ARITY),
    ([b"", msgpack.packb([{}, ["GET", 1.5]])], protocol.ARGTYPE),
    ([b"", msgpack.packb([{}, ["SET", "k", None]])], protocol.ARGTYPE),
    ([b"", b"a", b"b"], protocol.PROTO),                     # two body frames
    ([b"", b"\x00" * (protocol.MAX_MESSAGE_BYTES + 1)], protocol.TOOBIG),
]


def test_garbage_frames_get_error_replies_and_node_stays_up(node):
    pids_before = node.actor_pids()
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(node.endpoint)
    for frames, code in GARBAGE:
        sock.send_multipart(frames)
        assert sock.poll(10_000), f"no reply to {frames[1][:20]!r}"
        reply = protocol.decode_reply(sock.recv_multipart()[-1])
        assert isinstance(reply, protocol.Error) and reply.code == code, (frames[1][:20], reply)
    sock.close()
    with node.client() as c:
        assert c.execute("SET", "still", "up") == "OK"

        # Whole messages refused by the codec: \xc1, truncated, map, empty, TOOBIG. Single
        # requests refused in place: NOPE, GET arity, GET 1.5, SET nil. Two body frames are
        # refused before decoding and count in neither. The front sends its counters to the
        # log actor once a second, hence the poll.
        def counted():
            stats = c.execute("INFO", "stats")["stats"]
            return (stats["rejected_messages"], stats["rejected_requests"]) == (5, 4)
        wait_for(counted, 5, what="rejected_messages 5 and rejected_requests 4 in INFO")
    assert node.actor_pids() == pids_before


def test_replies_keep_request_order_when_front_errors_mix_with_forwarded(node):
    """A bad message after good ones from the same DEALER must not overtake their replies."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(node.endpoint)
    sent = []
    for i in range(200):
        if i % 3 == 2:
            sock.send_multipart([b"", b"\xc1"])
            sent.append(None)
        else:
            sock.send_multipart([b"", protocol.encode_request("ECHO", str(i))])
            sent.append(str(i).encode())
    got = []
    while len(got) < len(sent):
        assert sock.poll(10_000)
        got.append(protocol.decode_reply(sock.recv_multipart()[-1]))
    for want, reply in zip(sent, got):
        if want is None:
            assert isinstance(reply, protocol.Error) and reply.code == protocol.PROTO
        else:
            assert reply == want
    sock.close()


def test_hello_and_info_sections(node):
    with node.client() as c:
        assert c.execute("HELLO", 2)["proto"] == 2
        assert pytest.raises(CommandError, c.execute, "HELLO", 1).value.code == protocol.NOPROTO
        assert pytest.raises(CommandError, c.execute, "HELLO", 9).value.code == protocol.NOPROTO
        info = c.execute("INFO")
        assert {"server", "clients", "persistence", "stats", "keyspace"} <= set(info)
        assert info["persistence"]["aof_enabled"] == 1
        assert info["persistence"]["aof_last_write_status"] == "ok"
        c.execute("SET", "x", "1")
        assert c.execute("INFO", "keyspace")["keyspace"]["db0"]["keys"] == 1
        wait_for(lambda: c.execute("INFO", "clients")["clients"]["connected_clients"] >= 1, 5,
                 what="connected_clients from the front's monitor")


def test_second_node_on_same_dir_is_refused(node, make_node):
    other = make_node(root=node.root)
    other.endpoint = node.endpoint.rsplit(":", 1)[0] + ":1"  # never reached
    other.log_file = node.root / "other.log"
    other.start(wait=False)
    assert other.proc.wait(20) == 4
    assert "in use by another aofnode" in other.stderr_path.read_text()
    with node.client() as c:
        assert c.execute("PING") == "PONG"
