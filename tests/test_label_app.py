"""The labeling app through Flask's test client: tokens, CSRF, escaping, bad input, going back, admin."""

from __future__ import annotations

import re

import pytest

from agents.label.app import create_app
from agents.label.db import Store

SCRIPT = "<script>alert('pwned')</script>"
ITEMS = [
    {"prompt": f"Say hi {SCRIPT}", "responses": ["hi", f"hello {SCRIPT}", "hey"]},
    {"prompt": "Count to two.", "responses": ["one two", "1 2"]},
]


@pytest.fixture
def app(tmp_path):
    db = tmp_path / "labels.sqlite"
    with Store(db, create=True) as s:
        s.add_items([dict(it) for it in ITEMS])
        tokens = {"ann": s.add_labeler("ann"), "root": s.add_labeler("root", admin=True)}
    app = create_app(db)
    app.tokens, app.db = tokens, db
    return app


def logged_in(app, name="ann"):
    client = app.test_client()
    assert client.get(f"/login?token={app.tokens[name]}").headers["Location"] == "/label"
    return client


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def form(html: str, **fields) -> dict:
    """The ranking form as the page renders it (ranks as shown), with ``fields`` replacing some."""
    data = {name: value for name, value in re.findall(r'name="(rank_\d+)"[^>]*value="(\d+)"', html)}
    return {"csrf_token": csrf_of(html), "action": "submit", **data, **fields}


def rankings(app) -> list[dict]:
    with Store(app.db) as s:
        return s.rankings()


def api(app, name=None, token=None):
    token = token or (app.tokens[name] if name else None)
    return {"Authorization": f"Bearer {token}"} if token else {}


def test_every_page_but_the_login_needs_a_token(app):
    client = app.test_client()
    for path in ("/", "/label", "/item/1", "/admin", "/static/label.js", "/no/such/page"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"] == "/login", path
    assert client.post("/item/1", data={"rank_0": "1"}).status_code == 401
    assert client.get("/login").status_code == 200
    assert client.get("/static/label.css").status_code == 200  # the login page's stylesheet, no data
    wrong = client.get("/login?token=not-a-token")
    assert wrong.status_code == 401 and "No labeler has this token" in wrong.get_data(as_text=True)
    assert client.get("/label").status_code == 302  # a wrong token logs nobody in
    assert logged_in(app).get("/label").status_code == 200


def test_the_api_needs_the_token_header(app):
    client = app.test_client()
    missing = client.get("/api/next")
    assert missing.status_code == 401 and "missing token" in missing.get_json()["error"]
    assert "Bearer" in missing.headers["WWW-Authenticate"]
    wrong = client.get("/api/next", headers=api(app, token="wrong"))
    assert wrong.status_code == 401 and "wrong token" in wrong.get_json()["error"]
    assert client.post("/api/submit", json={"item_id": 1, "ranking": [0, 1, 2]}).status_code == 401
    session = logged_in(app)  # a session cookie does not open the API
    assert session.get("/api/next").status_code == 401
    assert client.get("/api/next", headers=api(app, "ann")).get_json()["item_id"] == 1


def test_forms_without_the_csrf_token_are_refused(app):
    client = logged_in(app)
    html = client.get("/label").get_data(as_text=True)
    data = form(html)
    del data["csrf_token"]
    response = client.post("/item/1", data=data)
    assert response.status_code == 400 and "CSRF token is missing" in response.get_data(as_text=True)
    response = client.post("/item/1", data={**data, "csrf_token": "forged"})
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)
    assert client.post("/logout").status_code == 400  # logging out is a form too
    assert rankings(app) == []
    assert client.post("/item/1", data=form(html)).status_code == 302
    assert len(rankings(app)) == 1


def test_completions_holding_html_are_shown_as_text(app):
    response = logged_in(app).get("/label")
    html = response.get_data(as_text=True)
    assert "<script>alert" not in html
    assert "hello &lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in html
    assert "Say hi &lt;script&gt;" in html
    assert html.count("<script") == 1 and '<script src="/static/label.js" defer></script>' in html  # ours only
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_bad_rankings_through_the_api(app):
    client, headers = app.test_client(), api(app, "ann")
    item = client.get("/api/next", headers=headers).get_json()
    assert item["responses"][1] == f"hello {SCRIPT}" and item["ranking"] is None
    cases = [
        ({"item_id": 1, "ranking": [0, 2, 2]}, 400, "dense"),
        ({"item_id": 1, "ranking": [0, 1, 1, 2]}, 400, "4 ranks for 3"),
        ({"item_id": 1, "ranking": [0, "1", 2]}, 400, "ints"),
        ({"item_id": 1, "ranking": [0, 1, 2], "flags": [["rude"], [], []]}, 400, "unknown flag"),
        ({"item_id": 1, "ranking": [0, 1, 2], "score": 9}, 400, "1 .worst. to 7"),
        ({"item_id": 77, "ranking": [0, 1]}, 404, "no item 77"),
        ({"item_id": 2, "ranking": [0, 1]}, 403, "not assigned to you"),
        ({"ranking": [0, 1, 2]}, 404, "no item None"),
    ]
    for body, status, message in cases:
        response = client.post("/api/submit", json=body, headers=headers)
        assert response.status_code == status and re.search(message, response.get_json()["error"]), body
    response = client.post("/api/submit", data="not json", headers=headers)
    assert response.status_code == 400 and "JSON object" in response.get_json()["error"]
    assert rankings(app) == []
    ok = {"item_id": 1, "ranking": [0, 1, 1], "flags": [[], ["inappropriate"], []], "score": 2}
    assert client.post("/api/submit", json=ok, headers=headers).get_json() == {"ranking_id": 1, "status": "stored"}
    assert client.post("/api/submit", json=ok, headers=headers).get_json() == {"ranking_id": 1, "status": "unchanged"}
    assert [r["ranks"] for r in rankings(app)] == [[0, 1, 1]]


