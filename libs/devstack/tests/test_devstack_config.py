"""Supervisor settings from the environment and the persisted dev secrets."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from autom.devstack.config import SECRETS_FILE, ConfigError, DevConfig, load_dev_secrets


def test_defaults_put_data_under_dot_autom_in_cwd(tmp_path: Path) -> None:
    config = DevConfig.from_env({}, cwd=tmp_path)

    assert config == DevConfig(home=tmp_path / ".autom")
    assert (config.pg_port, config.nats_port, config.http_port) == (55432, 54222, 8080)
    assert (config.definitions_port, config.drafter_port) == (50051, 50054)
    assert config.database_url is None and config.nats_url is None


def test_variables_override_defaults_and_empty_means_unset(tmp_path: Path) -> None:
    config = DevConfig.from_env(
        {
            "AUTOM_HOME": "data",
            "AUTOM_HOST": "0.0.0.0",
            "AUTOM_DATABASE_URL": "postgresql://u@db/x",
            "AUTOM_NATS_URL": "",
            "AUTOM_SCHEDULER_PORT": "6000",
        },
        cwd=tmp_path,
    )

    assert config.home == tmp_path / "data"
    assert config.host == "0.0.0.0"
    assert config.database_url == "postgresql://u@db/x"
    assert config.nats_url is None
    assert config.scheduler_port == 6000


@pytest.mark.parametrize("value", ["http", "0", "70000"])
def test_bad_port_is_a_config_error_naming_the_variable(value: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="AUTOM_HTTP_PORT"):
        DevConfig.from_env({"AUTOM_HTTP_PORT": value}, cwd=tmp_path)


def test_secrets_are_generated_once_and_kept_private(tmp_path: Path) -> None:
    first = load_dev_secrets(tmp_path, {})
    second = load_dev_secrets(tmp_path, {})

    assert first == second
    assert len(base64.urlsafe_b64decode(first.auth_private_key + "=")) == 32
    assert first.auth_public_key != first.auth_private_key
    assert first.scheduler_credential.startswith("svc.scheduler.")
    assert first.executor_credential.startswith("svc.executor.")
    assert first.scheduler_credential not in first.service_credentials  # hashes only
    assert len(base64.urlsafe_b64decode(first.secrets_key)) == 32
    assert (tmp_path / SECRETS_FILE).stat().st_mode & 0o777 == 0o600


def test_secrets_from_the_environment_win_and_are_not_persisted(tmp_path: Path) -> None:
    key = base64.urlsafe_b64encode(b"a" * 32).decode()
    env = {"AUTOM_AUTH_PRIVATE_KEY": key, "AUTOM_SECRETS_KEY": "k"}

    secrets = load_dev_secrets(tmp_path, env)

    assert (secrets.auth_private_key, secrets.secrets_key) == (key, "k")
    assert key not in (tmp_path / SECRETS_FILE).read_text()  # only the generated ones


def test_a_malformed_private_key_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="AUTOM_AUTH_PRIVATE_KEY"):
        load_dev_secrets(tmp_path, {"AUTOM_AUTH_PRIVATE_KEY": "a" * 64})


def test_corrupt_secrets_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / SECRETS_FILE).write_text("{nope")
    with pytest.raises(ConfigError, match="delete it to regenerate"):
        load_dev_secrets(tmp_path, {})
