"""The loopback-or-CURVE bind rule and key files."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamsep.errors import ConfigError
from streamsep.net.security import (
    check_bind,
    is_local_endpoint,
    load_client_keys,
    load_server_keys,
    make_keys,
)


@pytest.mark.parametrize(
    "endpoint, local",
    [
        ("tcp://127.0.0.1:5556", True),
        ("tcp://127.8.9.10:1", True),
        ("tcp://localhost:5556", True),
        ("tcp://[::1]:5556", True),
        ("tcp://127.0.0.1:*", True),
        ("ipc:///tmp/streamsep.sock", True),
        ("inproc://x", True),
        ("tcp://0.0.0.0:5556", False),
        ("tcp://*:5556", False),
        ("tcp://[::]:5556", False),
        ("tcp://10.0.0.1:5556", False),
        ("tcp://eth0:5556", False),
        ("tcp://hydrophone.example.org:5556", False),
        ("ws://127.0.0.1:5556", False),
        ("pgm://eth0;239.192.1.1:5555", False),
    ],
)
def test_is_local_endpoint(endpoint: str, local: bool) -> None:
    assert is_local_endpoint(endpoint) is local


def test_check_bind(caplog: pytest.LogCaptureFixture) -> None:
    check_bind("tcp://0.0.0.0:1", curve=True, insecure=False, section="publish")
    check_bind("tcp://127.0.0.1:1", curve=False, insecure=False, section="publish")
    with pytest.raises(ConfigError, match="refusing to bind tcp://0.0.0.0:1 without CURVE"):
        check_bind("tcp://0.0.0.0:1", curve=False, insecure=False, section="publish")
    check_bind("tcp://0.0.0.0:1", curve=False, insecure=True, section="publish")
    assert "without CURVE (insecure = true)" in caplog.text


def test_key_files(tmp_path: Path) -> None:
    server_public, server_secret = make_keys(tmp_path, "server")
    client_public, client_secret = make_keys(tmp_path, "client")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    with pytest.raises(ConfigError, match="no client public keys"):
        load_server_keys(server_secret, allowed)
    (allowed / "client.key").write_bytes(client_public.read_bytes())
    keys = load_server_keys(server_secret, allowed)
    assert len(keys.public) == len(keys.secret) == 40
    with pytest.raises(ConfigError, match="holds no secret key"):
        load_server_keys(server_public, allowed)
    with pytest.raises(ConfigError, match="folder not found"):
        load_server_keys(server_secret, tmp_path / "missing")
    client = load_client_keys(server_public, client_secret)
    assert client.server_public == keys.public
    with pytest.raises(ConfigError, match="key file not found"):
        load_client_keys(tmp_path / "nope.key", client_secret)
    (tmp_path / "garbage.key").write_text("not a certificate")
    with pytest.raises(ConfigError, match="cannot read key file"):
        load_client_keys(tmp_path / "garbage.key", client_secret)
    with pytest.raises(ConfigError, match="plain file name"):
        make_keys(tmp_path, "../evil")
