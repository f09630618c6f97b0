"""Shared foundation of EVCharging: protocol, crypto, database, events, infrastructure."""
