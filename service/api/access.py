"""Who may call the admin API, and the record of every request.

With `BONEAGE_ADMIN_TOKEN` set, every endpoint but the health probes and the login page needs
it, as `Authorization: Bearer <token>`; a browser may instead hold it in a cookie set by
`/login`, which is honoured for reads only (a cookie rides along on forged cross-site
posts; a header does not). Without a token the API binds to loopback only (the settings
refuse anything else), and callers are trusted as local. `X-Boneage-User` names the person
behind the token, for the request log and reviews.

Every request is recorded in `api_requests`: who, how authenticated, from where, method, path
(never the query string, which may hold a patient id; that is the DB's to keep, not the log's),
status, and for writes what was done. The server's own access log is off for the same reason.
"""

from __future__ import annotations

import hmac
import logging
import re
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from service.audit.session import transaction
from service.audit.tables import ApiRequest, utcnow

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/login"})
TOKEN_COOKIE = "boneage_token"
USER_HEADER = "x-boneage-user"
_PRINTABLE = re.compile(r"[^\x20-\x7e]")


@dataclass(frozen=True)
class Caller:
    who: str
    auth: str  # token | cookie | loopback


class AccessGuard:
    def __init__(self, token: str | None, sessions: sessionmaker[Session]) -> None:
        self._token = token
        self._sessions = sessions

    @property
    def token_required(self) -> bool:
        return self._token is not None

    def identify(self, request: Request) -> Caller | None:
        user = _PRINTABLE.sub("", request.headers.get(USER_HEADER, "")).strip()[:64]
        if self._token is None:
            return Caller(user or "local", "loopback")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer ") and self.matches(header[7:].strip()):
            return Caller(user or "admin", "token")
        cookie = request.cookies.get(TOKEN_COOKIE)
        if request.method in {"GET", "HEAD"} and cookie and self.matches(cookie):
            return Caller(user or "admin", "cookie")
        return None

    def matches(self, presented: str) -> bool:
        return self._token is not None and hmac.compare_digest(presented.encode(),
                                                               self._token.encode())

    async def middleware(self, request: Request, call_next) -> Response:  # type: ignore[no-untyped-def]
        caller = self.identify(request)
        request.state.caller = caller
        request.state.action = None
        if caller is None and request.url.path not in OPEN_PATHS:
            response: Response = JSONResponse(
                {"detail": "missing or wrong admin token (Authorization: Bearer ...)"},
                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        else:
            response = await call_next(request)
        await run_in_threadpool(self.record, request, caller, response.status_code)
        return response

    def record(self, request: Request, caller: Caller | None, status_code: int) -> None:
        try:
            with transaction(self._sessions) as session:
                session.add(ApiRequest(
                    at=utcnow(), who=caller.who if caller else "(unauthenticated)",
                    auth=caller.auth if caller else "none",
                    client=request.client.host if request.client else None,
                    method=request.method[:8], path=request.url.path[:2000],
                    status_code=status_code, action=request.state.action))
        except Exception:
            log.exception("could not record an API request in the audit DB")


def who(request: Request) -> str:
    caller: Caller | None = request.state.caller
    return "unknown" if caller is None else f"{caller.who} ({caller.auth})"
