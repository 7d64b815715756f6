"""Shopify: GraphQL Admin API sync, bulk backfill, webhooks, and the REST/webhook mapper."""
