"""The record service's IHE XDS.b front: the DMP's professional interface, on the same registry as FHIR.

``POST /xds/iti41`` (Provide and Register Document Set-b), ``/xds/iti18`` (Registry Stored Query),
``/xds/iti43`` (Retrieve Document Set) and ``/xds/td02`` (the DMP's access check), SOAP 1.2 with
WS-Addressing, plain (``application/soap+xml``) or MTOM/XOP (``multipart/related``), each carrying a
signed VIHF (a SAML 2.0 assertion in ``wsse:Security``). Modules, one idea each:

- :mod:`.terms`: namespaces, actions, classification schemes, statuses and error codes (IHE ITI TF-3 4.2);
- :mod:`.soap`: the envelope and its MTOM/XOP packaging, in and out; SOAP faults;
- :mod:`.errors`: XDS errors and their ``RegistryResponse`` / ``RegistryErrorList``;
- :mod:`.codes`: code systems, OID (ebRIM) against URI (FHIR);
- :mod:`.metadata`: ebRIM DocumentEntries in (a checked deposit) and out (from the stored DocumentReference);
- :mod:`.queries`: the stored queries the DMP's clients use;
- :mod:`.endpoints`: the four operations.

Sources: docs/xds-sources.md.
"""
