"""Activities: custom types, the rules of each type, and the batch ingest."""
