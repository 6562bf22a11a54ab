"""Integration: clean shutdown, AOF damage at start-up, AOF write errors, the CLI."""
import os
import resource
import signal
import subprocess


from aofnode.aof import format as aof_format
from aofnode import protocol
from aofnode.client import CommandError
from tests.nodeproc import AOFNODE, wait_for


def test_sigterm_shuts_down_cleanly_and_keeps_everything(make_node):
    node = make_node("everysec").start()
    with node.client() as c:
        c.execute_many([("SET", f"k{i}", f"v{i}") for i in range(1000)])
    node.proc.send_signal(signal.SIGTERM)
    assert node.proc.wait(30) == 0
    for role in ("front", "log", "closer"):
        assert any(ev["actor"] == role for ev in node.events("actor_stopped")), role
    assert node.events("node_stopped")[-1]["exit_code"] == 0
    result = aof_format.scan(str(node.aof_path))
    assert result.status == "ok" and result.entries >= 1000
    node.start()
    with node.client() as c:
        assert c.execute("DBSIZE") == 1000


def test_sighup_without_curve_is_logged_and_ignored(make_node):
    """SIGHUP only means "reread the CURVE allow-list". Without CURVE it must not stop the node
    (the default action would, exit 129 with no stop line), nor any actor: a hangup of the
    terminal sends it to the whole process group."""
    node = make_node("always").start()
    pids = node.actor_pids()
    node.proc.send_signal(signal.SIGHUP)
    for pid in pids.values():
        os.kill(pid, signal.SIGHUP)
    wait_for(lambda: node.events("sighup_ignored"), 10, what="sighup_ignored in the log")
    with node.client() as c:
        assert c.execute("SET", "after-hup", "1") == "OK"
    assert node.proc.poll() is None
    assert node.actor_pids() == pids and not node.events("actor_died")
    assert node.stop() == 0
    assert node.events("node_stopped")[-1]["exit_code"] == 0


def test_torn_tail_is_truncated_at_start(make_node):
    node = make_node().start()
    with node.client() as c:
        c.execute("SET", "a", "1")
    node.stop()
    good = node.aof_path.stat().st_size
    with open(node.aof_path, "ab") as f:
        f.write(aof_format.encode_entries([[0, "SET", b"b", b"2"]])[:-3])  # a torn last record
    node.start()
    with node.client() as c:
        assert c.execute("GET", "a") == b"1"
        assert c.execute("GET", "b") is None
    cut = node.events("aof_truncated")
    assert len(cut) == 1 and cut[0]["offset"] == good


def test_corrupt_middle_record_refuses_start_and_names_the_repair(make_node):
    node = make_node().start()
    with node.client() as c:
        for i in range(3):
            c.execute("SET", f"k{i}", "x" * 100)
    node.stop()
    data = bytearray(node.aof_path.read_bytes())
    data[aof_format.HEADER_SIZE + 20] ^= 0xFF  # inside the first record's payload
    node.aof_path.write_bytes(bytes(data))
    node.start(wait=False)
    assert node.proc.wait(30) == 3
    assert "check-aof --fix" in node.stderr_path.read_text()
    ev = node.events("aof_corrupt")[-1]
    assert ev["offset"] == aof_format.HEADER_SIZE
    node.kill_all()
    fixed = subprocess.run([AOFNODE, "check-aof", "--fix", "--yes", str(node.aof_path)],
                           capture_output=True, text=True, timeout=60)
    assert fixed.returncode == 0, fixed.stdout
    node.start()
    with node.client() as c:
        assert c.execute("DBSIZE") == 0  # everything from the bad record on was cut


def test_write_errors_refuse_writes_keep_reads_and_recover(make_node):
    """A real EFBIG from write(2) (RLIMIT_FSIZE set on the live log actor) stands for ENOSPC."""
    node = make_node("always", log_via_pipe=True).start()
    with node.client() as c:
        c.execute("SET", "before", "1")
        log_pid = c.execute("INFO", "server")["server"]["process_id"]
        size = c.execute("INFO", "persistence")["persistence"]["aof_current_size"]
        resource.prlimit(log_pid, resource.RLIMIT_FSIZE, (size + 200, resource.RLIM_INFINITY))
        acked = {}
        refused = 0
        for i in range(50):
            try:
                assert c.execute("SET", f"k{i}", "y" * 50) == "OK"
                acked[f"k{i}"] = b"y" * 50
            except CommandError as exc:
                assert exc.code == protocol.MISCONF
                refused += 1
        assert refused > 0
        persistence = c.execute("INFO", "persistence")["persistence"]
        assert persistence["aof_last_write_status"] == "err"
        assert c.execute("GET", "before") == b"1"  # reads keep working
        assert len(node.events("aof_write_error")) == 1  # logged once, not per retry
        resource.prlimit(log_pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        wait_for(lambda: c.execute("INFO", "persistence")["persistence"]["aof_last_write_status"] == "ok",
                 10, what="AOF writable again")
        assert c.execute("SET", "after", "2") == "OK"
    node.stop()
    node.start()
    with node.client() as c:
        for key, value in acked.items():
            assert c.execute("GET", key) == value
        assert c.execute("GET", "after") == b"2"
    assert aof_format.scan(str(node.aof_path)).status == "ok"


def test_cli_one_shot_output(node):
    def cli(*args):
        return subprocess.run([AOFNODE, "cli", "--connect", node.endpoint, *args],
                              capture_output=True, text=True, timeout=30)
    assert cli("SET", "name", "aof").stdout.strip() == "OK"
    assert cli("GET", "name").stdout.strip() == "aof"
    assert cli("INCR", "n").stdout.strip() == "1"
    bad = cli("HGET", "name", "f")
    assert bad.returncode == 1 and bad.stdout.startswith("WRONGTYPE")
    assert "aof_enabled:1" in cli("INFO", "persistence").stdout


def test_cli_interactive_prompt(node, tmp_path):
    script = "SET greeting 'hello world'\nGET greeting\nSELECT 2\nGET greeting\nHGET greeting f\nquit\n"
    out = subprocess.run([AOFNODE, "cli", "--connect", node.endpoint], input=script,
                         capture_output=True, text=True, timeout=30,
                         env={**os.environ, "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert '"hello world"' in text                  # a bulk string, quoted as redis-cli does
    assert "[2]> " in text                          # the prompt shows the selected db
    assert "(nil)" in text                          # db 2 has no such key
    assert "(nil)" in text.split("[2]> ", 1)[1]
    assert (tmp_path / ".aofnode_history").exists()
