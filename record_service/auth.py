"""Who is calling, as the record service sees it: identity's tokens and keys, with the service's 401.

Identity lives in :mod:`identity` (shared with the load driver); this module is the service's adapter.
It re-exports what existing callers import from here (``Actor``, ``issue_token``, ``load_or_create_key``,
``DEFAULT_KEY_FILE``, ``KeyFileError``, ``check_actor``) and gives the service a :class:`TokenVerifier`
whose refusals are the 401 OperationOutcome the service has always answered (status, issue code, text and
``WWW-Authenticate`` unchanged): identity raises :class:`identity.errors.Unauthenticated`, this turns it into
a :class:`~record_service.outcomes.ServiceError`.
"""

from __future__ import annotations

from identity import tokens as _tokens
from identity.actors import Actor, check_actor
from identity.errors import Unauthenticated
from identity.keys import DEFAULT_KEY_FILE, KeyFileError, load_or_create_key
from identity.tokens import issue_token
from record_service.outcomes import ServiceError, unauthenticated


class TokenVerifier(_tokens.TokenVerifier):
    """Turns an ``Authorization`` header into an :class:`Actor`, or raises a 401 :class:`ServiceError`."""

    def actor(self, authorization: str | None) -> Actor:
        try:
            return super().actor(authorization)
        except Unauthenticated as refused:
            raise unauthenticated(refused.message) from None


__all__ = ["Actor", "DEFAULT_KEY_FILE", "KeyFileError", "ServiceError", "TokenVerifier", "check_actor",
           "issue_token", "load_or_create_key"]
