"""Message types under temporalio's ``temporalio.api`` names, for code written against them."""
