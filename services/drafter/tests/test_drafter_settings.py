"""Settings: AUTOM_DRAFTER_* variables, defaults and secrecy of the provider key."""

from __future__ import annotations

import pytest

from autom.drafter.settings import DrafterSettings

PUBLIC_KEY = "MfFqixAL8jkxUs38JS1lXsLvLV8Pst0fwNWutnt1rwI"


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTOM_DRAFTER_MODEL", raising=False)
    s = DrafterSettings(auth_public_keys=PUBLIC_KEY)  # type: ignore[arg-type]
    assert s.grpc_port == 50054
    assert s.model is None and s.api_key is None
    assert s.max_repair_rounds == 2


def test_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOM_AUTH_PUBLIC_KEYS", PUBLIC_KEY)
    monkeypatch.setenv("AUTOM_DRAFTER_MODEL", "openai/gpt-4o-mini")
    monkeypatch.setenv("AUTOM_DRAFTER_API_BASE", "http://127.0.0.1:8000/v1")
    monkeypatch.setenv("AUTOM_DRAFTER_API_KEY", "sk-live-secret")
    monkeypatch.setenv("AUTOM_DRAFTER_TIMEOUT_SECONDS", "12.5")
    monkeypatch.setenv("AUTOM_DRAFTER_MAX_REPAIR_ROUNDS", "1")
    monkeypatch.setenv("API_KEY", "must-not-be-read")
    s = DrafterSettings()  # type: ignore[call-arg]
    assert s.model == "openai/gpt-4o-mini"
    assert s.api_base == "http://127.0.0.1:8000/v1"
    assert s.api_key is not None and s.api_key.get_secret_value() == "sk-live-secret"
    assert s.timeout_seconds == 12.5 and s.max_repair_rounds == 1
    assert "sk-live-secret" not in repr(s) and "sk-live-secret" not in str(s.model_dump())


def test_keyword_construction() -> None:
    s = DrafterSettings(auth_public_keys=PUBLIC_KEY, model="m", api_key="k", num_retries=0)  # type: ignore[arg-type]
    assert s.model == "m" and s.num_retries == 0


def test_prefixed_keyword_names_are_accepted_too() -> None:
    s = DrafterSettings(auth_public_keys=PUBLIC_KEY, drafter_model="m", drafter_timeout_seconds=1.5)  # type: ignore[call-arg]
    assert s.model == "m" and s.timeout_seconds == 1.5
