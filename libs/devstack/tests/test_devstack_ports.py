"""Free ports and the port-in-use error."""

from __future__ import annotations

import socket

import pytest

from autom.devstack.ports import PortInUseError, ensure_port_free, free_port, port_is_free


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert port_is_free("127.0.0.1", port)
    ensure_port_free("127.0.0.1", port, "anything")


def test_taken_port_names_what_and_which_variable_to_change() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]

        with pytest.raises(PortInUseError) as caught:
            ensure_port_free(
                "127.0.0.1", port, "definitions gRPC", env_var="AUTOM_DEFINITIONS_PORT"
            )

    assert str(caught.value) == (
        f"port {port} (definitions gRPC) on 127.0.0.1 is already in use; "
        "set AUTOM_DEFINITIONS_PORT to another port"
    )


def test_port_bound_on_all_interfaces_counts_as_taken() -> None:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        assert not port_is_free("127.0.0.1", sock.getsockname()[1])


def test_free_ports_of_one_process_are_distinct() -> None:
    # The kernel can offer a just-closed port again; two servers of one stack must not share.
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
