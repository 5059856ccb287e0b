"""Pages for one person: sign up (double opt-in), confirm, preferences, unsubscribe, feedback.

Every page but the sign-up form is opened by a signed link from an e-mail (``bot.digest.tokens``):
the token says who, and a page shows nothing about anyone else (the address itself only masked).
A GET never changes anything — link scanners and mail previews fetch every URL — it shows a
button; the POST does the work. A page opened with one kind of token never links a token of
another kind: the unsubscribe link (also in every List-Unsubscribe header and mailto subject)
must not lead to the preferences page, which could subscribe the person again. Every form
carries a CSRF token, except RFC 8058's one-click unsubscribe POST, which mail providers send
without a page (the signed token in the URL is its authority, and unsubscribing is the one action
that is safe to let anyone holding the link do).
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, abort, make_response, redirect, render_template, request, url_for

from bot.digest.tokens import TokenError
from bot.web.context import bad_request, error_page, limit, state

log = logging.getLogger(__name__)
bp = Blueprint("subscriber", __name__)

MAX_TOKEN_CHARS = 600
CAP_RETRY = 3600  # the global cap on sign-up e-mails is per hour
VOTE_TITLES = {"relevant": "Relevant", "irrelevant": "Not relevant"}


def mask_address(email: str) -> str:
    """'a•••@example.org': enough for its owner to recognise, little for anyone who was forwarded the link."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}{'•' * min(max(len(local) - 1, 2), 6)}@{domain}"


def _token(source) -> str:
    token = (source.get("token") or "").strip()
    if not token or len(token) > MAX_TOKEN_CHARS:
        link_problem("damaged")
    return token


def _verified(check, token: str):
    """The token's subject, or a 400 page that says what is wrong with the link."""
    try:
        return check(state().db(), token)
    except TokenError as e:
        link_problem("expired" if "expired" in str(e) else "damaged")


# What happened to a link, in one sentence (a TokenError's wording is for the maintainer's log).
LINK_PROBLEMS = {
    "damaged": "Part of this link is missing or changed — mail programs sometimes cut a long link in two — "
               "so it cannot be checked.",
    "expired": "This link has expired: links in our e-mails stop working after a while, so that a forwarded "
               "e-mail cannot be used for ever.",
    "used": "This confirmation link was already used, and the address has left the list since, so it cannot "
            "sign it up again.",
}


def _confirmable(token: str) -> dict:
    """The sign-up a confirmation link names, or the page saying why it cannot be confirmed."""
    from bot.digest.tokens import verify_confirm_token
    from bot.store.subscribers import spent_signup
    signup = _verified(verify_confirm_token, token)
    if spent_signup(state().db(), signup):
        link_problem("used")
    return signup


def link_problem(kind: str):
    """Abort with the page for a damaged or expired link: what happened in one sentence, and the
    form that e-mails a fresh link (the sign-up form: it answers the same whatever the address)."""
    page = render_template("link_problem.html", what=LINK_PROBLEMS[kind], form={})
    abort(make_response(page, 400))


def _post_limit() -> None:
    limit("post", int(state().setting("posts_per_client_minute", 60)), 60)


# --- sign-up -------------------------------------------------------------------------------

@bp.post("/subscribe")
def subscribe():
    from bot.digest.confirmations import queue_signup
    from bot.digest.subscribers import SubscriberError, check_style, clean_name, parse_themes, validate_email
    from bot.web.public import issue_link, theme_choices
    limit("subscribe", int(state().setting("signups_per_client_hour", 10)), 3600)
    form = request.form
    config = state().config
    if form.get("website"):  # the hidden field only robots fill in: same page, nothing sent
        log.info("sign-up: honeypot field filled; ignored")
        return render_template("check_inbox.html")
    try:
        email = validate_email((form.get("email") or "").strip())
        themes = parse_themes(form.getlist("themes"), config.theme_names)
        style = check_style(form.get("style"))
    except SubscriberError as e:
        from bot.store.digests import public_issue_index
        issues = [issue_link(row) for row in public_issue_index(state().db())]
        message = str(e).replace("invalid e-mail address", "That is not an e-mail address we can send to:")
        return render_template("home.html", issues=issues, themes=theme_choices(config), error=message,
                               form={"email": form.get("email", "")[:254], "name": form.get("name", "")[:200],
                                     "themes": form.getlist("themes"), "style": form.get("style")}), 400
    outcome = queue_signup(state().db(), config, email, clean_name(form.get("name")),
                           json.dumps(themes) if themes else None, style)
    log.info("sign-up request: %s", outcome)  # never the address
    if outcome == "capped":  # the hourly cap is for everyone alike: saying so tells nothing about the address
        return error_page(503, "We have sent as many sign-up e-mails as we can this hour, so none was sent to "
                               "you. Please sign up again in an hour.", headers={"Retry-After": str(CAP_RETRY)})
    if outcome in ("confirm", "manage") and state().wake_mailer:
        state().wake_mailer()
    return render_template("check_inbox.html")


