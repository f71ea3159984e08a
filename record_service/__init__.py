"""The record service: a FHIR R4 / IHE MHD document registry and repository following the DMP's rules.

Deposit (ITI-65), find (ITI-67), retrieve (ITI-68), the patient's controls (mask, block, opt-out,
delete) and the access history, over SQLite (default) or PostgreSQL. Start it with ``segur serve``.
"""
