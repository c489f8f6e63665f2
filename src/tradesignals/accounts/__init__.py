"""Accounts: password hashing, tokens, the account service and billing (issue 11)."""
