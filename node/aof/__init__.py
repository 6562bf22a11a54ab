"""The append-only file: format, live writer, background rewrite, shared file operations.

Imports nothing from ``node.actors`` or ``node.tools`` (tests/test_layers.py). The actors use:
``AofWriter`` (node/aof/writer.py), ``Rewriter`` and ``TEMP_PREFIX`` (node/aof/rewrite.py),
``die_with_parent`` (node/aof/fileops.py); ``format`` and ``check`` are the file format and
check-aof. ``rewrite_child`` runs only in the forked child.
"""
from node.aof.fileops import die_with_parent
from node.aof.rewrite import TEMP_PREFIX, Rewriter, RewriteRun
from node.aof.writer import AofWriter

__all__ = ["AofWriter", "Rewriter", "RewriteRun", "TEMP_PREFIX", "die_with_parent"]
