"""`contacthub demo`: a fresh hub filled with realistic sample data, fast, at scale."""
