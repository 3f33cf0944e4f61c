"""Chat app and MCP server (`prosector.ui`)."""
