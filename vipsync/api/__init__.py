"""The HTTP surface: Shopify webhooks, health checks (more routes join later)."""
