"""The web edge: Flask app factory, the Stripe webhook, health checks and the read-only API."""
