"""Counts and rates for a dashboard (selectors.py), each a query or two whatever the size of the plant."""
