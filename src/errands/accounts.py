"""Accounts: users (Argon2id), sessions, API tokens, rate limits, the audit trail and the shared secret key."""
