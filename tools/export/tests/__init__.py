"""Tests of tools/export (stdlib unittest; run by scripts/test.sh)."""
