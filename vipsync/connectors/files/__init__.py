"""File imports: streaming readers for order exports, reports and the members file."""
