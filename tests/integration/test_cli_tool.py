"""``aofnode cli``: redis-cli's argument splitting, reply formatting, help, and failing fast.

The splitter, the formatter and help are tested as plain functions (node/tools/repl.py); one-shot
INFO, an interactive session and the no-node case run the real command against a real node or a
free port with nothing on it.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.nodeproc import free_port
from aofnode.tools import repl
from aofnode.tools.cli import main
from aofnode.client import CommandError
from aofnode.protocol.commands import COMMANDS

AOFNODE = str(Path(sys.executable).parent / "aofnode")


# -- splitting: redis-cli's sdssplitargs ------------------------------------------------------

SPLIT_CASES = [
    # (line, expected arguments)
    ("", []),
    ("   \t ", []),
    ("GET k", [b"GET", b"k"]),
    ("  SET   k  v  ", [b"SET", b"k", b"v"]),
    ("SET\tk\tv", [b"SET", b"k", b"v"]),
    # double quotes: the escapes of sdscatrepr, \xHH as one byte
    ('SET k "a\\x00b"', [b"SET", b"k", b"a\x00b"]),
    ('"\\x41"', [b"A"]),
    ('"\\xff\\xFe"', [b"\xff\xfe"]),
    ('"\\n\\r\\t\\b\\a"', [b"\n\r\t\b\a"]),
    ('"\\\\"', [b"\\"]),
    ('"say \\"hi\\""', [b'say "hi"']),
    ('"\\q"', [b"q"]),  # any other escaped character is itself
    ('"\\x4g"', [b"x4g"]),  # not two hex digits: a plain escaped x
    ('"\\x4"', [b"x4"]),
    ('"a b"', [b"a b"]),
    ('""', [b""]),
    ('"" x', [b"", b"x"]),
    # single quotes take only \'
    ("'a\\x41'", [b"a\\x41"]),
    ("'it\\'s'", [b"it's"]),
    ("'a\\nb'", [b"a\\nb"]),
    ("'a \"b\"'", [b'a "b"']),
    # unquoted: backslashes and \x are literal; a quote inside a word opens a quoted part
    ("a\\x41", [b"a\\x41"]),
    ('a"b c"', [b"ab c"]),
    ("key'x y'", [b"keyx y"]),
    # text beyond ASCII is its UTF-8 bytes
    ("SET k \u00e9", [b"SET", b"k", "\u00e9".encode()]),
    ('"\u00e9\\x00"', ["\u00e9".encode() + b"\x00"]),
]


@pytest.mark.parametrize("line, expected", SPLIT_CASES)
def test_split_args(line, expected):
    assert repl.split_args(line) == expected


INVALID_LINES = [
    '"abc',  # unterminated
    "'abc",
    '"abc\\"',  # the closing quote is escaped
    '"abc\\',  # a backslash at the very end
    '"a"b',  # a closing quote must be followed by a blank or the end
    "'a'b",
    'SET k "v',
]


@pytest.mark.parametrize("line", INVALID_LINES)
def test_split_args_refuses_unbalanced_quotes(line):
    with pytest.raises(repl.InvalidArguments, match=r"Invalid argument\(s\)"):
        repl.split_args(line)


# -- formatting --------------------------------------------------------------------------------

FORMAT_CASES = [
    # (value, as redis-cli prints to a terminal, as it prints to a pipe)
    ("OK", "OK", "OK"),
    (b"v", '"v"', "v"),
    (b"a\x00b\"\\\n\r\t\a\b\x7f", '"a\\x00b\\"\\\\\\n\\r\\t\\a\\b\\x7f"', None),
    (None, "(nil)", ""),
    (3, "(integer) 3", "3"),
    (True, "(integer) 1", "1"),
    (1.5, "(double) 1.5", "1.5"),
    ([], "(empty array)", ""),
    ([b"a", None, 2], '1) "a"\n2) (nil)\n3) (integer) 2', "a\n\n2"),
    ([b"0", [b"k1", b"k2"]], '1) "0"\n2) 1) "k1"\n   2) "k2"', "0\nk1\nk2"),
    (CommandError("WRONGTYPE", "wrong kind"), "(error) WRONGTYPE wrong kind", "WRONGTYPE wrong kind"),
]


@pytest.mark.parametrize("value, tty, piped", FORMAT_CASES)
def test_format_reply(value, tty, piped):
    assert repl.format_reply(value) == tty
    if piped is not None:
        assert repl.format_reply(value, raw=True) == piped


def test_format_reply_numbers_a_long_array_with_aligned_prefixes():
    text = repl.format_reply([b"x"] * 10)
    assert text.splitlines()[0] == ' 1) "x"'
    assert text.splitlines()[9] == '10) "x"'


INFO_REPLY = {
    "server": {"aofnode_version": "0.1.0", "uptime_in_seconds": 2, "cycle_max_ms": 5.0},
    "persistence": {"aof_last_rewrite_refusal": "", "aof_last_bgrewrite_status": "ok"},
    "keyspace": {"db0": {"keys": 3, "expires": 0, "avg_ttl": 0},
                 "db4": {"keys": 1, "expires": 1, "avg_ttl": 9999}},
}
INFO_TEXT = """\
# Server
aofnode_version:0.1.0
uptime_in_seconds:2
cycle_max_ms:5.0

