"""Fakes of third-party APIs, served over real HTTP on 127.0.0.1 (aiohttp), and test helpers."""
