"""Point processing before export: cardinality control and redaction."""
