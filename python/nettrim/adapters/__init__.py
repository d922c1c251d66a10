"""Readers and writers between framework models and nettrim.Network (optional dependencies)."""
