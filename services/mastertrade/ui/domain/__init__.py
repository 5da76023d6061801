"""What the dashboard shows, derived from the upstreams' answers: pure, no I/O."""
