"""Web dashboard: live state, revenue, audit, operator controls."""
