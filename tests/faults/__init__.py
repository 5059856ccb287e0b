"""Fault-injection and security suite (issue 7): misbehaving local servers, kill -9, bad input, secrets."""
