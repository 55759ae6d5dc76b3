"""Avro schemas of the bus messages, one file per released version (``<Name>.v<N>.avsc``).

Each file is self-contained and never changes once released: a new version is a new file, with
added fields carrying defaults, so messages written by clusters still on an older version keep
decoding (``cadenza.engine.bus.messages`` registers every file found here).
"""
