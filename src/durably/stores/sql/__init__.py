"""The SQL stores' shared part: statements in files, written once for both dialects."""
