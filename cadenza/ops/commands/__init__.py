"""Command groups of the `cadenza` CLI; ``cadenza.ops.cli`` registers them."""
