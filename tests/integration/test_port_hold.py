"""A front's restart never gives its port up: the supervisor binds each client endpoint once
and the fronts inherit the listening sockets, so another local user looping on bind() while a
front is killed never gets the port, and the node keeps serving."""
from __future__ import annotations

import os
import signal
import socket
import threading

import pytest

from tests.nodeproc import Node, free_port, wait_for

KILLS = 3


class Grabber(threading.Thread):
    """Loops on bind()+listen() of the ports, as a hostile local user would."""

    def __init__(self, ports: list[int]) -> None:
        super().__init__(daemon=True)
        self.ports = ports
        self.grabbed: list[int] = []
        self.tries = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for port in self.ports:
                s = socket.socket()
                try:
                    s.bind(("127.0.0.1", port))
                    s.listen(1)
                    self.grabbed.append(port)
                except OSError:
                    pass
                finally:
                    s.close()
                self.tries += 1


def _resp_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(100) == b"+PONG\r\n"
    except OSError:
        return False


@pytest.mark.parametrize("role", ["front", "resp"])
def test_a_port_grab_during_a_front_restart_gets_nothing(tmp_path, role):
    resp_port = free_port()
    node = Node(tmp_path, appendfsync="no", extra=("--resp-bind", f"127.0.0.1:{resp_port}")).start()
    grabber = Grabber([int(node.endpoint.rsplit(":", 1)[1]), resp_port])
    try:
        wait_for(lambda: _resp_ping(resp_port), 20, what="RESP front up")
        grabber.start()
        with node.client(timeout=10) as c:
            for i in range(KILLS):
                pid = node.actor_pids()[role]
                os.kill(pid, signal.SIGKILL)
                wait_for(lambda pid=pid: node.actor_pids().get(role) not in (None, pid), 20,
                         what=f"{role} restarted")
                assert node.proc.poll() is None, node.stderr_path.read_text()
                assert c.execute("SET", "k", str(i)) == "OK"
                wait_for(lambda: _resp_ping(resp_port), 20, what="RESP front serving")
        assert node.proc.poll() is None
        assert grabber.tries > 100
        assert grabber.grabbed == []
    finally:
        grabber.done.set()
        grabber.join(5)
        node.kill_all()


def test_an_ipc_endpoint_survives_a_front_restart_and_goes_at_stop(tmp_path):
    sock_dir = tmp_path / "sock"
    sock_dir.mkdir(mode=0o700)
    path = sock_dir / "node.sock"
    node = Node(tmp_path, appendfsync="no")
    node.endpoint = f"ipc://{path}"
    node.start()
    try:
        inode = path.stat().st_ino
        with node.client(timeout=10) as c:
            assert c.execute("SET", "k", "1") == "OK"
            pid = node.actor_pids()["front"]
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: node.actor_pids().get("front") not in (None, pid), 20, what="front restarted")
            assert c.execute("INCR", "k") == 2
        assert path.stat().st_ino == inode  # the same socket all along
        assert node.stop() == 0
        assert not path.exists()
    finally:
        node.kill_all()
