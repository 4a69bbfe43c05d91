"""Notifications of deployment events: CodeDeploy's triggers, sent to SNS topics or webhooks.

``messages`` builds AWS's message (pure), ``declaration`` reads which targets are webhooks,
``senders`` are the notifiers, ``retry`` the backoff (pure), ``dispatcher`` the outbox sink that
makes deliveries and the loop that sends them.
"""
