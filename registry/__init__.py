"""Registry: charge-point registration and credentials over HTTPS."""
