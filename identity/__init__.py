"""Who is calling: one home for identity, shared by the record service and the load driver.

- :mod:`identity.actors`: the caller (:class:`~identity.actors.Actor`: a professional or a patient) and its checks;
- :mod:`identity.sectors`: our professional sectors and the DMP codes they stand for;
- :mod:`identity.keys`: the signing key file shared by ``segur serve`` and the commands that mint credentials;
- :mod:`identity.tokens`: signed bearer tokens (HS256 JWT) for the FHIR front;
- :mod:`identity.structure`: the calling structure's key pair and certificate (its "certificat de cachet");
- :mod:`identity.vihf`: the DMP's VIHF, a signed SAML 2.0 assertion, issued and verified;
- :mod:`identity.errors`: what goes wrong, without any HTTP or SOAP attached (the fronts translate).

Nothing here imports the record service: it is the other way round.
"""
