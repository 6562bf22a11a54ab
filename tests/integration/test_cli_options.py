"""Every `aofnode serve` option is a Config field and every Config field an option: the CLI builds
Config from the options by name (node/tools/cli.py), so a setting cannot be forgotten on one side."""
from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

import pytest

from aofnode import exitcodes
from aofnode.config import Config, read_password_file, resp_config_error
from aofnode.tools import cli
from tests.nodeproc import AOFNODE


# Serve options that are deliberately not Config fields, and why.
NOT_IN_CONFIG = {
    # Config travels as JSON on every actor's command line (/proc/PID/cmdline, readable by every
    # local user): the password goes to the resp actor in its environment (REQUIREPASS_ENV).
    "requirepass",
}


def _serve_dests() -> set[str]:
    serve = cli._parser()._subparsers._group_actions[0].choices["serve"]
    return {a.dest for a in serve._actions} - {"help"}


def test_serve_options_and_config_fields_are_the_same_names():
    assert _serve_dests() - NOT_IN_CONFIG == {f.name for f in dataclasses.fields(Config)}
    assert NOT_IN_CONFIG <= _serve_dests()  # an exception that is no option any more goes too


def test_every_serve_option_is_documented():
    root = Path(__file__).resolve().parents[2]
    text = "".join(p.read_text() for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))])
    serve = cli._parser()._subparsers._group_actions[0].choices["serve"]
    options = {o for a in serve._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
    assert {o for o in options if not re.search(re.escape(o) + r"(?![\w-])", text)} == set()


def test_no_secret_reaches_the_config():
    args = cli._parser().parse_args(["serve", "--resp-bind", "127.0.0.1:6380", "--requirepass", "s3cret"])
    settings = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config)}
    assert "s3cret" not in Config(**settings).to_json()


def test_options_reach_the_config():
    args = cli._parser().parse_args(["serve", "--watchdog-timeout", "3", "--crash-loop-window", "9",
                                     "--maxmemory", "1mb", "--client-output-limit", "2mb"])
    settings = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config)}
    config = Config(**settings)
    assert (config.watchdog_timeout_s, config.crash_loop_window_s) == (3.0, 9.0)
    assert (config.maxmemory, config.client_output_limit) == (1 << 20, 2 << 20)


# -- RESP options: refused at start with one line, before any actor runs -------------------------

def _resp_error(tmp_path, resp_bind, requirepass=None, requirepass_file=None):
    return resp_config_error(Config(dir=str(tmp_path), resp_bind=resp_bind, requirepass_file=requirepass_file),
                             requirepass)


def test_loopback_resp_bind_needs_no_password(tmp_path):
    for bind in ("127.0.0.1:6380", "localhost:6380", "[::1]:6380", "127.0.0.2:1"):
        assert _resp_error(tmp_path, bind) is None, bind


@pytest.mark.parametrize("bind", ["6380", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:x",
                                  ":6380", "example.com:6380", "tcp://127.0.0.1:6380", "::1:6380"])
def test_a_malformed_resp_bind_is_refused(tmp_path, bind):
    error = _resp_error(tmp_path, bind, requirepass="pw")
    assert error is not None and error.startswith("--resp-bind:") and "\n" not in error


def test_a_reachable_resp_bind_needs_a_password(tmp_path):
    for bind in ("0.0.0.0:6380", "192.0.2.1:6380", "[::]:6380"):
        error = _resp_error(tmp_path, bind)
        assert error is not None and "without a password" in error, bind
        assert _resp_error(tmp_path, bind, requirepass="pw") is None


def test_the_password_file_must_be_private_and_not_empty(tmp_path):
    path = tmp_path / "pass"
    path.write_text("s3cret\n")
    path.chmod(0o644)
    error = _resp_error(tmp_path, "0.0.0.0:6380", requirepass_file=str(path))
    assert "0644" in error and "chmod 600" in error
    path.chmod(0o600)
    assert _resp_error(tmp_path, "0.0.0.0:6380", requirepass_file=str(path)) is None
    assert read_password_file(str(path)) == "s3cret"
    path.write_text("\n")
    assert "empty" in _resp_error(tmp_path, "0.0.0.0:6380", requirepass_file=str(path))
    assert "cannot read" in _resp_error(tmp_path, "0.0.0.0:6380", requirepass_file=str(tmp_path / "none"))


def test_password_options_protect_both_fronts_and_only_one_of_them(tmp_path):
    path = tmp_path / "pass"
    path.write_text("s3cret")
    path.chmod(0o600)
    assert _resp_error(tmp_path, None, requirepass="pw") is None  # the ZeroMQ front alone
    assert "one of them" in _resp_error(tmp_path, "127.0.0.1:6380", requirepass="pw", requirepass_file=str(path))
    assert "empty" in _resp_error(tmp_path, "127.0.0.1:6380", requirepass="")


def test_serve_refuses_a_reachable_resp_bind_without_a_password(tmp_path):
    """The real command: exit 5 with one line on stderr, no actor started, no data dir made."""
    proc = subprocess.run([AOFNODE, "serve", "--dir", str(tmp_path / "data"), "--resp-bind", "0.0.0.0:6380",
                           "--log-file", str(tmp_path / "log")], capture_output=True, text=True, timeout=30)
    assert proc.returncode == exitcodes.BIND
    assert proc.stderr.startswith("aofnode: refusing to serve RESP on 0.0.0.0:6380 without a password")
    assert proc.stderr.count("\n") == 1
    assert not (tmp_path / "data").exists()
