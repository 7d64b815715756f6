"""Amazon SP-API: Orders API sync, Reports API backfill, and the flat-file report mapper."""
