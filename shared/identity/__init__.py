"""Identity: who is calling (tokens) and what they may do (scopes)."""
