"""The console's session: API tokens in an encrypted, authenticated, HttpOnly cookie."""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

COOKIE = "autom_session"
LOGIN_CSRF_COOKIE = "autom_login_csrf"
# A session lasts a working day; signing in again is one paste of the token.
MAX_AGE_SECONDS = 12 * 3600


@dataclass
class Workspace:
    """One signed-in workspace: its token and what WhoAmI said of it."""

    workspace_id: str
    token: str
    principal: str
    role: str


@dataclass
class Session:
    """What the cookie holds: one token per workspace, the current one, CSRF and the zone."""

    workspaces: list[Workspace] = field(default_factory=list)
    current: str = ""
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    timezone: str = "UTC"
    flash: list[tuple[str, str]] = field(default_factory=list)

    @property
    def signed_in(self) -> bool:
        """True when the session holds at least one token."""
        return self.workspace is not None

    @property
    def workspace(self) -> Workspace | None:
        """The workspace pages act in."""
        for ws in self.workspaces:
            if ws.workspace_id == self.current:
                return ws
        return self.workspaces[0] if self.workspaces else None

    def add(self, workspace: Workspace) -> None:
        """Sign in to a workspace (replacing an earlier token for it) and make it current."""
        self.workspaces = [w for w in self.workspaces if w.workspace_id != workspace.workspace_id]
        self.workspaces.append(workspace)
        self.current = workspace.workspace_id

    def drop_current(self) -> None:
        """Forget the current workspace's token (e.g. it was revoked)."""
        current = self.workspace
        self.workspaces = [w for w in self.workspaces if w is not current]
        self.current = self.workspaces[0].workspace_id if self.workspaces else ""

    def check_csrf(self, submitted: str | None) -> bool:
        """True when a form carried this session's CSRF token."""
        return bool(submitted) and hmac.compare_digest(self.csrf, submitted or "")

    def say(self, kind: str, text: str) -> None:
        """A message for the next page shown (kind: ok or error)."""
        self.flash.append((kind, text))

    def take_flash(self) -> list[tuple[str, str]]:
        """The pending messages, once."""
        out, self.flash = self.flash, []
        return out


class SessionCodec:
    """Encrypts sessions into cookie values and back (Fernet: AES-CBC + HMAC, timestamped)."""

    def __init__(self, key: str | bytes) -> None:
        self._fernet = Fernet(key)

    def dumps(self, session: Session) -> str:
        """The cookie value."""
        data: dict[str, Any] = {
            "w": [[w.workspace_id, w.token, w.principal, w.role] for w in session.workspaces],
            "c": session.current,
            "x": session.csrf,
            "z": session.timezone,
            "f": session.flash,
        }
        return self._fernet.encrypt(json.dumps(data, separators=(",", ":")).encode()).decode()

    def loads(self, value: str | None) -> Session:
        """The session in a cookie value; a fresh one when it is missing, stale or forged."""
        if not value:
            return Session()
        try:
            data = json.loads(self._fernet.decrypt(value.encode(), ttl=MAX_AGE_SECONDS))
            return Session(
                workspaces=[Workspace(*map(str, w)) for w in data["w"]],
                current=str(data["c"]),
                csrf=str(data["x"]),
                timezone=str(data["z"]),
                flash=[(str(k), str(t)) for k, t in data.get("f", [])],
            )
        except (InvalidToken, ValueError, KeyError, TypeError):
            return Session()
