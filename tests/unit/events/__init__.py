"""Unit tests of the event envelope, de-duplication, the relay and the consumer."""
