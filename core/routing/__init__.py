"""Device/cloud routing."""
