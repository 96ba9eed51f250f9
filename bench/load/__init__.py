"""Load generation: what runs inside Locust (the measuring user, the stream read loop and decoder, the route, record delivery)."""
