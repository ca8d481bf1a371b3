"""Kernel App: a plugin-orchestration engine on semantic-kernel.

Kept import-light on purpose: ``kernel-app --help`` must not pay for semantic-kernel (~1.7 s).
"""

__version__ = "0.1.0"
