"""Small things users notice (issue 15.5): a favicon, a wrong password keeps the user name,
login says it is checking while the slow hash runs, and the snooze form's label sits above its
field (checked in headless Chromium by element boxes)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.cdp import Browser
from tests.api.conftest import Api, run_db
from tests.api.test_browser import ARTIFACTS, browser, live, sign_in  # noqa: F401
from tests.api.test_pages import login_form_token
from tests.api.test_worklist import seed_flags

pytestmark = pytest.mark.db


def test_every_page_names_a_favicon_that_is_served(api: Api) -> None:
    page = api.client.get("/login")
    assert '<link rel="icon" href="/static/favicon.svg"' in page.text
    icon = api.client.get("/static/favicon.svg")
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.text.startswith("<svg")


def test_a_wrong_password_keeps_the_user_name(api: Api) -> None:
    api.client.cookies.clear()
    token = login_form_token(api)
    response = api.client.post(
        "/login", data={"username": "n01", "password": "not it", "login_csrf": token}
    )
    assert response.status_code == 401
    assert "아이디 또는 비밀번호가 맞지 않습니다" in response.text
    assert 'name="username" autocomplete="username" required maxlength="100" value="n01"' in (
        response.text
    )
    # the password is never echoed, and the cursor waits in the password field
    assert "not it" not in response.text
    assert 'type="password" autocomplete="current-password" required maxlength="200" autofocus' in (
        response.text
    )


def test_login_shows_that_it_is_checking(api: Api) -> None:
    page = api.client.get("/login").text
    assert "확인 중입니다" in page
    assert 'class="spinner"' in page


@pytest.mark.browser
@pytest.mark.slow
def test_snooze_label_sits_above_its_field(
    live: str,  # noqa: F811
    browser: Browser,  # noqa: F811
    world_url: Any,
) -> None:
    run_db(world_url[0], seed_flags)
    sign_in(browser, live, "n01")
    boxes = browser.evaluate(
        """(() => {
          const d = document.querySelector(".actions details");
          d.open = true;
          const label = d.querySelector("label"), field = d.querySelector("input[name=until]");
          const l = label.getBoundingClientRect(), f = field.getBoundingClientRect();
          return {labelBottom: l.bottom, fieldTop: f.top, labelH: l.height, fieldH: f.height};
        })()"""
    )
    assert boxes["labelH"] > 0
    assert boxes["fieldH"] > 0
    assert boxes["labelBottom"] <= boxes["fieldTop"] + 0.5  # no overlap
    browser.screenshot(ARTIFACTS / "worklist-snooze-open.png", full_page=False)
