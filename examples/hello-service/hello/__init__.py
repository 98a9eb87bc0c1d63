"""Hello Service: a tiny web service that greets people (standard library only)."""
