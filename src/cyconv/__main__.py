"""python -m cyconv (placeholder, being written)."""
