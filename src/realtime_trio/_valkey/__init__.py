"""The shared store on Valkey (or Redis), through valkey-glide.

Imported only when `STORE_URL` names a Valkey server: with `memory://` nothing of the client is
loaded. `glide`'s async API runs under Trio through anyio. Its core's own logging is turned off
(`_client.py`): what goes wrong reaches the project's logs, redacted, as exceptions.
"""
