"""MCP servers as tool sources: their tools offered on every call, run through the dispatcher.

- `_config.py`: `MCP_SERVERS_FILE` read and checked (no SDK import: a bad file is refused the
  same without the extra), and the names tools have on calls
- `_connection.py`: `McpConnection`, one long-lived client per server, reconnecting with backoff
- `_results.py`: an MCP tool result as a function call's output
- `_servers.py`: `McpServers`, every configured server, its tools kept in the registry

Only `_config` is imported without `realtime-trio[mcp]` installed.
"""
