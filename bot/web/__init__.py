"""The web front (``spsbot serve``): sign-up with double opt-in, preferences, one-click
unsubscribe, feedback from the e-mail, the archive and search.

``bot.web.app.create_app`` builds the Flask application from the routes (``bot.web.public``,
``bot.web.subscriber``), which share ``bot.web.context`` (state, error pages, limits) and never
import the app; ``bot.web.server`` runs it on waitress with the request limits;
``bot.web.mailer`` sends the sign-up e-mails from their outbox.
"""
