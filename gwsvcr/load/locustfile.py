"""gwsvcr's locustfile: recorded GWS agents as Locust users.

    locust -f "$(gwsvcr load --locustfile)" --host https://gws-lab:8443 \\
        --gwsvcr-cassette field.yaml --gwsvcr-user 'agent{i}' -u 500 -r 20 -t 10m

Options: ``locust -f ... --help`` ("gwsvcr" group), or environment variables (GWSVCR_CASSETTE, GWSVCR_USER,
GWSVCR_PASSWORD, ...). Point it only at servers you are allowed to load.
"""

from gwsvcr.load.user import RecordedAgent

__all__ = ["RecordedAgent"]
