"""The labeling app: Flask pages for people, a small JSON API for scripts.

Pages (a signed session cookie, set at login by a labeler's secret token):

- ``/login`` (form, or ``/login?token=...`` as the link ``add-labeler`` prints): the only page open
  without a token, with its stylesheet;
- ``/label``: the labeler's current item, or the next one, assigned in one transaction;
- ``/item/<id>``: an item the labeler was handed (going back shows it with their ranking; submitting
  again changes it); ``POST`` submits (``action=submit``) or skips (``action=skip``);
- ``/admin``: progress and inter-labeler agreement (admins only).

Ranking form fields: ``rank_<i>`` for each completion ``i``, 1 = best as on the page, equal numbers
for ties, dense (``agents.label.ranking``); ``flag_<i>`` (repeated) with names of ``ranking.FLAGS``;
``score`` empty or 1-7; ``csrf_token``.

JSON API (header ``Authorization: Bearer TOKEN``; it never reads the cookie, so a page of another
site cannot drive it and it needs no CSRF token): ``GET /api/next`` -> ``{"item_id", "prompt",
"responses", "k", "ranking"}`` or ``{"done": true}``; ``POST /api/submit`` with ``{"item_id", "ranking"
(0-based), "flags"?, "score"?}`` -> ``{"ranking_id", "status"}``, where status is ``stored``,
``updated`` or ``unchanged`` (a retry); ``POST /api/skip`` ``{"item_id"}``; ``GET /api/agreement`` (admins).

Safety: every form carries Flask-WTF's CSRF token (``CSRFProtect``); completions are text, escaped by
Jinja's autoescaping and shown with ``white-space: pre-wrap``, and the page's script only moves nodes
and sets ``textContent``; a Content-Security-Policy allows no inline script or style at all.
"""

from __future__ import annotations

import random
import threading

from flask import Blueprint, Flask, current_app, g, jsonify, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect

from agents.label.db import LabelingError, NotAssigned, Store, UnknownItem
from agents.label.ranking import FLAGS, RankingError, validate_ranking

pages = Blueprint("pages", __name__)
api = Blueprint("api", __name__, url_prefix="/api")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
OPEN_ENDPOINTS = {"pages.login", "static:label.css"}
"""What a request without a token may reach: the login page and its stylesheet (package files, no data)."""


def create_app(db_path, *, lease_minutes: float = 60.0) -> Flask:
    """The app on the database ``db_path`` (created if missing). An item handed to a labeler stays theirs
    for ``lease_minutes`` (renewed each time they open it); after that another labeler may get it too."""
    with Store(db_path, create=True) as store:
        secret = store.secret_key()  # kept in the database: sessions survive a restart
    app = Flask(__name__)
    # SameSite=Lax, not Strict: the login link opened from a mail must land logged in; cross-site POSTs still
    # carry no cookie, and the forms' CSRF tokens guard them anyway.
    app.config.update(
        SECRET_KEY=secret,
        DB_PATH=str(db_path),
        LEASE_S=60.0 * lease_minutes,
        SESSION_COOKIE_NAME="textbandit_label",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=1 << 20,
    )
    app.before_request(_authenticate)  # before the CSRF check: who is asking comes first
    csrf = CSRFProtect(app)
    csrf.exempt(api)
    app.register_blueprint(pages)
    app.register_blueprint(api)
    app.after_request(_headers)
    app.extensions["textbandit_label"] = threading.local()  # the per-thread Store of store()
    app.register_error_handler(
        CSRFError, lambda e: _page_error(400, f"{e.description} Reload the page and submit again.")
    )
    return app


def store() -> Store:
    """This thread's connection to the database, opened at the thread's first request and kept: waitress's
    threads live as long as the server, and opening and closing a WAL database per request would cost more
    than the request (closing the last connection checkpoints the log). No transaction outlives a call."""
    local = current_app.extensions["textbandit_label"]
    if getattr(local, "store", None) is None:
        local.store = Store(current_app.config["DB_PATH"])
    return local.store


def _api_error(status: int, message: str):
    response = jsonify(error=message)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="textbandit-label"'
    return response


def _page_error(status: int, message: str):
    return render_template("error.html", message=message), status


def _authenticate():
    g.labeler = None
    endpoint = request.endpoint
    if endpoint == "static":
        endpoint = f"static:{(request.view_args or {}).get('filename')}"
    if request.blueprint == "api":
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            return _api_error(
                401,
                "missing token: send 'Authorization: Bearer TOKEN' with the token that "
                "'textbandit label add-labeler' printed",
            )
        g.labeler = store().labeler_by_token(header[7:].strip())
        return (
            None
            if g.labeler
            else _api_error(
                401,
                "wrong token: no labeler has it; check it, or ask for a new "
                "labeler with 'textbandit label add-labeler'",
            )
        )
    labeler_id = session.get("labeler_id")
    g.labeler = store().labeler(labeler_id) if isinstance(labeler_id, int) else None
    if g.labeler is None and endpoint not in OPEN_ENDPOINTS:
        if request.method == "GET":
            return redirect(url_for("pages.login"))
        return _page_error(401, "You are not logged in: log in with your token, then submit again.")
    return None


def _headers(response):
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"  # the login link holds the token
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
    return response


ADMINS_ONLY = "Admins only: create an admin with 'textbandit label add-labeler --admin'."


# pages


