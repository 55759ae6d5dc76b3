"""Unit tests of the workflow side of the SDK."""