def test_bad_rankings_through_the_form(app):
    client = logged_in(app)
    html = client.get("/label").get_data(as_text=True)
    for fields, message in [
        ({"rank_0": "1", "rank_1": "3", "rank_2": "3"}, r"dense, got \[1, 3, 3\]"),
        ({"rank_0": "0", "rank_1": "1", "rank_2": "2"}, r"1\.\.3"),
        ({"rank_1": ""}, "completion 2 has no rank"),
        ({"score": "x"}, "score must be a number"),
        ({"flag_0": "rude"}, "unknown flag"),
        ({"action": "delete"}, "unknown action"),
    ]:
        response = client.post("/item/1", data=form(html, **fields))
        page = response.get_data(as_text=True)
        assert response.status_code == 400 and re.search(message, page), fields
        assert 'id="error"' in page and 'id="cards"' in page  # the item again, with the message
    assert client.post("/item/2", data=form(html)).status_code == 403
    assert client.post("/item/9", data=form(html)).status_code == 404
    assert client.get("/item/2").status_code == 403
    assert rankings(app) == []


def test_submit_go_back_change_skip_and_finish(app):
    client = logged_in(app)
    html = client.get("/label").get_data(as_text=True)
    assert 'Ranked by you: <b id="ranked">0</b>' in html and 'Left for you: <b id="left">2</b>' in html
    assert (
        client.post(
            "/item/1", data=form(html, rank_0="2", rank_1="1", rank_2="2", flag_1="made_up_facts", score="6")
        ).headers["Location"]
        == "/label"
    )
    html = client.get("/label").get_data(as_text=True)
    assert 'action="/item/2"' in html and 'href="/item/1" id="back"' in html
    back = client.get("/item/1").get_data(as_text=True)
    assert "You ranked this item before" in back
    cards = re.findall(r'data-index="(\d)"', back)
    assert cards == ["1", "0", "2"]  # best first, as ranked
    assert re.search(r'class="card tied" data-index="2"', back)  # 0 and 2 tie for second
    assert re.search(r'value="made_up_facts"\s+checked', back) and '<option value="6" selected>' in back
    assert client.post("/item/1", data=form(back, rank_0="1", rank_1="2", rank_2="3")).status_code == 302
    (ranking,) = rankings(app)
    assert ranking["ranks"] == [0, 1, 2] and ranking["revision"] == 2 and ranking["score"] is None
    assert client.post("/item/2", data=form(html, action="skip")).status_code == 302
    done = client.get("/label").get_data(as_text=True)
    assert "Nothing left to rank for you" in done and 'href="/item/2" id="back"' in done


def test_admin_sees_agreement_others_do_not(app):
    with Store(app.db) as s:
        bob = s.labeler_by_token(s.add_labeler("bob"))["id"]
        ann = s.labeler_by_token(app.tokens["ann"])["id"]
        s.conn.execute("UPDATE items SET wanted = 2, remaining = 2")
        for who, ranks in ((ann, [0, 1, 2]), (bob, [0, 2, 1])):
            s.submit(who, s.next_assignment(who)["item_id"], ranks)
    assert logged_in(app).get("/admin").status_code == 403
    assert app.test_client().get("/api/agreement", headers=api(app, "ann")).status_code == 403
    page = logged_in(app, "root").get("/admin").get_data(as_text=True)
    assert re.search(r"Overall agreement on 1 items.*<b>66\.7%</b>", page, re.S)
    assert re.search(r"<td>bob</td><td>1</td><td>0</td>\s*<td>1</td>\s*<td>66\.7%</td>", page)
    result = app.test_client().get("/api/agreement", headers=api(app, "root")).get_json()
    assert result["overall"]["pairs"] == 3 and result["labelers"]["ann"]["agreeing_pairs"] == 2
