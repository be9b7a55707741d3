"""The GraphQL API (server, schema, service layer) and its typed client. See docs/api.md."""
