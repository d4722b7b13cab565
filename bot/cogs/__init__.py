"""Discord-facing glue. Cogs stay thin: the rules live in plain modules under ``bot/``."""
