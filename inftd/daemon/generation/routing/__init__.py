"""Which provider makes a request: the ``router`` with its fallbacks, provider ``health``
(cooldowns, parking), the response ``cache``, and the ``recorder`` of every call."""