# Persistence
aof_last_rewrite_refusal:
aof_last_bgrewrite_status:ok

# Keyspace
db0:keys=3,expires=0,avg_ttl=0
db4:keys=1,expires=1,avg_ttl=9999"""


def test_info_prints_as_redis_cli_does():
    assert repl.format_info(INFO_REPLY) == INFO_TEXT
    for raw in (False, True):
        assert repl.format_command_reply([b"info"], INFO_REPLY, raw) == INFO_TEXT
        assert repl.format_command_reply([b"INFO", b"keyspace"], {"keyspace": {}}, raw) == "# Keyspace"


def test_a_map_reply_of_another_command_is_not_taken_for_info():
    hello = {"server": "aofnode", "proto": 2}  # str values are status replies: printed bare
    assert repl.format_command_reply([b"HELLO"], hello) == "1) server\n2) aofnode\n3) proto\n4) (integer) 2"


# -- help --------------------------------------------------------------------------------------

def test_help_lists_every_command_with_arity_flags_and_summary():
    text = repl.help_text([])
    for spec in COMMANDS.values():
        line = next(x for x in text.splitlines() if x.split()[:1] == [spec.name])
        assert str(spec.arity) in line.split()
        assert spec.summary in line
    get_line = next(x for x in text.splitlines() if x.startswith("GET "))
    assert "retry_safe" in get_line and "write" not in get_line
    set_line = next(x for x in text.splitlines() if x.startswith("SET "))
    assert "write" in set_line and "denyoom" in set_line


def test_help_command_describes_one_command():
    text = repl.help_text([b"get"])
    assert text == ("  GET key: the value, or nil\n"
                    "  arity: 2 (exactly 1 argument after the name)\n"
                    "  flags: retry_safe")
    assert "arity: -3 (at least 2 arguments after the name)" in repl.help_text([b"SET"])
    assert "flags: write denyoom" in repl.help_text([b"SET"])
    assert "flags: -" in repl.help_text([b"BGREWRITEAOF"])


def test_help_for_an_unknown_command_says_so():
    with pytest.raises(repl.UnknownHelpTopic, match="unknown command 'NOPE'"):
        repl.help_text([b"nope"])


def test_one_shot_help_needs_no_node(capsys):
    nowhere = f"tcp://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    assert main(["cli", "--connect", nowhere, "help", "GET"]) == 0
    assert capsys.readouterr().out == repl.help_text([b"GET"]) + "\n"
    assert main(["cli", "--connect", nowhere, "HELP"]) == 0
    assert "HSET" in capsys.readouterr().out
    assert main(["cli", "--connect", nowhere, "help", "NOPE"]) == 1
    assert "unknown command 'NOPE'" in capsys.readouterr().err
    assert time.monotonic() - t0 < 1.0


# -- against a real node -----------------------------------------------------------------------

def _cli(*args: str, stdin: str | None = None, timeout: float = 20.0) -> subprocess.CompletedProcess:
    return subprocess.run([AOFNODE, "cli", *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout)


def test_one_shot_info_prints_sections_and_keyspace_lines(make_node):
    node = make_node().start()
    with node.client() as c:
        c.execute("MSET", "a", "1", "b", "2", "c", "3")
    done = _cli("--connect", node.endpoint, "INFO")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "# Server"
    assert "# Keyspace" in lines
    assert "db0:keys=3,expires=0,avg_ttl=0" in lines
    assert not any("{" in line for line in lines)
    assert all(":" in line or line.startswith("# ") or not line for line in lines)


def test_interactive_session_sends_escapes_as_bytes(make_node):
    node = make_node().start()
    session = 'SET k "a\\x00b"\nSET "k\\x41" \'it\\\'s\'\nGET k\nSET k "open\nhelp GET\nquit\n'
    done = _cli("--connect", node.endpoint, stdin=session)
    assert done.returncode == 0, done.stderr
    assert '"a\\x00b"' in done.stdout
    assert "Invalid argument(s)" in done.stdout
    assert "arity: 2 (exactly 1 argument after the name)" in done.stdout
    with node.client() as c:
        assert c.execute("GET", "k") == b"a\x00b"
        assert c.execute("GET", "kA") == b"it's"


def test_no_node_fails_fast_after_one_attempt():
    endpoint = f"tcp://127.0.0.1:{free_port()}"  # nothing listens here
    # The bound is over the CLI's own start-up, measured now: under load, starting Python alone
    # can take seconds, and what is checked is that no second attempt follows the first.
    t0 = time.monotonic()
    assert _cli("--help").returncode == 0
    start_up = time.monotonic() - t0
    for command in (["PING"], ["SET", "k", "v"], []):  # a write, and the interactive prompt too
        t0 = time.monotonic()
        done = _cli("--connect", endpoint, *command, stdin="PING\n")
        elapsed = time.monotonic() - t0
        assert done.returncode == 1
        assert done.stderr.strip().startswith(f"Could not connect to aofnode at {endpoint}: no answer in 1.0 s")
        assert elapsed < start_up + 2.5, (elapsed, start_up)


def test_fail_fast_probe_uses_a_shorter_timeout_when_asked():
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    done = _cli("--connect", endpoint, "--timeout", "0.3", "PING")
    assert done.returncode == 1
    assert "no answer in 0.3 s" in done.stderr


def test_a_timeout_given_is_the_first_check_s_too():
    """--timeout is not cut to the 1 s of the first check when it is given."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    done = _cli("--connect", endpoint, "--timeout", "2.5", "PING")
    assert done.returncode == 1
    assert "no answer in 2.5 s" in done.stderr
    assert time.monotonic() - t0 >= 2.5
    helptext = _cli("--help").stdout
    assert "--timeout SECONDS" in helptext and "-n DB, --db DB" in helptext


