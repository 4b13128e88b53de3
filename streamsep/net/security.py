"""Who may connect: the loopback-or-CURVE bind rule, CURVE key files, key generation.

A streamsep server socket (publisher, control) binds to a non-loopback address only with CURVE
(encryption plus a directory of allowed client public keys), unless the configuration says
``insecure = true`` explicitly. Key files are ZeroMQ certificates as written by
:func:`zmq.auth.create_certificates`: ``NAME.key`` holds the public key, ``NAME.key_secret``
both keys.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import zmq
import zmq.auth

from streamsep.errors import ConfigError

if TYPE_CHECKING:
    from zmq.auth.thread import ThreadAuthenticator

__all__ = [
    "is_local_endpoint",
    "check_bind",
    "CurveServerKeys",
    "CurveClientKeys",
    "load_server_keys",
    "load_client_keys",
    "make_keys",
]

_LOGGER = logging.getLogger(__name__)

_LOCAL_TRANSPORTS: Final = ("ipc://", "inproc://")
_LOCAL_NAMES: Final = ("localhost", "ip6-localhost")
_CLI_FLAGS: Final = {"publish": "--publish-insecure", "control": "--publish-insecure"}
"""The command-line option of ``streamsep stream`` that sets ``<section>.insecure``."""


def is_local_endpoint(endpoint: str) -> bool:
    """Whether binding ``endpoint`` is reachable from this machine only.

    True for ``ipc://``, ``inproc://`` and ``tcp://`` on 127.0.0.0/8, ``::1`` or ``localhost``.
    Anything else (``*``, ``0.0.0.0``, another address, an interface name, another transport)
    counts as reachable from the network.
    """
    if endpoint.startswith(_LOCAL_TRANSPORTS):
        return True
    if not endpoint.startswith("tcp://"):
        return False
    host = endpoint[len("tcp://") :].rpartition(":")[0]
    host = host.rpartition(";")[2]  # "tcp://source;host:port" names the source first
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(endpoint: str, *, curve: bool, insecure: bool, section: str) -> None:
    """Refuse a bind reachable from the network without CURVE (call before opening sockets).

    Parameters
    ----------
    endpoint : str
        ZeroMQ endpoint to bind.
    curve : bool
        Whether CURVE is configured.
    insecure : bool
        The explicit opt-out.
    section : str
        Settings section for the message (``publish``, ``control``).

    Raises
    ------
    ConfigError
        If ``endpoint`` is not local, ``curve`` is off and ``insecure`` is not set.
    """
    if curve or is_local_endpoint(endpoint):
        return
    if insecure:
        _LOGGER.warning("%s: binding %s without CURVE (insecure = true)", section, endpoint)
        return
    flag = _CLI_FLAGS.get(section)
    hint = f" (streamsep stream: {flag})" if flag else ""
    raise ConfigError(
        f"refusing to bind {endpoint} without CURVE: anyone who can reach it could "
        f"subscribe; set {section}.insecure = true{hint} to allow it"
    )


@dataclass(frozen=True)
class CurveServerKeys:
    """A server's CURVE key pair and the public keys of the clients it admits."""

    public: bytes
    """Server public key, Z85 (40 bytes)."""
    secret: bytes
    """Server secret key, Z85 (40 bytes)."""
    authorized_keys_dir: Path
    """Folder of client public key files (``*.key``); read once at start."""

    def start_authenticator(self, context: zmq.Context[zmq.Socket[bytes]]) -> ThreadAuthenticator:
        """Start the ZAP handler of ``context`` admitting the authorized clients only."""
        from zmq.auth.thread import ThreadAuthenticator

        auth = ThreadAuthenticator(context, log=logging.getLogger(f"{__name__}.zap"))
        auth.start()
        auth.configure_curve(domain="*", location=str(self.authorized_keys_dir))
        return auth

    def apply(self, socket: zmq.Socket[bytes]) -> None:
        """Make ``socket`` a CURVE server (before it binds)."""
        socket.curve_secretkey = self.secret
        socket.curve_publickey = self.public
        socket.curve_server = True


@dataclass(frozen=True)
class CurveClientKeys:
    """What a client needs to talk to a CURVE server."""

    server_public: bytes
    """The server's public key, Z85."""
    public: bytes
    """The client's public key, Z85."""
    secret: bytes
    """The client's secret key, Z85."""

    def apply(self, socket: zmq.Socket[bytes]) -> None:
        """Make ``socket`` a CURVE client of the server (before it connects)."""
        socket.curve_serverkey = self.server_public
        socket.curve_publickey = self.public
        socket.curve_secretkey = self.secret


def _load(path: str | Path, *, secret: bool, what: str) -> tuple[bytes, bytes | None]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what}: key file not found: {path}")
    try:
        public, secret_key = zmq.auth.load_certificate(path)
    except (ValueError, OSError) as e:
        raise ConfigError(f"{what}: cannot read key file {path}: {e}") from e
    if secret and secret_key is None:
        raise ConfigError(f"{what}: {path} holds no secret key (use the .key_secret file)")
    return public, secret_key


def load_server_keys(
    secret_key_file: str | Path, authorized_keys_dir: str | Path
) -> CurveServerKeys:
    """Read a server key pair and check the authorized keys folder.

    Raises
    ------
    ConfigError
        If a file is missing or unreadable, or the folder holds no ``*.key`` file.
    """
    public, secret = _load(secret_key_file, secret=True, what="server_secret_key_file")
    folder = Path(authorized_keys_dir)
    if not folder.is_dir():
        raise ConfigError(f"authorized_keys_dir: folder not found: {folder}")
    keys = sorted(folder.glob("*.key"))
    if not keys:
        raise ConfigError(f"authorized_keys_dir: no client public keys (*.key) in {folder}")
    for key in keys:
        _load(key, secret=False, what="authorized_keys_dir")
    assert secret is not None
    return CurveServerKeys(public, secret, folder)


def load_client_keys(server_key_file: str | Path, client_key_file: str | Path) -> CurveClientKeys:
    """Read the server's public key file and the client's secret key file.

    Raises
    ------
    ConfigError
        If a file is missing or unreadable, or the client file has no secret key.
    """
    server_public, _ = _load(server_key_file, secret=False, what="curve server key")
    public, secret = _load(client_key_file, secret=True, what="curve client key")
    assert secret is not None
    return CurveClientKeys(server_public, public, secret)


def make_keys(outdir: str | Path, name: str) -> tuple[Path, Path]:
    """Write a new CURVE key pair ``OUTDIR/NAME.key`` (public) and ``NAME.key_secret``.

    The secret file is made readable by its owner only.

    Returns
    -------
    tuple of Path
        ``(public_file, secret_file)``.

    Raises
    ------
    ConfigError
        If ``name`` is not a plain file name or either file exists already.
    """
    if not name or Path(name).name != name or name.startswith("."):
        raise ConfigError(f"key name must be a plain file name, got {name!r}")
    folder = Path(outdir)
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise ConfigError(f"refusing to overwrite {path}")
    folder.mkdir(parents=True, exist_ok=True)
    public_file, secret_file = zmq.auth.create_certificates(folder, name)
    os.chmod(secret_file, 0o600)
    return Path(public_file), Path(secret_file)
