"""Architecture modules: one upstream checkpoint layout each (see contract.py for the interface)."""
