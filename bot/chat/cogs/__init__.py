"""The slash commands. Cogs stay thin: the rules live in the core (:mod:`bot.core`)."""
