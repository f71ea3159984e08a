"""What goes wrong with an identity, as plain exceptions: the record service's fronts translate them
(a 401 OperationOutcome for the FHIR front, a SOAP fault or a RegistryResponse for the XDS front)."""

from __future__ import annotations


class IdentityError(Exception):
    """A credential that is refused; ``message`` says why, for the caller."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Unauthenticated(IdentityError):
    """A bearer token that is missing, malformed, badly signed, expired or names an invalid identity."""


class VihfError(IdentityError):
    """A VIHF (SAML assertion) refused.

    ``code`` is a stable short reason a front can map and count: ``malformed``, ``signature``, ``untrusted``,
    ``expired``, ``not-yet-valid``, ``audience``, ``missing-attribute``, ``invalid-identity``; ``text`` says what,
    in the DMP's style (e.g. "VIHF invalide : signature incorrecte").
    """

    CODES = frozenset({"malformed", "signature", "untrusted", "expired", "not-yet-valid", "audience",
                       "missing-attribute", "invalid-identity"})

    def __init__(self, code: str, text: str):
        if code not in self.CODES:
            raise ValueError(f"unknown VIHF error code {code!r}")
        super().__init__(text)
        self.code = code
        self.text = text

    def __repr__(self) -> str:
        return f"VihfError({self.code!r}, {self.text!r})"
