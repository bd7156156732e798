"""Versioned SQL migrations, applied in order by ``daon db migrate`` (ingest.store.migrate).

File names: ``NNNN_name.sql`` for both backends, or a pair ``NNNN_name.timescale.sql`` and
``NNNN_name.postgres.sql`` where TimescaleDB and stock PostgreSQL need different DDL. Each
migration runs in one transaction with its version row, so a failure leaves the schema at the
previous version. Number ranges by owner: 0001-0099 foundation, 0100-0199 ingest,
0200-0299 clinical, 0300-0399 api and access control.
"""
