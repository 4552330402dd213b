"""The command line (needs click)."""
