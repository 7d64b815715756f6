"""The normalized store: tables, repository, migrations and read models."""
