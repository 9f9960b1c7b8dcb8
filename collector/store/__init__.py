"""ClickHouse storage: settings, shared clients, versioned schema, columnar rows and the writer.

Everything goes through clickhouse-connect: ``chdb:///path`` for the embedded engine,
``http(s)://...`` for a server or cluster. Heavy imports (clickhouse-connect, chdb, pyarrow) happen
in the submodules, so importing this package alone stays cheap.
"""
