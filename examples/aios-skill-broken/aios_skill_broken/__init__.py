"""Three ways a plugin can be broken; aios must log each by name and keep working."""
