"""The web app: the public unsubscribe pages, the JSON API, health and metrics."""
