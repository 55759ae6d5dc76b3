"""``cadenza.api.common.v1``: ``Payload``."""
