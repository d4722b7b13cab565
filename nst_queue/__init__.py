"""nst_queue: painting jobs through Redis with arq, shared by the bot, ``nst --queue`` and ``nst-worker``.

:mod:`nst_queue.protocol` is what travels (job payloads, progress events, results, key names and
their lifetimes); :mod:`nst_queue.client` sends jobs and follows them; :mod:`nst_queue.worker` is
the ``nst-worker`` command that paints them. Nothing here imports Discord.
"""
