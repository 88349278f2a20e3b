"""Session fixture for a real server; see tests/servers/_require.py."""