def test_no_answer_hints_at_curve():
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    done = _cli("--connect", endpoint, "PING")
    assert "is the node running" in done.stderr and "CURVE" in done.stderr
    assert "--curve-server-key" in done.stderr


def test_db_option_picks_the_database(make_node):
    node = make_node().start()
    assert _cli("--connect", node.endpoint, "-n", "3", "SET", "k", "three").returncode == 0
    assert _cli("--connect", node.endpoint, "--db", "3", "GET", "k").stdout.strip() == "three"
    assert _cli("--connect", node.endpoint, "GET", "k").stdout.strip() == ""  # db 0: nil, raw
    with node.client() as c:
        assert c.execute("GET", "k") is None
    session = _cli("--connect", node.endpoint, "-n", "3", stdin="GET k\nquit\n")
    assert "[3]>" in session.stdout and '"three"' in session.stdout
    refused = _cli("--connect", node.endpoint, "-n", "16", "PING")
    assert refused.returncode == 2 and "0 to 15" in refused.stderr


def test_interactive_transaction(make_node):
    node = make_node().start()
    session = "MULTI\nSET t 1\nINCR t\nEXEC\nWATCH t\nMULTI\nINCR t\nDISCARD\nEXEC\nquit\n"
    done = _cli("--connect", node.endpoint, stdin=session)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.count("QUEUED") == 3 and "1) OK" in out and "2) (integer) 2" in out
    assert "ERR EXEC without MULTI" in out
    with node.client() as c:
        assert c.execute("GET", "t") == b"2"
