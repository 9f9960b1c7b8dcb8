"""Durable spool: the write-ahead log between the receivers and the store writer."""
