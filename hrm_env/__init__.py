"""Gymnasium side of hrm: puzzle domains, the halting environments and their pygame viewer.

Importing this package registers the environments and loads nothing else: no torch, no data.
"""

__version__ = "0.1.0"
