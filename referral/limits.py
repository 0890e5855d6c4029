"""Limits of the directory, named once and used by the models, schemas and operations."""

#: Highest fee per session, in US dollars (a listing's fee_max; the database checks it too).
MAX_FEE = 2000
#: Longest bio, in characters.
MAX_BIO = 2000
#: Typical wait to a first appointment, at most (days).
MAX_WAIT_DAYS = 365
#: Default and largest search radius around the patient, in miles.
DEFAULT_RADIUS_MILES = 25.0
MIN_RADIUS_MILES = 1
MAX_RADIUS_MILES = 250
#: Results per page, and how deep a search may page.
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
MAX_SEARCH_RESULTS = 10_000
#: The most prescribers a therapist's prescriber finder ranks in full.
FINDER_DEPTH = 200
#: Most pairs one match answers.
MAX_PAIRS = 50
#: Referral answers a prescriber needs before public pages show their responsiveness
#: (fewer would let anyone watch single referrals being answered).
MIN_PUBLIC_REFERRALS = 5
#: Longest URL (path and query string) a request may have, in bytes; longer: 414.
MAX_URL_BYTES = 4094
#: Free-text query length.
MAX_QUERY_LENGTH = 200
#: Database ids are 32-bit on every backend.
MAX_ID = 2_147_483_647
#: Deepest nesting of arrays and objects a JSON request body may have (a listing needs 3).
MAX_JSON_DEPTH = 32
#: Most webhook endpoints one clinic keeps.
MAX_WEBHOOKS_PER_CLINIC = 10
#: Longest coordination message (and status-change note), in characters.
MAX_MESSAGE_LENGTH = 4000
#: Shortest password a person may choose, in characters.
MIN_PASSWORD_LENGTH = 12
#: Longest password accepted (argon2 hashes anything, but a megabyte password is an attack).
MAX_PASSWORD_LENGTH = 200
#: Longest reason an operator gives for a decision, and a claim's evidence.
MAX_REASON_LENGTH = 500
MAX_EVIDENCE_LENGTH = 2000
#: Most records one claim request names.
MAX_CLAIMS_PER_REQUEST = 100
#: Longest text of a patient's report on a listing, and of the clinic's resolution note.
MAX_REPORT_TEXT = 500
