"""``gradstep lab``: the lecture as a local web app, with the real engine on the server.

Starlette (ASGI) serves the pages and a small JSON/Server-Sent-Events API, uvicorn runs it,
Plotly draws on the page: plotly.min.js is served from the installed ``plotly`` package
(MIT licensed; its license ships with it), so no request leaves the machine. Every panel keeps
its state in the query string, so a URL shares a configuration, and the server keeps none:
two tabs train independently.
"""
