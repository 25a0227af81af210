"""Memory: footprint estimates and the governor that keeps models within budget."""
