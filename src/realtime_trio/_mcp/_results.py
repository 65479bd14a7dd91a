"""An MCP tool result as a function call's output.

Structured content when the tool gave some (the model reads JSON well); else its text. A result
flagged `isError` becomes the error output our own tools give (`reason: tool_error`). Content
the model cannot take in a function output (images, audio, binary resources) is described in a
line, never dropped without a word: the model can then tell the user what it got.
"""

from __future__ import annotations

from typing import Any

import mcp_types


def output_of(result: mcp_types.CallToolResult) -> Any:
    text = "\n".join(_describe(item) for item in result.content)
    if result.is_error:
        return {
            "ok": False,
            "reason": "tool_error",
            "message": text or "The tool reported an error without saying what it was.",
        }
    if result.structured_content is not None:
        return result.structured_content
    return text if text else {"ok": True}


def _describe(item: Any) -> str:
    kind = getattr(item, "type", "unknown")
    if isinstance(item, mcp_types.TextContent):
        return item.text
    if isinstance(item, mcp_types.ImageContent | mcp_types.AudioContent):
        return f"[{kind}: {item.mime_type}, {_size(item.data)}, not shown]"
    if isinstance(item, mcp_types.ResourceLink):
        return f"[resource link: {item.name} <{item.uri}>]"
    if isinstance(item, mcp_types.EmbeddedResource):
        resource = item.resource
        if isinstance(resource, mcp_types.TextResourceContents):
            return resource.text
        mime = getattr(resource, "mime_type", None) or "application/octet-stream"
        return f"[resource: {resource.uri}, {mime}, {_size(getattr(resource, 'blob', ''))}]"
    return f"[{kind} content, not shown]"


def _size(data: str) -> str:
    """The size of base64 *data*, from its length: decoding it only to measure it is waste."""
    return f"{len(data) * 3 // 4 - data[-2:].count('=')} bytes"
