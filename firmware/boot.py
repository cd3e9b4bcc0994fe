"""Runs before main.py: nothing that can fail. Radio and CPU clock are set by
the app from the board file (power-safe start), so only the lib path here."""

import sys

if "/lib" not in sys.path:
    sys.path.append("/lib")
