"""Presentation: one module per notebook stage with the tables and figures it shows, computed
elsewhere and drawn here; `export` writes them as files a thesis chapter can paste."""
