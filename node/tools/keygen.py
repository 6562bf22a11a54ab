"""``aofnode keygen NAME [--dir DIR]``: a CURVE key pair, and reading one back for the CLI.

Writes ``NAME.key`` (the public certificate: give it to the other side; a node allows a client
whose ``.key`` is in its ``--curve-allow`` directory) and ``NAME.key_secret`` (public and secret
key: keep it; 0600 from the first byte, never created looser and then tightened). The format
is zmq.auth's (``zmq.auth.create_certificates``), so pyzmq and czmq tools read them too. An
existing file is never overwritten: a key pair in use is replaced on purpose, by hand.
"""
from __future__ import annotations

import datetime
import os
import sys

import zmq
from zmq.auth import load_certificate

__all__ = ["write_key_pair", "load_client_curve", "keygen_main"]

_SECRET_BANNER = ("#   ****  Generated on {now} by aofnode keygen  ****\n"
                  "#   ZeroMQ CURVE **Secret** Certificate\n"
                  "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n")
_PUBLIC_BANNER = ("#   ****  Generated on {now} by aofnode keygen  ****\n"
                  "#   ZeroMQ CURVE Public Certificate\n"
                  "#   Give this file to the other side (a node's --curve-allow directory, or a\n"
                  "#   client's --curve-server-key).\n\n")


def _write_new(path: str, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)  # whatever the umask
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def write_key_pair(directory: str, name: str) -> tuple[str, str]:
    """Write ``NAME.key`` (0644) and ``NAME.key_secret`` (0600); return their paths."""
    if not name or os.sep in name or name.startswith("."):
        raise ValueError(f"bad key name {name!r}: a plain file name, no '/' and no leading '.'")
    public, secret = zmq.curve_keypair()
    now = datetime.datetime.now().isoformat(timespec="seconds")
    os.makedirs(directory, exist_ok=True)
    public_path = os.path.join(directory, f"{name}.key")
    secret_path = os.path.join(directory, f"{name}.key_secret")
    for path in (public_path, secret_path):
        if os.path.exists(path):
            raise FileExistsError(f"{path} exists; remove it first to replace the key pair")
    body = f'metadata\ncurve\n    public-key = "{public.decode()}"\n'
    _write_new(secret_path, _SECRET_BANNER.format(now=now) + body + f'    secret-key = "{secret.decode()}"\n', 0o600)
    _write_new(public_path, _PUBLIC_BANNER.format(now=now) + body, 0o644)
    return public_path, secret_path


def load_client_curve(server_key_file: str, client_key_file: str) -> tuple[bytes, bytes, bytes]:
    """``Client(curve=...)`` from a server's public certificate and a client's secret one."""
    server_public, _ = load_certificate(server_key_file)
    public, secret = load_certificate(client_key_file)
    if not secret:
        raise ValueError(f"{client_key_file} holds no secret key (give the .key_secret file)")
    return server_public, public, secret


def keygen_main(name: str, directory: str) -> int:
    try:
        public_path, secret_path = write_key_pair(directory, name)
    except (OSError, ValueError) as exc:
        print(f"aofnode keygen: {exc}", file=sys.stderr)
        return 1
    print(f"public key: {public_path}\nsecret key: {secret_path} (0600: keep it private)")
    return 0
