"""The web application's data access: accounts and audit, worklists, pages, FHIR search queries.

These modules serve only the api (and the demo and benchmarks that drive it). They may use
``ingest.store`` (connections, the clinical and unbound stores); ``ingest.store`` never imports
them.
"""
