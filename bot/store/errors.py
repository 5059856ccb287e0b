"""What a failing database read or write raises, for callers above the store.

Code outside ``bot.store`` catches ``StoreError`` instead of importing ``sqlite3``: which database
library the store uses stays its own business.
"""

from __future__ import annotations

import sqlite3

StoreError = sqlite3.Error  # every sqlite3 failure: locked, read-only, disk full, corrupt file

__all__ = ["StoreError"]
