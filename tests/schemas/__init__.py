"""Tests of the history schemas and their Avro codec."""
