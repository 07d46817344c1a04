"""gRPC clients of the definitions and scheduler services; every call acts as the caller."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dpb_grpc
from autom.api.scheduler.v1 import scheduler_service_pb2 as spb
from autom.api.scheduler.v1 import scheduler_service_pb2_grpc as spb_grpc
from autom.core.errors import ValidationFailed, Violation
from autom.core.grpcserver import bearer
from autom.core.grpctls import GrpcTls
from autom.core.protoconv import from_timestamp, struct_to_dict
from autom.drafter.convert import definition_to_json, json_to_definition
from autom.drafter.domain.prompt import CatalogEntry, SchemaInfo
from autom.drafter.errors import UpstreamError

log = logging.getLogger(__name__)

_STATUS_DETAILS_KEY = "grpc-status-details-bin"


def _status_details(err: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    for key, value in err.trailing_metadata() or ():
        if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status()
            status.ParseFromString(value)
            return status
    return None


def upstream_error(service: str, err: grpc.aio.AioRpcError) -> Exception:
    """An upstream failure as a domain error with the same code, reason and violations."""
    code = err.code()
    status = _status_details(err)
    reason = ""
    violations: list[Violation] = []
    for detail in status.details if status is not None else []:
        info = error_details_pb2.ErrorInfo()
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(info):
            reason = info.reason
        elif detail.Unpack(bad):
            violations = [Violation(v.field, v.description) for v in bad.field_violations]
    message = err.details() or ""
    if code == grpc.StatusCode.INVALID_ARGUMENT and violations:
        return ValidationFailed(violations, message or None)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and not reason:
        # Transport failure: no ErrorInfo came back, say which dependency failed.
        reason = "unavailable" if code == grpc.StatusCode.UNAVAILABLE else "deadline_exceeded"
        message = f"the {service} service is unavailable; try again shortly"
    if code == grpc.StatusCode.INTERNAL:
        # An upstream bug is not ours to expose, and must not surface as our INTERNAL.
        code, reason = grpc.StatusCode.UNAVAILABLE, reason or "upstream_error"
        message = f"the {service} service failed; try again later"
    return UpstreamError(code, message, reason or code.name.lower())


def _shape_violations(violations: list[Violation]) -> ValidationFailed:
    return ValidationFailed([Violation(f"definition.{v.field}", v.description) for v in violations])


@dataclass(frozen=True)
class AutomationRef:
    """An automation's id, version and definition (JSON form)."""

    id: str
    version: int
    definition: dict[str, Any]


def _entry(name: str, description: str, schema: Any, output: Any) -> CatalogEntry:
    return CatalogEntry(name, description, struct_to_dict(schema), struct_to_dict(output))


class DefinitionsClient:
    """DefinitionsService calls that forward the caller's bearer token."""

    def __init__(
        self, address: str, *, timeout: float, schema_ttl: float, tls: GrpcTls | None = None
    ) -> None:
        self._channel = (tls or GrpcTls()).aio_channel(address)
        self._stub = dpb_grpc.DefinitionsServiceStub(self._channel)
        self._timeout = timeout
        self._schema_ttl = schema_ttl
        self._schema: tuple[float, SchemaInfo] | None = None

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()

    async def _call(self, method: str, request: Any, token: str) -> Any:
        try:
            return await getattr(self._stub, method)(
                request, metadata=bearer(token), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as err:
            raise upstream_error("definitions", err) from None

    async def schema(self, token: str) -> SchemaInfo:
        """The envelope JSON Schema and live catalog, reused for schema_ttl seconds."""
        cached = self._schema
        if cached is not None and time.monotonic() - cached[0] < self._schema_ttl:
            return cached[1]
        resp = await self._call("GetDefinitionSchema", dpb.GetDefinitionSchemaRequest(), token)
        catalog = resp.catalog
        info = SchemaInfo(
            envelope=struct_to_dict(resp.json_schema),
            actions=[
                _entry(a.type, a.description, a.params_schema, a.output_schema)
                for a in catalog.actions
            ],
            triggers=[
                _entry(t.type, t.description, t.config_schema, t.payload_schema)
                for t in catalog.triggers
            ],
            capabilities=[
                _entry(c.id, c.description, c.input_schema, c.output_schema)
                for c in catalog.capabilities
            ],
        )
        self._schema = (time.monotonic(), info)
        return info

    async def validate(self, token: str, raw: Any) -> list[Violation]:
        """Every violation of a definition in JSON form: proto shape first, then the rules."""
        pb, violations = json_to_definition(raw)
        if pb is None:
            return violations
        resp = await self._call(
            "ValidateDefinition", dpb.ValidateDefinitionRequest(definition=pb), token
        )
        return [Violation(v.field, v.description) for v in resp.violations]

    async def get_automation(self, token: str, automation_id: str) -> AutomationRef:
        """The automation's current version."""
        resp = await self._call(
            "GetAutomation", dpb.GetAutomationRequest(automation_id=automation_id), token
        )
        a = resp.automation
        return AutomationRef(a.id, a.version, definition_to_json(a.definition))

    async def create(self, token: str, request_id: str, raw: dict[str, Any]) -> AutomationRef:
        """CreateAutomation, idempotent on request_id."""
        pb, violations = json_to_definition(raw)
        if pb is None:
            raise _shape_violations(violations)
        resp = await self._call(
            "CreateAutomation",
            dpb.CreateAutomationRequest(request_id=request_id, definition=pb),
            token,
        )
        a = resp.automation
        return AutomationRef(a.id, a.version, definition_to_json(a.definition))

    async def update(
        self, token: str, request_id: str, automation_id: str, version: int, raw: dict[str, Any]
    ) -> AutomationRef:
        """UpdateAutomation from `version`; ABORTED when the automation moved."""
        pb, violations = json_to_definition(raw)
        if pb is None:
            raise _shape_violations(violations)
        resp = await self._call(
            "UpdateAutomation",
            dpb.UpdateAutomationRequest(
                request_id=request_id, automation_id=automation_id, version=version, definition=pb
            ),
            token,
        )
        a = resp.automation
        return AutomationRef(a.id, a.version, definition_to_json(a.definition))


@dataclass(frozen=True)
class SchedulePreview:
    """A schedule's description and next fire instants."""

    description: str
    next_fire_times: list[datetime]


class SchedulerClient:
    """SchedulerService.PreviewSchedule as the caller."""

    def __init__(self, address: str, *, timeout: float, tls: GrpcTls | None = None) -> None:
        self._channel = (tls or GrpcTls()).aio_channel(address)
        self._stub = spb_grpc.SchedulerServiceStub(self._channel)
        self._timeout = timeout

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()

    async def preview(
        self, token: str, *, cron: str, timezone: str, on_missing: str, on_repeated: str, count: int
    ) -> SchedulePreview:
        """Raises grpc.aio.AioRpcError when the scheduler cannot answer."""
        resp = await self._stub.PreviewSchedule(
            spb.PreviewScheduleRequest(
                cron=cron,
                timezone=timezone,
                on_missing=on_missing,
                on_repeated=on_repeated,
                count=count,
            ),
            metadata=bearer(token),
            timeout=self._timeout,
        )
        return SchedulePreview(resp.description, [from_timestamp(t) for t in resp.next_fire_times])
