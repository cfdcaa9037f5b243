"""How our HTTP servers are run."""

# Seconds an idle keep-alive connection stays open on our servers. Longer than any client's
# keep-alive expiry (httpx: 5 s by default, the Graph client 30 s): when a server closes an idle
# connection at the very moment a client reuses it, the client gets a ReadError on a request the
# server never read (uvicorn's default of 5 s equals httpx's, which makes that race common).
KEEP_ALIVE_S = 75