@bp.get("/confirm")
def confirm_page():
    from bot.store.subscribers import find_subscriber
    token = _token(request.args)
    signup = _confirmable(token)
    # A new subscriber's name is asked here, of the person holding the mailbox: the sign-up form's
    # name was typed by whoever filled it in, for any address, so it is only offered, visibly, to
    # keep or clear. A returning subscriber keeps theirs (it changes on their preferences page).
    new = find_subscriber(state().db(), signup["email"]) is None
    return render_template("confirm.html", token=token, address=mask_address(signup["email"]),
                           ask_name=new, name=signup["name"] or "")


@bp.post("/confirm")
def confirm():
    from bot.digest.subscribers import clean_name
    from bot.store.subscribers import confirm_signup
    _post_limit()
    signup = _confirmable(_token(request.form))
    # the name this page sent, never the sign-up form's (a page without the field: no name)
    subscriber, changed = confirm_signup(state().db(), signup, name=clean_name(request.form.get("name")))
    log.info("sign-up %d confirmed (subscriber %d%s)", signup["id"], subscriber["id"], "" if changed else ", already")
    return render_template("confirmed.html", address=mask_address(subscriber["email"]))


# --- preferences ---------------------------------------------------------------------------

@bp.get("/preferences")
def preferences_page():
    from bot.digest.tokens import verify_token
    token = _token(request.args)
    subscriber = _verified(lambda db, t: verify_token(db, t, purpose="preferences"), token)
    return _preferences(subscriber, token, done=request.args.get("done", ""))


def _preferences(subscriber: dict, token: str, done: str = "", error: str | None = None, status: int = 200):
    from bot.digest.schedule import period_days
    from bot.store import loads
    from bot.web.public import theme_choices
    config = state().config
    chosen = loads(subscriber.get("themes")) or [t.name for t in config.themes]
    notices = {"saved": "Your preferences are saved.", "unsubscribed": "You are unsubscribed.",
               "resubscribed": "Welcome back: you are subscribed again."}
    return render_template("preferences.html", token=token, address=mask_address(subscriber["email"]),
                           themes=theme_choices(config), chosen=chosen,
                           frequency=subscriber.get("frequency") or "weekly",
                           style=subscriber.get("style") or "clinical",
                           max_items=subscriber.get("max_items") or 20, active=subscriber["status"] == "active",
                           name=subscriber.get("name") or "",
                           period_days=period_days(config), notice=notices.get(done), error=error), status


@bp.post("/preferences")
def preferences():
    from bot.digest.subscribers import SubscriberError, clean_name, validate_preferences
    from bot.digest.tokens import verify_token
    from bot.store import subscribers as store
    _post_limit()
    form = request.form
    token = _token(form)
    subscriber = _verified(lambda db, t: verify_token(db, t, purpose="preferences"), token)
    action = form.get("action", "save")
    db = state().db()
    if action == "unsubscribe":
        store.unsubscribe(db, subscriber["id"])
        done = "unsubscribed"
    elif action == "resubscribe":
        store.resubscribe(db, subscriber["id"])
        done = "resubscribed"
    elif action == "save":
        try:
            chosen = validate_preferences(form.getlist("themes") or None, form.get("frequency"),
                                          form.get("max_items"), state().config.theme_names, form.get("style"))
        except SubscriberError as e:
            return _preferences(subscriber, token, error=f"Not saved: {e}.", status=400)
        # the one place a subscriber's name changes: their own signed preferences page (a form
        # without the field, e.g. one loaded before it existed, keeps the name; an empty one clears it)
        name = clean_name(form["name"]) if "name" in form else subscriber.get("name")
        store.update_preferences(db, subscriber["id"], **chosen, name=name)
        done = "saved"
    else:
        bad_request("Unknown action.")
    log.info("preferences: subscriber %d %s", subscriber["id"], done)
    return redirect(url_for("subscriber.preferences_page", token=token, done=done), code=303)


