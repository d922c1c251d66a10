"""nettrim's version (the package's, and the one a checkpoint records)."""
VERSION = "0.2.0"
