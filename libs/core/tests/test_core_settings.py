"""Settings read from the environment: empty means unset, malformed fails naming the variable."""

from __future__ import annotations

import pydantic
import pytest

from autom.core.settings import ServiceSettings

PUBLIC_KEY = "MfFqixAL8jkxUs38JS1lXsLvLV8Pst0fwNWutnt1rwI"


def test_empty_variables_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOM_AUTH_PUBLIC_KEYS", PUBLIC_KEY)
    monkeypatch.setenv("AUTOM_NATS_URL", "")
    monkeypatch.setenv("AUTOM_DATABASE_URL", "")
    settings = ServiceSettings()
    assert settings.nats_url == ServiceSettings.model_fields["nats_url"].default
    assert settings.database_url == ServiceSettings.model_fields["database_url"].default


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AUTOM_NATS_URL", "http://127.0.0.1:4222"),
        ("AUTOM_NATS_URL", "nats://"),
        ("AUTOM_NATS_URL", "nats://h:99999"),
        ("AUTOM_DATABASE_URL", "mysql://u@db/x"),
        ("AUTOM_DATABASE_URL", "postgresql:///nohost"),
    ],
)
def test_malformed_url_fails_at_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv("AUTOM_AUTH_PUBLIC_KEYS", PUBLIC_KEY)
    monkeypatch.setenv(variable, value)
    with pytest.raises(pydantic.ValidationError) as err:
        ServiceSettings()
    assert variable in str(err.value)


def test_url_errors_never_echo_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOM_AUTH_PUBLIC_KEYS", PUBLIC_KEY)
    monkeypatch.setenv("AUTOM_DATABASE_URL", "postgresql://u:hunter2@db:99999/x")
    with pytest.raises(pydantic.ValidationError) as err:
        ServiceSettings()
    assert "AUTOM_DATABASE_URL" in str(err.value)
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize(
    "value",
    ["nats://127.0.0.1:4222", "127.0.0.1:4222", "tls://a:1,nats://b:2", "wss://h/path"],
)
def test_well_formed_nats_urls_are_accepted(value: str) -> None:
    assert ServiceSettings(auth_public_keys=PUBLIC_KEY, nats_url=value).nats_url == value  # type: ignore[arg-type]
