"""``gwsvcr load``: recorded agents as Locust users against a live GWS (``pip install 'gwsvcr[load]'``).

Each simulated agent runs one recorded session's client side with :class:`gwsvcr.verify.SessionDriver`, as
``gwsvcr verify`` does, again and again until the run ends. Modules: ``settings`` (what a run is told: the
cassette, credentials per agent, pacing; and how a check becomes a Locust entry), ``loop`` (one asyncio loop per
process, in a real OS thread beside Locust's gevent), ``user`` (the Locust User class; the only module that imports
locust) and ``locustfile.py`` (what ``locust -f`` is given).
"""
