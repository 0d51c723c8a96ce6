"""Command-line entry points (host-side I/O only): one module per command."""
