"""The digest stage: subscribers, building, rendering, sending, unsubscribe tokens, archive.

- ``subscribers``: validated addresses, themes, frequency, caps; CSV import.
- ``schedule``: when a digest is due, the period it covers, which unsent items are news.
- ``builder.build_digests(db, config)``: a digest per due subscriber (+ the public issue), queued.
- ``render``: Jinja2 templates → subject, HTML, text; ``build_message`` → multipart e-mail.
- ``send.send_pending(db, config)``: the SMTP outbox (never sends a delivered message twice).
- ``tokens``: HMAC-signed one-click unsubscribe tokens.
- ``archive.build_archive(db, config, dir)``: static pages + Atom feed.
"""
