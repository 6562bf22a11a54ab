"""The append-only file: format, live writer, background rewrite, shared file operations.

Imports nothing from ``aofnode.roles`` or ``aofnode.tools`` (tests/unit/test_layers.py). The actors use:
``AofWriter`` (node/aof/writer.py), ``Rewriter`` and ``TEMP_PREFIX`` (node/aof/rewrite.py),
``die_with_parent`` (node/aof/fileops.py); ``format`` and ``check`` are the file format and
check-aof. ``rewrite_child`` runs only in the forked child.
"""
from aofnode.aof.fileops import die_with_parent
from aofnode.aof.rewrite import TEMP_PREFIX, Rewriter, RewriteRun
from aofnode.aof.writer import AofWriter

__all__ = ["AofWriter", "Rewriter", "RewriteRun", "TEMP_PREFIX", "die_with_parent"]
