"""mitmproxy addons: recorder, replayer, simulator."""
