"""SciPy drop-ins: correlate2d and convolve2d (placeholder, being written)."""
