"""`edgewave dashboard`: a local web page of the rollouts, live from the API server.

`mirrors` keeps a local copy of the objects the page shows, fed by `watching` (list, then
watch, from the API server); `guards` decides, purely, whether a request may act;
`serving` is the aiohttp app (the page, a JSON board, server-sent events, the actions);
`page.html` is the page itself (vanilla JS, no build step). The documents come from
`views.boards`, which builds on the same view model as `edgewave status`.
"""
