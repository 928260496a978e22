"""Packaged BAIM configurations (TOML)."""
