"""One drafting turn: prompt -> model -> parse -> ValidateDefinition -> repair rounds."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from autom.drafter.clients import DefinitionsClient
from autom.drafter.domain.model import DraftStatus, Turn, Usage
from autom.drafter.domain.prompt import (
    default_schedule_zones,
    parse_repair_message,
    repair_message,
    system_prompt,
)
from autom.drafter.domain.protocol import ReplyParseError, parse_reply
from autom.drafter.errors import SENTENCES, DraftFailed, ErrorType
from autom.drafter.llm import LlmClient

log = logging.getLogger(__name__)


def _msg(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


class Generator:
    """Runs drafting turns against the model and the definitions service."""

    def __init__(self, llm: LlmClient, definitions: DefinitionsClient, *, max_repairs: int) -> None:
        self._llm = llm
        self._defs = definitions
        self._max_repairs = max_repairs

    @property
    def model(self) -> str:
        """The configured model string."""
        return self._llm.model

    async def run(
        self,
        token: str,
        *,
        conversation: list[dict[str, str]],
        user_message: str | None,
        timezone: str,
        base_definition: dict[str, Any] | None,
    ) -> Turn:
        """One turn; a model failure is a `failed` turn, a definitions error propagates."""
        turn: list[dict[str, str]] = [_msg("user", user_message)] if user_message else []
        # A failed turn keeps only the user's words: the next turn answers them again.
        kept_on_failure = list(turn)
        usage = Usage()
        try:
            self._llm.require_configured()
            schema = await self._defs.schema(token)
            system = system_prompt(
                schema, now=datetime.now(UTC), timezone=timezone, base_definition=base_definition
            )
            rounds = 0
            # A reply that is not the JSON asked for gets one repair round, as an invalid
            # definition does (none when repairs are switched off).
            parse_repairs_left = min(1, self._max_repairs)
            while True:
                try:
                    completion = await self._llm.complete(
                        [_msg("system", system), *conversation, *turn]
                    )
                except DraftFailed:
                    usage = usage.add(0, 0, 0.0)  # the failed call is recorded too
                    raise
                usage = usage.add(
                    completion.prompt_tokens, completion.completion_tokens, completion.cost_usd
                )
                turn.append(_msg("assistant", completion.text))
                try:
                    reply = parse_reply(completion.text)
                except ReplyParseError as exc:
                    log.info("drafting model broke the reply protocol: %s", exc)
                    if parse_repairs_left <= 0:
                        raise DraftFailed(ErrorType.LLM_PARSE_ERROR) from None
                    parse_repairs_left -= 1
                    turn.append(_msg("user", parse_repair_message(str(exc))))
                    continue
                if reply.questions:
                    return Turn(
                        DraftStatus.NEEDS_CLARIFICATION,
                        turn,
                        usage,
                        questions=reply.questions,
                        message=reply.message,
                    )
                if reply.out_of_scope is not None:
                    return Turn(DraftStatus.OUT_OF_SCOPE, turn, usage, message=reply.out_of_scope)
                definition = reply.definition or {}
                notes = default_schedule_zones(definition, timezone)
                violations = await self._defs.validate(token, definition)
                if not violations:
                    return Turn(
                        DraftStatus.PENDING,
                        turn,
                        usage,
                        definition=definition,
                        message=reply.message,
                        notes=notes,
                    )
                if rounds >= self._max_repairs:
                    return Turn(
                        DraftStatus.INVALID,
                        turn,
                        usage,
                        definition=definition,
                        violations=violations,
                        message=reply.message,
                        error_type=ErrorType.VALIDATION_ERROR.value,
                        error_message=SENTENCES[ErrorType.VALIDATION_ERROR],
                        notes=notes,
                    )
                rounds += 1
                log.info("repair round %d: %d violations", rounds, len(violations))
                turn.append(_msg("user", repair_message(violations)))
        except DraftFailed as exc:
            return Turn(
                DraftStatus.FAILED,
                kept_on_failure,
                usage,
                error_type=exc.error_type.value,
                error_message=exc.message,
            )
