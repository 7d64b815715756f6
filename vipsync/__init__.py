"""vipsync: order sync and VIP warranty tagging for TESmart's official stores."""

__version__ = "0.1.0"
