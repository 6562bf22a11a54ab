"""CURVE authentication of clients, with an allow-list of public keys.

Design:
- Owns the front's ZAP handler (ZeroMQ RFC 27): a REP socket bound to ``inproc://zeromq.zap.01``
  in the front's own context, served by the front's own loop (``runtime.watch``), not by a
  thread. It cannot die apart from the front: if the front dies, its client socket dies too.
- Fails closed. libzmq accepts *any* CURVE client when no ZAP handler is bound (measured with
  libzmq 4.3.5: a valid handshake with an unknown key got through with no handler, and with a
  handler bound and then closed). ``ZAP_ENFORCE_DOMAIN`` on the client socket makes libzmq refuse
  every handshake that no handler answers instead, so the order of ``setup`` is:
  1. load the server's secret certificate and the allow-list (a bad one: the node does not start);
  2. bind the ZAP handler and watch it on the front's loop;
  3. make the client socket a CURVE server with ``ZAP_DOMAIN`` and ``ZAP_ENFORCE_DOMAIN`` (read
     back: a libzmq that ignores it is refused, never trusted);
  4. only then does the front bind its client endpoint.
  Belt and braces: each tick checks the handler is still open; if not, the client endpoint is
  unbound and the front stops with an error, so the supervisor restarts it, handler first.
- The allow-list is every ``*.key`` certificate in ``--curve-allow`` (zmq.auth's format, as
  ``aofnode keygen`` writes). It is reread on SIGHUP: the signal handler only sets a flag, the
  reload runs in the next tick. A reread that fails keeps the previous list (and says so).
- A refusal never costs more than one log line a second: ``auth_refused`` (a ZAP refusal: unknown
  key, with the peer's address from the ZAP request) and ``auth_handshake_failed`` (a failure
  before ZAP, seen on the front's socket monitor: a plain client, a wrong server key; libzmq's
  monitor gives no peer address for those) each carry the count since their last line.
- Never: touch the keyspace, block (the allow-list is a directory of small files, read on
  SIGHUP only), or accept a request whose domain or mechanism it does not know.
"""
from __future__ import annotations

import ipaddress
import os
import signal
import threading
import time

import zmq
from zmq.auth import load_certificate
from zmq.utils import z85

# One refusal line a second at most (STYLE.md: no line per request); the rest are counted.
from aofnode.fronts.core import LOG_INTERVAL_S

__all__ = ["Auth", "CurveConfigError", "setup", "config_error", "insecure_bind",
           "MONITOR_EVENTS", "ZAP_ENDPOINT", "DOMAIN"]

ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # fixed by RFC 27: libzmq connects here per handshake
DOMAIN = b"aofnode"
# Handshake failures seen before ZAP is asked (the front adds these to its monitor's mask).
# HANDSHAKE_FAILED_AUTH is left out: it is a ZAP refusal, already logged as auth_refused.
MONITOR_EVENTS = zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
TEST_BREAK_ENV = "AOFNODE_TEST_ZAP_BROKEN"  # test hook: the handler is closed right after start

_PROTOCOL_ERRORS = {getattr(zmq, name): name.removeprefix("PROTOCOL_ERROR_").lower()
                    for name in dir(zmq) if name.startswith("PROTOCOL_ERROR_")}


class CurveConfigError(Exception):
    """The CURVE settings cannot be used (missing file, no secret key, no directory)."""


def curve_enabled(config) -> bool:
    return bool(config.curve_secret_key or config.curve_allow)


def is_local_endpoint(endpoint: str) -> bool:
    """True for ipc:// and inproc://, and for tcp:// on a loopback address; anything else
    (``*``, 0.0.0.0, an interface name, a host name but localhost) counts as reachable."""
    transport, _, rest = endpoint.partition("://")
    if transport in ("ipc", "inproc"):
        return True
    if transport != "tcp":
        return False
    host = rest.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def config_error(config) -> str | None:
    """Why ``serve`` must not start with these settings (one line), or None."""
    if curve_enabled(config):
        if not (config.curve_secret_key and config.curve_allow):
            return "--curve-secret-key and --curve-allow go together"
        try:
            _load_server_key(config.curve_secret_key)
            _read_allow_dir(config.curve_allow)
        except CurveConfigError as exc:
            return str(exc)
        return None
    if not is_local_endpoint(config.bind) and not config.insecure_bind:
        return (f"refusing to bind {config.bind} without CURVE: anyone who reaches it could read "
                "and write everything; use --curve-secret-key and --curve-allow, or --insecure-bind")
    return None


def insecure_bind(config) -> bool:
    """A reachable endpoint without CURVE: allowed with --insecure-bind, and warned about."""
    return not curve_enabled(config) and not is_local_endpoint(config.bind)


