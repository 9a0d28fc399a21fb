"""Reporting: figures and tables people look at (training curves now; tables, overlays and HTML to come)."""
