"""The web app: server-rendered pages (Jinja2, inline SVG charts) and one small script."""
