"""Alert triggers: the receiver of ``fireline serve``, its adapters, routing, spool and dispatcher.

The flow of an alert: a source posts to ``POST /alerts/<source>`` (:mod:`.receiver`); the request is
authenticated and bounded (:mod:`.auth`, :mod:`.limits`), parsed by the source's adapter
(:mod:`.adapters`) into normalised :class:`~flows.triggers.model.Alert` objects, written to the
durable spool (:mod:`.spool`) and answered 202. The dispatcher (:mod:`.dispatcher`) takes spooled
batches, routes each alert to a playbook (:mod:`.routing`), deduplicates by incident key and starts,
attaches to or resolves runs. ``fireline run --alert FILE`` reads files through the same adapters.

Heavy imports (starlette, prometheus_client, cryptography) stay inside the modules that need them.
"""
