"""fleetpulse node agent: sources → snapshot → exporters.

This package must stay light: it is installed on every node. Nothing here may import the storage
stack (chdb, pyarrow, pandas, clickhouse-connect); tests/test_agent_imports.py enforces it.
"""

__version__ = "0.1.0"