def _load_server_key(path: str) -> tuple[bytes, bytes]:
    try:
        public, secret = load_certificate(path)
    except (OSError, ValueError) as exc:
        raise CurveConfigError(f"cannot read the CURVE secret key {path}: {exc}") from exc
    if not secret:
        raise CurveConfigError(f"{path} holds no secret key (give the .key_secret file of "
                               "'aofnode keygen', not the public .key)")
    return public, secret


def _read_allow_dir(path: str) -> tuple[dict[bytes, str], list[str]]:
    """The allowed keys (32 raw bytes -> certificate name) and the files that could not be read."""
    try:
        names = sorted(n for n in os.listdir(path) if n.endswith(".key"))
    except OSError as exc:
        raise CurveConfigError(f"cannot read the CURVE allow directory {path}: {exc.strerror or exc}") from exc
    keys: dict[bytes, str] = {}
    bad: list[str] = []
    for name in names:
        try:
            public, _ = load_certificate(os.path.join(path, name))
            raw = z85.decode(public)
        except Exception:  # a malformed file: skipped and reported, never fatal on reload
            raw = b""
        if len(raw) == 32:
            keys[raw] = name[:-len(".key")]
        else:
            bad.append(name)
    return keys, bad


class Auth:
    """The ZAP handler and the allow-list of one front (see the module docstring)."""

    def __init__(self, config, ctx: zmq.Context, log) -> None:
        self.config = config
        self.ctx = ctx
        self.log = log
        self.zap: zmq.Socket | None = None
        self.clients: zmq.Socket | None = None
        self.allowed: dict[bytes, str] = {}
        self.refused = 0             # ZAP refusals, ever (INFO auth_refused)
        self.handshake_failures = 0  # failures before ZAP (INFO auth_handshake_failures)
        self.lost = False            # the handler was found closed: the front stops
        self._reload_wanted = False
        self._old_sighup = None
        self._test_break = os.environ.get(TEST_BREAK_ENV) == "1"  # read once, at start
        # Rate limits: (count since the last line, time of the last line, fields of the latest).
        self._refusals = _RateLimited(log, "auth_refused", "refused")
        # One limiter per reason: a burst of one kind (a plain client's reconnects end in broken
        # pipes too) must not hide another kind behind it for as long as it lasts.
        self._failures: dict[str, _RateLimited] = {}

    # -- start (steps 1-3 of the module docstring) ---------------------------------------------

    def start(self, runtime, clients: zmq.Socket) -> None:
        public, secret = _load_server_key(self.config.curve_secret_key)          # 1.
        self._reload(initial=True)
        zap = self.zap = self.ctx.socket(zmq.REP)                               # 2.
        zap.setsockopt(zmq.LINGER, 0)
        zap.bind(ZAP_ENDPOINT)
        runtime.watch(zap, self._serve_zap)
        clients.setsockopt(zmq.CURVE_SERVER, 1)                                  # 3.
        clients.setsockopt(zmq.CURVE_SECRETKEY, secret)
        clients.setsockopt(zmq.ZAP_DOMAIN, DOMAIN)
        try:
            clients.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
            enforced = clients.getsockopt(zmq.ZAP_ENFORCE_DOMAIN) == 1
        except (AttributeError, zmq.ZMQError):
            enforced = False
        if not enforced:
            raise CurveConfigError(f"libzmq {zmq.zmq_version()} cannot enforce ZAP "
                                   "(ZAP_ENFORCE_DOMAIN): CURVE would accept everyone if the "
                                   "handler stopped; refusing to start")
        self.clients = clients
        if threading.current_thread() is threading.main_thread():
            self._old_sighup = signal.signal(signal.SIGHUP, self._on_sighup)
        self.log.info("auth_started", server_key=public.decode(), allow_dir=self.config.curve_allow,
                      allowed_keys=len(self.allowed))
        if self._test_break:  # test hook: the handler is gone before any client could use it
            runtime.unwatch(zap)
            zap.close(linger=0)

    def _on_sighup(self, _signum, _frame) -> None:
        self._reload_wanted = True  # only a flag: the reload runs in the next tick

    def request_reload(self) -> None:
        self._reload_wanted = True

    # -- ZAP ----------------------------------------------------------------------------------

    def _serve_zap(self) -> None:
        zap = self.zap
        while True:
            try:
                frames = zap.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            zap.send_multipart(self.answer(frames))

    def answer(self, frames: list[bytes]) -> list[bytes]:
        """The ZAP reply to one request: 200 for an allowed CURVE key, 400 otherwise."""
        if len(frames) < 6 or frames[0] != b"1.0":
            request_id = frames[1] if len(frames) > 1 else b""
            return [b"1.0", request_id, b"500", b"malformed ZAP request", b"", b""]
        _version, request_id, domain, address, _identity, mechanism, *credentials = frames
        key = credentials[0] if mechanism == b"CURVE" and len(credentials) == 1 else b""
        name = self.allowed.get(key) if domain == DOMAIN else None
        if name is not None:
            return [b"1.0", request_id, b"200", b"OK", name.encode(), b""]
        self.refused += 1
        self._refusals.add(time.monotonic(), address=address.decode("ascii", "replace"),
                           mechanism=mechanism.decode("ascii", "replace"),
                           key=z85.encode(key).decode() if len(key) == 32 else "",
                           refused_total=self.refused)
        return [b"1.0", request_id, b"400", b"key not allowed", b"", b""]

    def on_monitor_event(self, event: dict) -> None:
        """A handshake that failed before ZAP (wired from the front's ``_read_monitor``)."""
        if event["event"] not in (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL):
            return
        self.handshake_failures += 1
        value = event["value"]
        if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
            reason = _PROTOCOL_ERRORS.get(value, f"protocol error {value:#x}")
        else:
            reason = os.strerror(value) if value else "no detail"
        if reason not in self._failures and len(self._failures) >= MAX_FAILURE_REASONS:
            reason = "other"
        limiter = self._failures.get(reason)
        if limiter is None:
            limiter = self._failures[reason] = _RateLimited(self.log, "auth_handshake_failed", "failures")
        limiter.add(time.monotonic(), reason=reason, failures_total=self.handshake_failures)

    # -- tick, reload, stop -------------------------------------------------------------------

    def on_tick(self, now: float) -> bool:
        """Reload if SIGHUP asked, flush counted refusals; False once the handler is gone (the
        client endpoint is then unbound: the front must stop)."""
        if self.zap is None or self.zap.closed:
            if not self.lost:
                self._fail_closed()
            return False
        if self._reload_wanted:
            self._reload_wanted = False
            self._reload(initial=False)
        self._refusals.flush(now)
        for limiter in self._failures.values():
            limiter.flush(now)
        return True

    def _fail_closed(self) -> None:
        self.lost = True
        endpoint = self.config.bind
        try:
            endpoint = self.clients.getsockopt(zmq.LAST_ENDPOINT).decode() or endpoint
            self.clients.unbind(endpoint)
            unbound = True
        except zmq.ZMQError:
            unbound = False
        self.log.error("auth_handler_lost", bind=endpoint, unbound=unbound)

    def _reload(self, initial: bool) -> None:
        try:
            keys, bad = _read_allow_dir(self.config.curve_allow)
        except CurveConfigError as exc:
            if initial:
                raise
            self.log.error("auth_reload_failed", allow_dir=self.config.curve_allow, error=str(exc),
                           kept_keys=len(self.allowed))
            return
        added = len(keys.keys() - self.allowed.keys())
        removed = len(self.allowed.keys() - keys.keys())
        self.allowed = keys
        if bad:
            self.log.warning("auth_bad_certificates", allow_dir=self.config.curve_allow,
                             files=", ".join(bad))
        if not initial:
            self.log.info("auth_keys_reloaded", allow_dir=self.config.curve_allow,
                          allowed_keys=len(keys), added=added, removed=removed)

    def counters(self) -> dict[str, int]:
        return {"auth_enabled": 1, "auth_allowed_keys": len(self.allowed), "auth_refused": self.refused,
                "auth_handshake_failures": self.handshake_failures}

    def close(self) -> None:
        if self.zap is not None and not self.zap.closed:
            self.zap.close(linger=0)
        if self._old_sighup is not None:
            signal.signal(signal.SIGHUP, self._old_sighup)
            self._old_sighup = None


# Distinct handshake-failure reasons kept apart in the log (the rest count as "other"): libzmq
# has a dozen protocol errors, and errno values are few.
MAX_FAILURE_REASONS = 32


class _RateLimited:
    """One warning line a second at most, carrying how many happened since the last line."""

    def __init__(self, log, event: str, count_field: str) -> None:
        self.log = log
        self.event = event
        self.count_field = count_field
        self.pending = 0
        self.last_line = -LOG_INTERVAL_S
        self.fields: dict = {}

    def add(self, now: float, **fields) -> None:
        self.pending += 1
        self.fields = fields
        self.flush(now)

    def flush(self, now: float) -> None:
        if self.pending and now - self.last_line >= LOG_INTERVAL_S:
            self.log.warning(self.event, **self.fields, **{self.count_field: self.pending})
            self.pending = 0
            self.last_line = now


def setup(config, ctx: zmq.Context, clients: zmq.Socket, runtime, log) -> Auth | None:
    """Steps 1-3 for the front's client socket, before its bind; None when CURVE is off."""
    if not curve_enabled(config):
        return None
    auth = Auth(config, ctx, log)
    try:
        auth.start(runtime, clients)
    except BaseException:
        auth.close()
        raise
    return auth
