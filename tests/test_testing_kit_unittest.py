"""The test kit from Django's own ``TestCase``, without pytest's fixtures: the mixin, and a
``FakeProvider`` opened in ``setUp`` and closed by ``addCleanup``."""

from __future__ import annotations

from django.conf import settings
from django.test import TestCase, override_settings
from django.urls import reverse

from oauthconn import get_connection
from oauthconn.exceptions import InsecureURL
from oauthconn.testing import FakeProvider, FakeProviderMixin, Reply

NO_LOOPBACK = {**settings.OAUTHCONN, "ALLOW_INSECURE_LOOPBACK": False}


@override_settings(OAUTHCONN=NO_LOOPBACK)
class MixinTests(FakeProviderMixin, TestCase):
    def test_a_site_page_calls_the_connection(self):
        self.fake_provider.connect("crm", subject="acme-sales")

        response = self.client.get(reverse("crm-account"))

        self.assertEqual(response.json(), {"crm_account": "acme-sales"})

    def test_a_rate_limited_api_becomes_a_503_with_retry_after(self):
        self.fake_provider.connect("crm")
        self.fake_provider.next_response("me", Reply.rate_limited(retry_after=30))

        response = self.client.get(reverse("crm-account"))

        self.assertEqual((response.status_code, response["Retry-After"]), (503, "30"))


@override_settings(OAUTHCONN=NO_LOOPBACK)
class WithStatementTests(TestCase):
    def setUp(self):
        self.provider = FakeProvider()
        self.addCleanup(self.provider.close)

    def test_an_expired_token_is_refreshed_before_the_call(self):
        self.provider.connect("crm")
        self.provider.expire("crm")

        self.assertEqual(get_connection("crm").get("me").status_code, 200)
        grants = [r.grant_type for r in self.provider.requests_to("token")]
        self.assertEqual(grants, ["authorization_code", "refresh_token"])

    def test_loopback_is_refused_again_once_closed(self):
        self.provider.connect("crm")
        self.provider.close()

        with self.assertRaises(InsecureURL):
            get_connection("crm").get("me")
