"""The Discord bot: a painting core without Discord (:mod:`bot.core`) and a Discord layer on top
(:mod:`bot.chat`). The core never imports ``discord``; the Discord layer imports the core, never
the other way round (the gate, ``tests/test_codebase.py``, checks both)."""
