"""Defaults of every ``SEGMENTS_*`` setting; read them with :func:`segments.conf.get_setting`."""

# The event-stream and fast-store backend, by dotted path, with its options. Production:
# {"BACKEND": "segments.backends.redis.RedisBackend", "OPTIONS": {"URL": "redis://..."}}
SEGMENTS_BACKEND = {"BACKEND": "segments.backends.embedded.EmbeddedBackend", "OPTIONS": {}}

# The consent purpose under which behaviour is recorded and segments are computed.
SEGMENTS_PURPOSE = "personalization"

# Events read from the stream per batch (one partition's turn in a drain), and how long one
# drain task may run before it hands over to a fresh task.
SEGMENTS_BATCH_SIZE = 2000
SEGMENTS_DRAIN_MAX_SECONDS = 20.0
# How long an idle drain waits for new events before it ends (Redis backend only).
SEGMENTS_DRAIN_LINGER_MS = 250
# Lifetime of a partition's drain lock; the live drain renews it every third of this, so a
# dead worker's partition is taken over (and its unacknowledged entries claimed) within it.
SEGMENTS_LOCK_TTL_MS = 5_000
# Failed attempts at applying one stream entry (while the database and the fast store answer)
# before it is moved to its partition's dead-letter stream.
SEGMENTS_DEAD_LETTER_ATTEMPTS = 3

# The request path's circuit breaker. After the fast store fails (an error, or no reply within
# the backend's REQUEST_TIMEOUT), or answers slower than SEGMENTS_SLOW_CALL_SECONDS this many
# times in a row, skip it for SEGMENTS_FAILURE_BACKOFF seconds: pages render default content at
# once and no event is accepted. Then one request probes it; a fast answer closes the breaker.
SEGMENTS_FAILURE_BACKOFF = 5.0
SEGMENTS_SLOW_CALL_SECONDS = 0.05
SEGMENTS_SLOW_CALLS = 3

# Readiness reports the workers as late when the periodic sweep (every 5 s) last ran longer ago
# than this many seconds (reported, not failing readiness; alert on it: docs/operations.md).
SEGMENTS_HEARTBEAT_MAX_AGE = 60.0

# User agents never recorded (page views and events), as a regular expression searched
# case-insensitively: crawlers, headless browsers (Chrome headless says "HeadlessChrome"), and
# HTTP libraries and command-line tools, which are scripts, not visitors. None (or "") records
# every user agent, e.g. to try the site with a headless browser or a script in staging.
SEGMENTS_BOT_USER_AGENTS = (
    r"bot\b|crawler|spider|slurp|headless|lighthouse|phantomjs|selenium|puppeteer|playwright"
    r"|curl/|wget/|python-requests|python-urllib|python-httpx|httpx|aiohttp|go-http-client"
    r"|okhttp|java/|libwww-perl|scrapy|node-fetch|axios/"
)

# Paths never recorded as page views.
SEGMENTS_EXCLUDED_PATH_PREFIXES = [
    "/admin/",
    "/django-admin/",
    "/static/",
    "/media/",
    "/consent/",
    "/api/",
    "/-/",  # health and metrics (docs/operations.md)
]

# Events in the durable log are kept this many days (13 months), then purged by the daily
# retention job, which recomputes the affected visitors' features from what remains (features
# summarise exactly the log); imports refuse older rows. Features and memberships of visitors
# gone quiet expire in the fast store after PROFILE_TTL.
SEGMENTS_EVENT_RETENTION_DAYS = 395

# How often a process asks the database whether a segment was added, saved or deleted (one
# small query; None: never), in seconds: an editor's change reaches every process within it.
SEGMENTS_DEFINITIONS_CHECK_SECONDS = 1.0
# How long a process may use its cached list of segment definitions at most, in seconds (for
# writes the check cannot see: an update() that leaves updated_at alone).
SEGMENTS_DEFINITIONS_CACHE_SECONDS = 10.0
# Time zone of time-of-day and weekday conditions (default: TIME_ZONE).
SEGMENTS_TIME_ZONE = None
# Request headers carrying the visitor's country code, set by a CDN or proxy, tried in order:
# Cloudflare's and CloudFront's by default (a site behind neither can set [] or its own
# proxy's header; a visitor who forges one only changes what they see themselves). When none
# gives a country and Django's GEOIP_PATH is set, the country is looked up in that GeoIP2
# database (django.contrib.gis.geoip2, needs the geoip2 package); the IP address is used for
# that lookup only, never kept.
SEGMENTS_COUNTRY_HEADER = ["CF-IPCountry", "CloudFront-Viewer-Country"]

# Segments smaller than this are flagged as too small to act on.
SEGMENTS_MIN_SIZE = 50

# Rate limit of the client event endpoint per client address (DRF rate syntax; None: off).
SEGMENTS_EVENT_RATE = "120/min"
# ... and per visitor (keyed hash of the consent cookie's id), whatever their address; the
# tracker sends at most one batch every few seconds.
SEGMENTS_EVENT_VISITOR_RATE = "60/min"
