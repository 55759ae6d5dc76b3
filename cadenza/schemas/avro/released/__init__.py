"""Released schema snapshots: written once, never edited, kept so old data stays readable."""
