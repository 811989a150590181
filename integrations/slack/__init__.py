"""Slack: the incident channel, pages, the run's root message and timeline thread, through slack-sdk.

Modules: :mod:`client` (the ``WebClient`` from ``[slack]`` settings, pacing, 429 handling),
:mod:`actions` (``slack.open_incident_channel``, ``slack.post``), :mod:`notifier` (pages to people,
channels and user groups), :mod:`timeline` (the root message and thread of a run), :mod:`blocks`
(Block Kit), :mod:`state` (``<run dir>/slack.json``) and :mod:`loopback` (a local stand-in for the
Slack Web API used by the sandbox and the tests). slack_sdk is imported lazily, on first use.
"""
