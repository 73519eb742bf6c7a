"""System check messages, compared whole: what is wrong, and a hint that says what to do."""

from __future__ import annotations

from django.core import checks

from oauthconn.checks import check_redirect_base_url


def base_url(settings, url: str, *, loopback: bool) -> None:
    settings.OAUTHCONN = {
        **settings.OAUTHCONN,
        "REDIRECT_BASE_URL": url,
        "ALLOW_INSECURE_LOOPBACK": loopback,
    }


def test_a_local_http_origin_is_told_about_allow_insecure_loopback(settings):
    base_url(settings, "http://127.0.0.1:8000", loopback=False)
    assert check_redirect_base_url() == [
        checks.Error(
            "OAUTHCONN['REDIRECT_BASE_URL'] = 'http://127.0.0.1:8000' is refused: "
            "REDIRECT_BASE_URL uses http: allowed for loopback only with "
            "OAUTHCONN['ALLOW_INSECURE_LOOPBACK'] = True (development).",
            hint="For local development on this machine set "
            "OAUTHCONN['ALLOW_INSECURE_LOOPBACK'] = True: it allows http for 127.0.0.1, [::1] "
            "and localhost (warning W001 while DEBUG is off). In production use this site's "
            "public https origin.",
            id="oauthconn.E005",
        )
    ]


def test_a_public_http_origin_is_told_to_use_https(settings):
    base_url(settings, "http://www.example.com", loopback=True)
    assert check_redirect_base_url() == [
        checks.Error(
            "OAUTHCONN['REDIRECT_BASE_URL'] = 'http://www.example.com' is refused: "
            "REDIRECT_BASE_URL must use https.",
            hint="Set OAUTHCONN['REDIRECT_BASE_URL'] to this site's public https origin, e.g. "
            "https://www.example.com. Plain http is only possible for 127.0.0.1, [::1] or "
            "localhost with OAUTHCONN['ALLOW_INSECURE_LOOPBACK'] = True (development).",
            id="oauthconn.E005",
        )
    ]


def test_a_local_http_origin_passes_with_allow_insecure_loopback(settings):
    base_url(settings, "http://127.0.0.1:8000", loopback=True)
    assert check_redirect_base_url() == []


def test_the_hint_names_the_setting_that_cures_a_local_origin(settings):
    """The newcomer's case from issue 15: the hint alone must be enough to fix it."""
    base_url(settings, "http://localhost:8000", loopback=False)
    (error,) = check_redirect_base_url()
    assert "ALLOW_INSECURE_LOOPBACK" in error.hint
