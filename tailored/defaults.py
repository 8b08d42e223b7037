"""Defaults of every ``TAILORED_*`` setting (the operations endpoints: health and metrics); read
them with :func:`tailored.conf.get_setting`."""

# The Prometheus metrics endpoint is off (404) unless one of these is set. A bearer token
# (``Authorization: Bearer <token>``), compared in constant time; and/or client addresses or
# networks (``REMOTE_ADDR``) allowed without a token, e.g. ["10.0.0.0/8", "127.0.0.1"].
TAILORED_METRICS_TOKEN = ""
TAILORED_METRICS_ALLOWED_IPS = []
