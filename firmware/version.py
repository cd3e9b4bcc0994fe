"""Firmware version (bumped by hand on release)."""

VERSION = "0.1.0"
