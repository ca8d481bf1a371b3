"""Shared vocabulary, the bottom layer: settings, typed errors, usage counts, effects, paths.

Every other layer may import it; it imports nothing of Kernel App above it.
"""
