"""gRPC TLS settings: incomplete pairs fail at start, naming the variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from autom.core.grpctls import GrpcTls


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"AUTOM_GRPC_TLS_CERT_FILE": "c.pem"}, "AUTOM_GRPC_TLS_KEY_FILE"),
        ({"AUTOM_GRPC_TLS_CLIENT_KEY_FILE": "k.pem"}, "AUTOM_GRPC_TLS_CLIENT_CERT_FILE"),
        ({"AUTOM_GRPC_TLS_CLIENT_CA_FILE": "ca.pem"}, "AUTOM_GRPC_TLS_CERT_FILE"),
        (
            {"AUTOM_GRPC_TLS_CLIENT_CERT_FILE": "c", "AUTOM_GRPC_TLS_CLIENT_KEY_FILE": "k"},
            "AUTOM_GRPC_TLS_CA_FILE",
        ),
    ],
)
def test_incomplete_tls_settings_are_refused(given: dict[str, str], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        GrpcTls.from_env(given)


def test_plaintext_unless_configured_and_empty_means_unset() -> None:
    tls = GrpcTls.from_env({"AUTOM_GRPC_TLS_CA_FILE": " ", "AUTOM_TOKEN": "x"})
    assert tls.server_credentials() is None and tls.channel_credentials() is None
    assert tls.channel_options() == []


def test_an_unreadable_file_names_its_variable(tmp_path: Path) -> None:
    tls = GrpcTls(ca_file=tmp_path / "missing.pem", server_name="autom")
    assert tls.channel_options() == [("grpc.ssl_target_name_override", "autom")]
    with pytest.raises(ValueError, match="AUTOM_GRPC_TLS_CA_FILE"):
        tls.channel_credentials()
