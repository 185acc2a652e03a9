"""Where the flush ships spooled events (one module per destination)."""
