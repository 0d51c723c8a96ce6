"""Small utilities shared by entry points and tests."""
