"""Benchmarks of oauthconn against raw httpx, Authlib and requests-oauthlib (see README.md)."""
