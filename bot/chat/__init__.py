"""The bot's Discord layer: the bot class, cogs, buttons, a job's messages and the replies. It
uses the painting core (:mod:`bot.core`) and adds everything of Discord."""
