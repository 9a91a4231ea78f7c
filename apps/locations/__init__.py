"""The location tree (sites, buildings, rooms...) stored with materialized paths so a subtree is one indexed
prefix query: models.py, services.py for moves and renames, selectors.py for subtree reads."""
