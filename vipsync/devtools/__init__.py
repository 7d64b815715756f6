"""Development tools: fake Shopify and SP-API servers, data generators."""
