"""Defaults of every ``CHANNELS_*`` setting; read them with
:func:`tailored_channels.conf.get_setting`."""

# Membership changes read from the segments' history per pass of the fan-out.
CHANNELS_FANOUT_BATCH = 5000
# Items in one delivery at most (a destination may ask for fewer; Mailchimp's limit is 500).
CHANNELS_BATCH_SIZE = 500
# Seconds to wait before each retry of a failed delivery (about three days in all). A delivery
# still failing after the last is marked failed; one carrying a consent withdrawal or an erasure
# keeps being retried at the last interval until it succeeds.
CHANNELS_RETRY_SCHEDULE = [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 72000]
# Seconds one HTTP attempt may take to connect, and for each read; the whole attempt (connect,
# send, the answer's headers and body) is cut at twice this.
CHANNELS_TIMEOUT = 10.0
# Seconds a worker holds a destination for sending, renewed before each delivery and, by
# backends that send a delivery in several requests (Mailchimp), between them
# (BaseBackend.keep_lease): one request must take less (a webhook's takes at most twice
# CHANNELS_TIMEOUT). A worker that dies mid-batch hands over to another when this has passed;
# one that lost it mid-send stops, and its delivery is sent again by the one holding it.
CHANNELS_SEND_LEASE = 300
# Networks (or addresses) of receivers on the site's own network that destinations may reach,
# e.g. ["10.20.0.0/16"]: every other private, loopback, link-local, multicast, reserved or
# unspecified address is refused, and plain http is only allowed inside these.
CHANNELS_ALLOWED_PRIVATE_NETWORKS = []
# Characters of a receiver's response kept in the delivery log.
CHANNELS_RESPONSE_CHARS = 500
# Dotted path of f(visitor_keys) -> {visitor_key: {"account": ..., "email": ...}}: the linked
# account of the visitors that have one (None: no visitor has; only keyed hashes are sent).
CHANNELS_ACCOUNT_RESOLVER = None
# Deliveries (and their bodies) are kept this many days after they were delivered or failed.
CHANNELS_DELIVERY_RETENTION_DAYS = 30
# What a destination was told about a visitor is forgotten this many days after it last changed
# (the visitor's profile has long expired by then, and the reconciliation has removed them).
CHANNELS_AUDIENCE_RETENTION_DAYS = 400
# Storage alias (of STORAGES) and folder of the file exports.
CHANNELS_EXPORT_STORAGE = "default"
CHANNELS_EXPORT_PREFIX = "tailored-exports/"
# Rate limit of the inbound events endpoint per client address (DRF "requests/period").
CHANNELS_INBOUND_RATE = "1200/min"
