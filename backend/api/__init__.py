"""REST blueprints, one per feature."""
