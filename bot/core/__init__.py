"""The bot's painting core: requests, admission, records, stored inputs, backends and the job
runner. No ``discord`` here: a job's messages come from the Discord layer (:mod:`bot.chat`)
through the protocols in :mod:`bot.core.life` and :mod:`bot.core.runner`."""