# --- unsubscribe ---------------------------------------------------------------------------

@bp.get("/unsubscribe")
def unsubscribe_page():
    from bot.digest.tokens import verify_token
    token = _token(request.args)
    subscriber = _verified(verify_token, token)
    return render_template("unsubscribe.html", token=token, address=mask_address(subscriber["email"]),
                           active=subscriber["status"] == "active")


@bp.post("/unsubscribe")
def unsubscribe():
    """A person's button (with a CSRF token) or RFC 8058 one-click (``List-Unsubscribe=One-Click``)."""
    from bot.digest.tokens import apply_unsubscribe
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    if not one_click:
        state().csrf.protect()
        _post_limit()  # (mail providers send one-click POSTs for many people from few addresses)
    token = _token(request.args if request.args.get("token") else request.form)
    subscriber = _verified(apply_unsubscribe, token)
    log.info("unsubscribed subscriber %d via the web%s", subscriber["id"], " (one-click)" if one_click else "")
    return render_template("unsubscribed.html", address=mask_address(subscriber["email"]))


# --- feedback ------------------------------------------------------------------------------

@bp.get("/feedback")
def feedback_page():
    from bot.digest.tokens import verify_feedback_token
    token = _token(request.args)
    subscriber, item_id = _verified(verify_feedback_token, token)
    return _feedback(subscriber, item_id, token, suggested=request.args.get("vote"),
                     done=request.args.get("done") == "1")


def _feedback(subscriber: dict, item_id: str, token: str, suggested: str | None, done: bool):
    from bot.digest.entries import clean_text, display_date, evidence_label, item_links
    from bot.store import get_item
    from bot.store.subscribers import current_judgement
    db = state().db()
    item = get_item(db, item_id)
    if item is None:
        bad_request("This item is no longer in the database.")
    current = current_judgement(db, subscriber, item_id)
    return render_template("feedback.html", token=token, suggested=suggested if suggested in VOTE_TITLES else None,
                           current=VOTE_TITLES.get(current), done=done, curator=bool(subscriber.get("curator")),
                           item={"title": clean_text(item.get("title")) or item_id, "label": evidence_label(item),
                                 "journal": clean_text(item.get("journal")),
                                 "date": display_date(item.get("pub_date") or item.get("entrez_date")),
                                 "links": item_links(item)})


@bp.post("/feedback")
def feedback():
    from bot.digest.tokens import verify_feedback_token
    from bot.store import get_item
    from bot.store.ranking import save_feedback
    from bot.store.subscribers import curator_note, save_vote
    _post_limit()
    token = _token(request.form)
    subscriber, item_id = _verified(verify_feedback_token, token)
    vote = request.form.get("vote")
    if vote not in VOTE_TITLES:
        bad_request("Choose “Relevant” or “Not relevant”.")
    db = state().db()
    if get_item(db, item_id) is None:
        bad_request("This item is no longer in the database.")
    if subscriber.get("curator"):  # a curator's click is a curator label, used at full weight
        save_feedback(db, item_id, vote, note=curator_note(subscriber["id"]))
    else:
        save_vote(db, subscriber["id"], item_id, vote)
    log.info("feedback: subscriber %d%s voted %s", subscriber["id"], " (curator)" if subscriber.get("curator") else "",
             vote)
    return redirect(url_for("subscriber.feedback_page", token=token, done="1"), code=303)
