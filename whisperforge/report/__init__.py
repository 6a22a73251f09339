"""The summary and its tables, own-data sections included."""
