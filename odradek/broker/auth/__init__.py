"""Authentication (who is calling) and authorization (may they) for the broker's RPCs."""