@pages.route("/login", methods=["GET", "POST"])
def login():
    token = request.form.get("token") if request.method == "POST" else request.args.get("token")
    if token is None:
        return render_template("login.html")
    labeler = store().labeler_by_token(token.strip())
    if labeler is None:
        return render_template("login.html", error="No labeler has this token: check it and try again."), 401
    session.clear()  # a fresh session (and CSRF token) per login
    session["labeler_id"] = labeler["id"]
    return redirect(url_for("pages.label"))  # drops a token in the URL from the address bar


@pages.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("pages.login"))


@pages.get("/")
def index():
    return redirect(url_for("pages.label"))


@pages.get("/label")
def label():
    view = store().next_assignment(g.labeler["id"], current_app.config["LEASE_S"])
    if view is None:
        return render_template("done.html", back=store().previous(g.labeler["id"]), progress=_progress())
    return _item_page(view)


@pages.get("/item/<int:item_id>")
def item(item_id: int):
    view = store().view(g.labeler["id"], item_id)
    if view is None:
        return _page_error(*_missing(item_id))
    return _item_page(view)


@pages.post("/item/<int:item_id>")
def submit(item_id: int):
    view = store().view(g.labeler["id"], item_id)
    if view is None:
        return _page_error(*_missing(item_id))
    action = request.form.get("action", "submit")
    try:
        if action == "skip":
            store().skip(g.labeler["id"], item_id)
        elif action == "submit":
            store().submit(g.labeler["id"], item_id, *_parse_form(view["k"]))
        else:
            raise LabelingError(f"unknown action {action!r}: the form submits 'submit' or 'skip'")
    except (LabelingError, RankingError) as e:
        return _item_page(view, error=str(e), status=400)
    return redirect(url_for("pages.label"))


@pages.get("/admin")
def admin():
    if not g.labeler["is_admin"]:
        return _page_error(403, ADMINS_ONLY)
    s = store()
    agree = s.agreement()
    return render_template(
        "admin.html", agreement=agree, labelers=s.labelers(), progress=_progress(), n_items=s.count_items()
    )


def _missing(item_id: int) -> tuple[int, str]:
    if store().item(item_id) is None:
        return 404, f"There is no item {item_id}."
    return 403, f"Item {item_id} is not assigned to you; the labeling page hands you your items."


def _parse_form(k: int) -> tuple[list[int], list[list[str]], int | None]:
    """Ranks (1-based on the page), flags and score from the ranking form; validated by the store."""
    ranks = []
    for i in range(k):
        raw = request.form.get(f"rank_{i}", "").strip()
        if not raw.isdigit():
            raise RankingError(f"completion {i + 1} has no rank: give each completion a rank from 1 (best) to {k}")
        ranks.append(int(raw))
    ranks = validate_ranking(ranks, k, base=1)
    score = request.form.get("score", "").strip()
    if score and not score.isdigit():
        raise RankingError(f"the score must be a number from 1 to 7, or empty; got {score!r}")
    return ranks, [request.form.getlist(f"flag_{i}") for i in range(k)], int(score) if score else None


def _progress() -> dict:
    return store().progress(g.labeler["id"], current_app.config["LEASE_S"])


def _item_page(view: dict, error: str | None = None, status: int = 200):
    """The labeling page of one item: cards best first as ranked before, else in a per-labeler shuffled order
    (so that two labelers of an overlap item do not share a position bias)."""
    k, ranks, flags = view["k"], view["ranks"], view["flags"] or [[] for _ in range(view["k"])]
    if ranks is None:
        order = list(range(k))
        random.Random(f"{view['item_id']}:{g.labeler['id']}").shuffle(order)
        ranks = [order.index(i) for i in range(k)]
    order = sorted(range(k), key=lambda i: (ranks[i], i))
    cards = [
        {
            "index": i,
            "text": view["responses"][i],
            "rank": ranks[i] + 1,
            "flags": flags[i],
            "tied": pos > 0 and ranks[i] == ranks[order[pos - 1]],
        }
        for pos, i in enumerate(order)
    ]
    back = store().previous(g.labeler["id"], view["item_id"])
    return render_template(
        "label.html",
        item=view,
        cards=cards,
        flags=FLAGS,
        error=error,
        progress=_progress(),
        back=back,
        revisit=view["status"] != "open",
    ), status


# JSON API


@api.errorhandler(LabelingError)
@api.errorhandler(RankingError)
def _api_labeling_error(e: ValueError):
    return _api_error(404 if isinstance(e, UnknownItem) else 403 if isinstance(e, NotAssigned) else 400, str(e))


def _json_body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise LabelingError(
            'send a JSON object, e.g. {"item_id": 1, "ranking": [0, 2, 1]}, with Content-Type: application/json'
        )
    return body


@api.get("/next")
def api_next():
    view = store().next_assignment(g.labeler["id"], current_app.config["LEASE_S"])
    if view is None:
        return jsonify(done=True)
    return jsonify({**{k: view[k] for k in ("item_id", "prompt", "responses", "k")}, "ranking": view["ranks"]})


@api.post("/submit")
def api_submit():
    body = _json_body()
    ranking_id, status = store().submit(
        g.labeler["id"], body.get("item_id"), body.get("ranking"), body.get("flags"), body.get("score")
    )
    return jsonify(ranking_id=ranking_id, status=status)


@api.post("/skip")
def api_skip():
    body = _json_body()
    item_id = body.get("item_id")
    if not isinstance(item_id, int) or store().item(item_id) is None:
        raise UnknownItem(f"no item {item_id!r}; item ids come from GET /api/next")
    return jsonify(status=store().skip(g.labeler["id"], item_id))


@api.get("/agreement")
def api_agreement():
    if not g.labeler["is_admin"]:
        return _api_error(403, ADMINS_ONLY)
    return jsonify(store().agreement())
