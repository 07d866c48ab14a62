"""Retention: how long each kind of data is kept, and the job that deletes what is older."""
