"""The pieces of :mod:`evolm.report.domain_views`: shared HTML helpers (``common``), SVG
pictures (``pictures``), the built-in views of evolm's domains (``builtin``) and the views that
re-run programs in the sandbox (``rerun``, with ``render_image``'s sandbox domain)."""
