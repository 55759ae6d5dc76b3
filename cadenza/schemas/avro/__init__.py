"""Generated Avro schemas (see ``cadenza.schemas._generate``); a package so the files ship as package data."""
