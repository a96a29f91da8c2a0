"""The data behind fabric's pictures: span exports for trace viewers and the HTML report.

Everything here reads the store's public views (``spans``, ``traces``,
``span_metrics``, ``critical_path``, ``findings``, ``locality_accesses``,
``trust_crossings``) and hands plain data to the renderers in
``render/export`` and ``render/html``. Nothing here prints or exits.
"""
