"""fleetpulse collector: receiver → limits → spool (WAL) → writer → store (ClickHouse)."""
