"""People: the directory, contact trees, paging with escalation, acks and approvals from people.

Modules: :mod:`identity` (canonical identities, who answered), :mod:`directory` (people and groups),
:mod:`trees` (contact trees), :mod:`notify` (the notifier interface and its built-in webhook and
e-mail notifiers), :mod:`answers` (acks and approval answers reaching a waiting run) and
:mod:`page` (the ``contacts.page`` action). Nothing here imports ``integrations``: notifiers that
live there (Slack) are loaded by module name.
"""
