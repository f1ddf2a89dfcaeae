"""Adapters: the files of an adapter folder, the registry, and conversions (fuse, export)."""
