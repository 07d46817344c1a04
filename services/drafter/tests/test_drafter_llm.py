"""LlmClient through the real litellm client against the scripted server."""

from __future__ import annotations

import logging

import pytest

from autom.drafter.errors import DraftFailed, ErrorType
from autom.drafter.llm import LlmClient
from autom.drafter.settings import DrafterSettings
from autom.drafter.testing import ScriptedLLM

PUBLIC_KEY = "MfFqixAL8jkxUs38JS1lXsLvLV8Pst0fwNWutnt1rwI"
KEY = "sk-test-very-secret-key"


def _client(llm: ScriptedLLM, **kw: object) -> LlmClient:
    fields: dict[str, object] = {
        "auth_public_keys": PUBLIC_KEY,
        "model": "openai/scripted",
        "api_base": llm.url,
        "api_key": KEY,
        "num_retries": 0,
        "timeout_seconds": 5.0,
        **kw,
    }
    return LlmClient(DrafterSettings(**fields))  # type: ignore[arg-type]


async def test_completion_text_usage_and_json_mode() -> None:
    async with ScriptedLLM() as llm:
        llm.reply('{"questions": ["?"]}', prompt_tokens=7, completion_tokens=3)
        out = await _client(llm).complete([{"role": "user", "content": "hi"}])
        assert out.text == '{"questions": ["?"]}'
        assert (out.prompt_tokens, out.completion_tokens) == (7, 3)
        assert out.cost_usd == 0.0  # price unknown for a scripted model
        request = llm.requests[0]
        assert request["response_format"] == {"type": "json_object"}
        assert request["model"] == "scripted"
        assert request["messages"] == [{"role": "user", "content": "hi"}]


async def test_not_configured_makes_no_call() -> None:
    async with ScriptedLLM() as llm:
        with pytest.raises(DraftFailed) as err:
            await _client(llm, model=None).complete([{"role": "user", "content": "hi"}])
        assert err.value.error_type is ErrorType.NOT_CONFIGURED
        assert llm.requests == []


async def test_provider_key_never_reaches_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with ScriptedLLM() as llm:
        llm.error(401, f"Incorrect API key provided: {KEY}")
        with pytest.raises(DraftFailed) as err:
            await _client(llm).complete([{"role": "user", "content": "hi"}])
    assert err.value.error_type is ErrorType.AUTH_ERROR
    assert KEY not in err.value.message
    assert KEY not in caplog.text
    assert "auth_error" in caplog.text


async def test_slow_answer_is_llm_timeout() -> None:
    async with ScriptedLLM() as llm:
        llm.slow(2.0)
        with pytest.raises(DraftFailed) as err:
            await _client(llm, timeout_seconds=0.3).complete([{"role": "user", "content": "x"}])
    assert err.value.error_type is ErrorType.LLM_TIMEOUT


async def test_unreachable_provider_is_connection_error() -> None:
    llm = ScriptedLLM()
    await llm.start()
    url_client = _client(llm)
    await llm.stop()  # nothing listens on that port any more
    with pytest.raises(DraftFailed) as err:
        await url_client.complete([{"role": "user", "content": "x"}])
    assert err.value.error_type is ErrorType.CONNECTION_ERROR
