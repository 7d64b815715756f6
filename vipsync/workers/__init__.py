"""Jobs as plain functions, and the dramatiq actors and schedule that run them."""
