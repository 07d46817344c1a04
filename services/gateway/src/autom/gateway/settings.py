"""Gateway settings: the shared AUTOM_* settings plus the HTTP listener and deadlines."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from autom.core.settings import CommonSettings


# The gateway forwards the caller's bearer token and verifies nothing itself, so it holds no
# key: a compromised gateway can mint no token and read no secret. (The console's cookie key
# only encrypts the tokens users paste; it signs nothing the services trust.)
class GatewaySettings(CommonSettings):
    """AUTOM_HTTP_HOST / AUTOM_HTTP_PORT, deadlines and limits of the HTTP/JSON gateway."""

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    # Deadline of a unary call when the client sends no timeout header.
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    # Deadline of a server stream (e.g. WatchRun) when the client sends no timeout header.
    stream_timeout_seconds: float = Field(default=3600.0, gt=0)
    # Upper bound of any client-requested deadline.
    max_timeout_seconds: float = Field(default=3600.0, gt=0)
    # Request bodies above this answer 413 (a definition is at most 256 KiB).
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    health_timeout_seconds: float = Field(default=2.0, gt=0)
    # Where the .proto sources live (for OpenAPI descriptions); found by walking up from
    # the package and the working directory when unset. Missing: no descriptions.
    proto_dir: Path | None = None
    # The web console's cookie key (a Fernet key: `Fernet.generate_key()`). Unset: a key per
    # process, so sessions end when the gateway restarts; replicas must share one.
    console_session_key: SecretStr | None = None
    # The example definitions the console offers on an empty workspace (default: ./examples).
    console_examples_dir: Path | None = None
