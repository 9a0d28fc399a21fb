"""Reporting: what people look at. ``runs`` reads evaluated run directories, ``tables`` formats methods x metrics
(mean ± std, best in bold), ``statistics`` runs paired tests, ``overlays`` draws best/worst cases, ``curves`` plots
training logs, ``document``/``html`` render, ``build`` assembles ``dualseg report`` (see docs/reports.md)."""
